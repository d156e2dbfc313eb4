"""What ``cvpt predict`` / ``cvpt.Predictor`` costs to read a video a user just recorded (not
in cvpt's layout), against a VideoMAE-style RGB pipeline reading the same file; the model is
excluded.

``python -m cvpt.bench.predict [--video PATH] [--rounds 5] [--out predict.json]`` (without
``--video``: a generated 10 s 1280×720 30 fps H.264 file with B-frames, x264's defaults);
``cvpt bench pipeline`` runs :func:`bench_predict_inputs` too. Cases, interleaved round by
round so that machine noise hits them alike, medians of the rounds (a first round warms up
and is dropped), wall time and CPU time of the process (every thread):

- ``cvpt_one_view`` / ``cvpt_protocol``: the Predictor's input path (``_Inputs.__getitem__``:
  the packet survey, the GOP windows the views read re-encoded, ``read_clip`` of each, the
  model-ready views) for 1 clip × 1 crop, and for CVPT's protocol, 2 clips × 3 crops;
- ``rgb_one_view`` / ``rgb_protocol``: VideoMAE's test views read with PyAV
  (:func:`cvpt.bench.rgb.pyav_views`), 1 × 1 and VideoMAE's 5 clips × 3 crops;
- ``before_one_view`` / ``before_protocol`` (``before=True``): the path before windows:
  ``probe`` decoding the whole source, the whole file re-encoded and verified, then read.

Each side reads with one thread (decoders, OpenCV, torch), as in a DataLoader worker.
``where_ms`` splits one call of each CVPT case by cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from cvpt.codec.container import open_video
from cvpt.codec.encode import write_video
from cvpt.data.generate import moving_scene

CVPT_VIEWS, VIDEOMAE_VIEWS = (2, 3), (5, 3)  # clips × crops of each method's protocol
CASES = ("one view", "protocol")


def recorded_video(
    path: str | Path, *, seconds: float = 10, width: int = 1280, height: int = 720, fps: int = 30
) -> Path:
    """A stand-in for a phone or camera recording: a panning scene with moving objects and
    sensor noise, H.264 by x264 with its defaults (B-frames with a B-pyramid, a key frame
    every 250 frames, scene cuts, crf 23) in mp4. ``uint8`` frames are made in one go: 830 MB
    for the default 10 s of 720p."""
    frames = moving_scene(frames=round(seconds * fps), height=height, width=width, seed=0)
    # x264's own GOP and B-frame defaults (VideoWriter's x264-params would fix the GOP)
    x264 = {"x264-params": "keyint=250:bframes=3:b-pyramid=normal"}
    return write_video(path, frames, fps=fps, codec="libx264", crf=23, options=x264)


def _predictor_inputs(path: Path, clips: int, crops: int) -> dict:
    """What the Predictor's DataLoader does for one video (``_Inputs.__getitem__``)."""
    from cvpt.codec.sampling import ClipSpec
    from cvpt.data.transforms import ClipTransform
    from cvpt.predictor import _Inputs

    item = _Inputs([str(path)], ClipTransform(crops=crops), clips, True, ClipSpec())[0]
    if item["error"]:
        raise RuntimeError(f"{path}: {item['error']}")
    return item["inputs"]


def _before(path: Path, clips: int, crops: int) -> dict:
    """The path before windows: probe decodes the source, the whole file is re-encoded (and
    verified), then read."""
    from cvpt.codec.probe import probe
    from cvpt.data.dataset import read_views
    from cvpt.data.transforms import ClipTransform
    from cvpt.predictor import _reencoded

    transform = ClipTransform(crops=crops)
    probe(path).layout_problems()
    with warnings.catch_warnings(), _reencoded(path, transform.short_side) as out:
        warnings.simplefilter("ignore")
        return read_views(out, transform, clips)


# Where the window path's time goes, by cProfile: FFmpeg's own calls (their time) and cvpt's
# steps (time with everything they call), each (file, function name).
_LEAVES = {
    "decode source": "method 'decode' of 'av.packet.Packet' objects",
    # one scaler for the video (encode.py): the reformatter's method, not the frame's
    "convert frames (swscale)": "'reformat' of 'av.video.reformatter.VideoReformatter'",
    "encode MPEG-4": "method 'encode' of 'av.video.stream.VideoStream' objects",
}
_STEPS = {
    "survey (packets, first frame)": ("window.py", "survey"),
    "encode_windows (decode + convert + encode)": ("window.py", "encode_windows"),
    "read_clip": ("reader.py", "read_clip"),
    "model-ready views": ("transforms.py", "write"),
}


