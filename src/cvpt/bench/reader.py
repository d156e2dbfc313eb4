"""``cvpt bench reader``: what reading a compressed clip costs, against two baselines, in one run.

(a) the decode floor: open, seek to the clip's first GOP and decode its 48 frames, nothing else;
(b) ``cvpt.read_clip`` (test mode: 4 I-frames + 12 P-frames with MVs and residuals);
(c) a VideoMAE-style RGB clip: 16 frames at stride 4, converted to RGB and resized to 224².
All three use one decode thread and the same seek, and are interleaved video by video so that
machine noise hits them alike; medians are reported.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cvpt.codec.container import is_video_file, open_video
from cvpt.codec.encode import write_video
from cvpt.codec.reader import clear_index_cache, read_clip
from cvpt.codec.rgb import RgbVideo, seek_to_frame
from cvpt.data.generate import moving_scene
from cvpt.errors import MissingFileError
from cvpt.io import walk_files


def decode_floor(path: Path, num_gops: int = 4, gop: int = 12) -> None:
    """Open, seek to the centred clip's first I-frame, decode ``num_gops · gop`` frames."""
    container, stream = open_video(path)
    try:
        first = max(0, (-(-stream.frames // gop) - num_gops) // 2) * gop
        seek_to_frame(container, stream, first)
        for k, _ in enumerate(container.decode(stream)):
            if k + 1 == num_gops * gop:
                break
    finally:
        container.close()


def rgb_clip(path: Path, frames: int = 16, stride: int = 4, size: int = 224) -> np.ndarray:
    """VideoMAE-style clip, tuned: the centred window's 16 frames (:class:`cvpt.codec.rgb.
    RgbVideo`: seek, convert only those), each resized with OpenCV: ``uint8 [16, size, size,
    3]``."""
    out = np.empty((frames, size, size, 3), np.uint8)
    with RgbVideo(path) as video:
        first = max(0, (video.frames - frames * stride) // 2)
        for j, (_, rgb) in enumerate(video.read(range(first, first + frames * stride, stride))):
            cv2.resize(rgb, (size, size), dst=out[j], interpolation=cv2.INTER_LINEAR)
    return out


def make_videos(folder: Path, count: int = 4, seconds: float = 6, fps: int = 30) -> list[Path]:
    """The benchmark's default input: 320×240 scenes (panning texture, moving objects, noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        path = folder / f"scene{k}.mp4"
        write_video(path, moving_scene(frames=int(seconds * fps), seed=k), fps=fps)
        paths.append(path)
    return paths


def bench_reader(
    videos: Path | None = None,
    *,
    repeats: int = 15,
    rounds: int = 1,
    threads: int = 1,
    **read_options,
) -> dict:
    """Run (a), (b), (c) on every video ``repeats`` times per round; return medians (ms) and
    ratios. With several ``rounds`` (the whole measurement again, same process), the ratios are
    the median of the rounds' ratios, and each round is kept: on a shared machine the spread
    between rounds says how far one number can be trusted."""
    cv2.setNumThreads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        if videos is None:
            paths = make_videos(Path(tmp))
        else:
            paths = walk_files(videos, is_video_file).files
            if not paths:
                raise MissingFileError(f"{videos}: no video files")
        cases = {
            "a_decode_floor": decode_floor,
            "b_read_clip": lambda p: (clear_index_cache(), read_clip(p, **read_options)),
            "c_rgb_clip": rgb_clip,
        }
        for p in paths:  # warm the file cache and the code paths
            for fn in cases.values():
                fn(p)
        per_round = [_one_round(paths, cases, repeats) for _ in range(rounds)]
        container, stream = open_video(paths[0])
        size = f"{stream.codec_context.width}x{stream.codec_context.height}"
        codec = stream.codec_context.name
        container.close()
    ratios = {k: [r[k] for r in per_round] for k in ("b_over_a", "b_over_c")}
    return {
        "videos": len(paths),
        "repeats": repeats,
        "size": size,
        "codec": codec,
        "opencv_threads": threads,
        "read_options": read_options,
        "median_ms": {k: statistics.median(r["median_ms"][k] for r in per_round) for k in cases},
        "b_over_a": statistics.median(ratios["b_over_a"]),
        "b_over_c": statistics.median(ratios["b_over_c"]),
        "rounds": per_round,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
    }


def _one_round(paths: list[Path], cases: dict, repeats: int) -> dict:
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for p in paths:
            for name, fn in cases.items():
                t0 = time.perf_counter()
                fn(p)
                times[name].append((time.perf_counter() - t0) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "median_ms": med,
        "b_over_a": med["b_read_clip"] / med["a_decode_floor"],
        "b_over_c": med["b_read_clip"] / med["c_rgb_clip"],
    }
