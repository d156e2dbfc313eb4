"""What ``cvpt predict`` / ``cvpt.Predictor`` costs to read a video a user just recorded (not
in cvpt's layout), against a VideoMAE-style RGB pipeline reading the same file; the model is
excluded.

``python -m cvpt.bench.predict [--video PATH] [--rounds 5] [--out predict.json]`` (without
``--video``: a generated 10 s 1280×720 30 fps H.264 file with B-frames, x264's defaults). Cases,
interleaved round by round so that machine noise hits them alike, medians of the rounds (the
first round warms up and is dropped), CPU time of the process (every thread) and wall time:

- ``cvpt_one`` / ``cvpt_protocol``: the Predictor's input path (``_Inputs.__getitem__``: the
  packet survey, the GOP windows the views read re-encoded, ``read_clip`` of each, crops and
  normalisation) for 1 clip × 1 crop and for CVPT's protocol, 2 clips × 3 crops;
- ``rgb_one`` / ``rgb_protocol``: ``cvpt.bench.pipeline.rgb_views`` for 1 × 1 and VideoMAE's
  5 clips × 3 crops; ``rgb_one_exact``: the same one view with frames counted by their
  timestamps (:func:`rgb_views_exact`, see there why);
- ``whole_one`` / ``whole_protocol`` (``before=True``): the path before windows: ``probe``
  decoding the whole source, the whole file re-encoded and verified, then read.

Each side reads with one thread (decoders, OpenCV, torch), as in a DataLoader worker.
``where`` splits one call of each CVPT case by cProfile (decoding the source, converting its
frames, encoding, the packet survey, reading the clips, crops and normalisation).
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

import numpy as np
import torch

from cvpt.codec.container import open_video
from cvpt.codec.encode import write_video
from cvpt.codec.sampling import view_start_gops
from cvpt.data.generate import moving_scene
from cvpt.data.transforms import eval_crops, normalize_rgb

CVPT_VIEWS, VIDEOMAE_VIEWS = (2, 3), (5, 3)  # clips × crops of each method's protocol


def recorded_video(
    path: str | Path, *, seconds: float = 10, width: int = 1280, height: int = 720, fps: int = 30
) -> Path:
    """A stand-in for a phone or camera recording: a panning scene with moving objects and
    sensor noise, H.264 by x264 with its defaults (B-frames with a B-pyramid, a key frame
    every 250 frames, crf 23) in mp4. ``uint8`` frames are made in one go: 830 MB for the
    default 10 s of 720p."""
    frames = moving_scene(frames=round(seconds * fps), height=height, width=width, seed=0)
    # x264's own GOP and B-frame defaults (VideoWriter's x264-params would fix the GOP)
    x264 = {"x264-params": "keyint=250:bframes=3:b-pyramid=normal"}
    return write_video(path, frames, fps=fps, codec="libx264", crf=23, options=x264)


def rgb_views_exact(
    path: str | Path,
    clips: int = 1,
    crops: int = 1,
    *,
    frames: int = 16,
    stride: int = 4,
    size: int = 224,
) -> torch.Tensor:
    """``cvpt.bench.pipeline.rgb_views`` (VideoMAE's test input: ``clips`` windows of
    ``frames`` frames at ``stride``, short side ``size``, ``crops`` crops, normalised; ``float32
    [clips·crops, 3, frames, size, size]``) with each decoded frame counted by its timestamp.
    rgb_views counts frames from the 12-frame grid point it seeks to; a source whose key
    frames lie elsewhere (x264's every 250 frames) lands earlier, so there it reads other
    frames than it means (11..71 for the centre clip's 119..179 of 300) and decodes fewer
    than a VideoMAE pipeline must (72, not 180)."""
    import cv2

    container, stream = open_video(path)
    try:
        n = stream.frames
        starts = view_start_gops(n, (frames - 1) * stride + 1, clips)  # (frames, not GOPs)
        index = [[min(s + j * stride, n - 1) for j in range(frames)] for s in starts]
        wanted = {i for clip in index for i in clip}
        tick = 1 / (stream.average_rate * stream.time_base)  # pts units per frame
        start = stream.start_time or 0
        container.seek(start + round(min(wanted) * tick), stream=stream, backward=True)
        small = {}
        for frame in container.decode(stream):
            i = round((frame.pts - start) / tick)
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24", threads=1)
                s = size / min(rgb.shape[:2])
                new = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
                small[i] = cv2.resize(rgb, new, interpolation=cv2.INTER_LINEAR)
            if i >= max(wanted):
                break
    finally:
        container.close()
    h, w = small[index[0][0]].shape[:2]
    views = [
        np.stack([small[i] for i in clip])[:, c.y : c.y + size, c.x : c.x + size]
        for clip in index
        for c in eval_crops(h, w, size=size, num_crops=crops)
    ]
    x = normalize_rgb(np.stack(views))
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)))


def _predictor_inputs(path: Path, clips: int, crops: int) -> dict:
    """What the Predictor's DataLoader does for one video (``_Inputs.__getitem__``)."""
    from cvpt.codec.sampling import ClipSpec
    from cvpt.data.transforms import ClipTransform
    from cvpt.predictor import _Inputs

    item = _Inputs([str(path)], ClipTransform(crops=crops), clips, True, ClipSpec())[0]
    if item["error"]:
        raise RuntimeError(f"{path}: {item['error']}")
    return item["inputs"]


def _whole(path: Path, clips: int, crops: int) -> dict:
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


def _timed(fn) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


# Where the window path's time goes, by cProfile: FFmpeg's own calls (their time) and cvpt's
# steps (time with everything they call), each (file, function name).
_LEAVES = {
    "decode source": "method 'decode' of 'av.packet.Packet' objects",
    "convert frames (swscale)": "method 'reformat' of 'av.video.frame.VideoFrame' objects",
    "encode MPEG-4": "method 'encode' of 'av.video.stream.VideoStream' objects",
    "stack the views' tensors": "built-in method torch.stack",
}
_STEPS = {
    "survey (packets, first frame)": ("window.py", "survey"),
    "encode_windows (decode + convert + encode)": ("window.py", "encode_windows"),
    "read_clip": ("reader.py", "read_clip"),
    "crops + normalise": ("transforms.py", "crops_of"),
}


def _where(fn) -> dict[str, float]:
    """Seconds of one call of ``fn`` in each part of :data:`_LEAVES` and :data:`_STEPS`."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    stats = pstats.Stats(prof).stats  # (file, line, name) → (cc, nc, tottime, cumtime, callers)
    out = {"total": max(v[3] for v in stats.values())}
    for label, name in _LEAVES.items():
        out[label] = sum(v[2] for (_, _, f), v in stats.items() if name in f)
    for label, (file, name) in _STEPS.items():
        out[label] = sum(v[3] for (p, _, f), v in stats.items() if p.endswith(file) and f == name)
    return out


def bench_predict(
    video: str | Path | None = None, *, rounds: int = 5, before: bool = True, **source
) -> dict:
    """Run the cases of the module docstring ``rounds`` times, interleaved; ``video`` (default:
    :func:`recorded_video` with ``source`` options). Returns medians (s), the ratios of CVPT
    to the RGB pipeline (median of the rounds' ratios), where the time goes, and a check that
    the window inputs equal the whole re-encode's."""
    import cv2

    from cvpt.bench.pipeline import rgb_views

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(video) if video else recorded_video(Path(tmp) / "recorded.mp4", **source)
        cases = {
            "cvpt_one": lambda: _predictor_inputs(path, 1, 1),
            "rgb_one": lambda: rgb_views(path, 1, 1),
            "rgb_one_exact": lambda: rgb_views_exact(path, 1, 1),
            "cvpt_protocol": lambda: _predictor_inputs(path, *CVPT_VIEWS),
            "rgb_protocol": lambda: rgb_views(path, *VIDEOMAE_VIEWS),
        }
        if before:
            cases["whole_one"] = lambda: _whole(path, 1, 1)
            cases["whole_protocol"] = lambda: _whole(path, *CVPT_VIEWS)
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
        for r in range(rounds + 1):  # round 0 warms up
            for name, fn in cases.items():
                t = _timed(fn)
                if r:
                    times[name].append(t)
        got, want = _predictor_inputs(path, *CVPT_VIEWS), _whole(path, *CVPT_VIEWS)
        identical = all(torch.equal(got[k], want[k]) for k in want)
        where = {k: _where(cases[k]) for k in ("cvpt_one", "cvpt_protocol")}
        info = _describe(path)
    return {
        "video": info,
        "rounds": rounds,
        "identical_to_whole_reencode": identical,
        "median_s": {
            f"{k}_{kind}": statistics.median(t[i] for t in v)
            for k, v in times.items()
            for i, kind in enumerate(("cpu", "wall"))
        },
        "ratios": _ratios(times),
        "where_s": where,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}, one thread per side",
    }


def _ratios(times: dict) -> dict[str, float]:
    """Median over rounds of each round's CVPT / RGB (CPU and wall)."""
    pairs = {
        "one_view": ("cvpt_one", "rgb_one"),
        "one_view_exact_rgb": ("cvpt_one", "rgb_one_exact"),
        "protocol": ("cvpt_protocol", "rgb_protocol"),
    }
    if "whole_one" in times:
        pairs["before_one_view"] = ("whole_one", "rgb_one_exact")
        pairs["before_protocol"] = ("whole_protocol", "rgb_protocol")
    return {
        f"{name}_{kind}": statistics.median(
            a[i] / b[i] for a, b in zip(times[x], times[y], strict=True)
        )
        for name, (x, y) in pairs.items()
        for i, kind in enumerate(("cpu", "wall"))
    }


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
    res = bench_predict(args.video, rounds=args.rounds, before=not args.no_before)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