def _where(fn) -> dict[str, float]:
    """Milliseconds of one call of ``fn`` in each part of :data:`_LEAVES` and :data:`_STEPS`."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof).stats  # (file, line, name) → (cc, nc, tottime, cumtime, callers)
    out = {"total": max(v[3] for v in stats.values())}
    for label, name in _LEAVES.items():
        out[label] = sum(v[2] for (_, _, f), v in stats.items() if name in f)
    for label, (file, name) in _STEPS.items():
        out[label] = sum(v[3] for (p, _, f), v in stats.items() if p.endswith(file) and f == name)
    return {k: v * 1e3 for k, v in out.items()}


def bench_predict_inputs(
    folder: str | Path,
    *,
    rounds: int = 5,
    video: str | Path | None = None,
    before: bool = False,
    **source,
) -> dict:
    """Run the cases of the module docstring ``rounds`` times, interleaved, on ``video`` (or
    :func:`recorded_video` written into ``folder`` with ``source`` options). Returns
    ``median_ms`` (wall) and ``median_cpu_ms`` per case, ``ratios`` (CVPT / RGB, wall, median
    of the rounds' ratios, per case in :data:`CASES`) and ``ratios_cpu``, ``where_ms``, and
    whether the window inputs equal the whole re-encode's (``identical_to_whole_reencode``)."""
    import cv2

    from cvpt.bench.rgb import pyav_views

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(video) if video else recorded_video(folder / "recorded.mp4", **source)
    cases = {
        "cvpt_one_view": lambda: _predictor_inputs(path, 1, 1),
        "rgb_one_view": lambda: pyav_views(path, 1, 1),
        "cvpt_protocol": lambda: _predictor_inputs(path, *CVPT_VIEWS),
        "rgb_protocol": lambda: pyav_views(path, *VIDEOMAE_VIEWS),
    }
    if before:
        cases["before_one_view"] = lambda: _before(path, 1, 1)
        cases["before_protocol"] = lambda: _before(path, *CVPT_VIEWS)
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(rounds + 1):  # round 0 warms up
        for name, fn in cases.items():
            c, w = time.process_time(), time.perf_counter()
            fn()
            if r:
                cpu[name].append((time.process_time() - c) * 1e3)
                wall[name].append((time.perf_counter() - w) * 1e3)
    got, want = _predictor_inputs(path, *CVPT_VIEWS), _before(path, *CVPT_VIEWS)
    return {
        "video": _describe(path),
        "rounds": rounds,
        "identical_to_whole_reencode": all(torch.equal(got[k], want[k]) for k in want),
        "median_ms": {k: statistics.median(v) for k, v in wall.items()},
        "median_cpu_ms": {k: statistics.median(v) for k, v in cpu.items()},
        "ratios": _ratios(wall, "cvpt", "rgb"),
        "ratios_cpu": _ratios(cpu, "cvpt", "rgb"),
        "before_over_rgb": _ratios(wall, "before", "rgb") if before else {},
        "before_over_rgb_cpu": _ratios(cpu, "before", "rgb") if before else {},
        "where_ms": {k: _where(cases[f"cvpt_{k.replace(' ', '_')}"]) for k in CASES},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, one thread per side",
    }


def _ratios(times: dict[str, list[float]], num: str, den: str) -> dict[str, float]:
    """Per case, the median over rounds of each round's ``num`` / ``den`` time."""
    out = {}
    for case in CASES:
        key = case.replace(" ", "_")
        pairs = zip(times[f"{num}_{key}"], times[f"{den}_{key}"], strict=True)
        out[case] = statistics.median(a / b for a, b in pairs)
    return out


def _describe(path: Path) -> str:
    container, stream = open_video(path)
    try:
        cc, fps = stream.codec_context, float(stream.average_rate)
        mbits = path.stat().st_size * 8 / 1e6 / (stream.frames / fps)
        return (
            f"{path.name}: {cc.width}x{cc.height} {cc.name}, {stream.frames} frames at "
            f"{fps:g} fps, {mbits:.1f} Mbit/s"
        )
    finally:
        container.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cvpt.bench.predict", description=__doc__)
    ap.add_argument("--video", help="a video file (default: a generated 10 s 720p recording)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-before", action="store_true", help="skip the whole re-encode path")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = bench_predict_inputs(
            tmp, rounds=args.rounds, video=args.video, before=not args.no_before
        )
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
