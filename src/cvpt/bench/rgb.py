"""The raw-RGB pipeline cvpt is measured against: VideoMAE's test input, with the readers people
pick (PyAV, which cvpt uses; decord, which VideoMAE's loader uses; torchcodec, PyTorch's).

One view = 16 frames at stride 4 (a 61-frame window), each resized so its short side is 224
(bilinear), cropped 224² (centre, or 3 crops along the long side), normalised with ImageNet
mean/std: ``float32 [views, 3, 16, 224, 224]``. Every reader decodes with one thread, seeks to
the window and converts only the 16 frames it uses; the transform after the decode is shared,
so readers differ only in what they cost to decode.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from cvpt.codec.rgb import RgbVideo
from cvpt.data.transforms import RGB_TABLES, normalize_rgb


def window_starts(n: int, clips: int, frames: int = 16, stride: int = 4) -> list[int]:
    """First frame of each of ``clips`` windows spread evenly over ``n`` frames (the centred one
    when ``clips`` = 1): VideoMAE's temporal views."""
    span = (frames - 1) * stride + 1
    if clips == 1:
        return [max(0, (n - span) // 2)]
    return [round(k * max(0, n - span) / (clips - 1)) for k in range(clips)]


def wanted_frames(
    n: int, clips: int, frames: int = 16, stride: int = 4
) -> dict[int, list[tuple[int, int]]]:
    """``{frame index: [(clip, slot), ...]}`` of every frame the windows read."""
    wanted: dict[int, list[tuple[int, int]]] = {}
    for c, s in enumerate(window_starts(n, clips, frames, stride)):
        for j in range(frames):
            wanted.setdefault(min(s + j * stride, n - 1), []).append((c, j))
    return wanted


def to_views(picked: np.ndarray, crops: int, size: int, tuned: bool = False) -> torch.Tensor:
    """``picked``: an object array ``[clips, frames]`` of ``uint8 [h, w, 3]`` frames already at
    short side ``size`` → ``float32 [clips·crops, 3, frames, size, size]``. ``tuned``: each
    crop's planes normalised by table straight into the channels-first output (the same values
    as the float steps VideoMAE's transforms take, at a fraction of the passes)."""
    h, w = picked[0, 0].shape[:2]
    if tuned:
        out = np.empty((picked.shape[0] * crops, 3, picked.shape[1], size, size), np.float32)
        v = 0
        for c in range(picked.shape[0]):
            for x, y in crop_origins(h, w, size, crops):
                for t, frame in enumerate(picked[c]):
                    planes = cv2.split(frame[y : y + size, x : x + size])
                    for k, plane in enumerate(planes):
                        cv2.LUT(plane, RGB_TABLES[k], dst=out[v, k, t])
                v += 1
        return torch.from_numpy(out)
    views = []
    for c in range(picked.shape[0]):
        clip = np.stack(list(picked[c]))  # [T, h, w, 3]
        for x, y in crop_origins(h, w, size, crops):
            views.append(clip[:, y : y + size, x : x + size])
    x = normalize_rgb(np.stack(views))
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)))


def crop_origins(h: int, w: int, size: int, crops: int) -> list[tuple[int, int]]:
    """Top-left corners of the centre crop, or of 3 crops along the long side."""
    cx, cy = (w - size) // 2, (h - size) // 2
    if crops == 1:
        return [(cx, cy)]
    if w >= h:
        return [(x, cy) for x in (0, cx, w - size)]
    return [(cx, y) for y in (0, cy, h - size)]


def short_side(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = size / min(h, w)
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)


def pyav_views(
    path: str | Path, clips: int = 1, crops: int = 1, *, frames: int = 16, stride: int = 4,
    size: int = 224, tuned: bool = False,
) -> torch.Tensor:  # fmt: skip
    """VideoMAE's test views read with PyAV: seek to the key frame before the first window,
    decode up to the last frame used, convert only the frames used (see the module). Frames
    are numbered by their timestamps, so a source with B-frames is read right too."""
    with RgbVideo(path) as video:
        wanted = wanted_frames(video.frames, clips, frames, stride)
        picked = np.empty((clips, frames), object)
        for i, rgb in video.read(wanted):
            small = short_side(rgb, size)
            for c, j in wanted[i]:
                picked[c, j] = small
    return to_views(picked, crops, size, tuned)


def pyav_tuned_views(path: str | Path, clips: int = 1, crops: int = 1, **kw) -> torch.Tensor:
    """:func:`pyav_views` normalised by table (``to_views(tuned=True)``): the cheapest RGB view
    we could write, for an honest lower bound beside VideoMAE's own steps."""
    return pyav_views(path, clips, crops, tuned=True, **kw)


def decord_views(
    path: str | Path, clips: int = 1, crops: int = 1, *, frames: int = 16, stride: int = 4,
    size: int = 224,
) -> torch.Tensor:  # fmt: skip
    """The same views read with decord (``VideoReader.get_batch``, one thread), as VideoMAE's
    own loader reads them."""
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    wanted = wanted_frames(len(vr), clips, frames, stride)
    batch = vr.get_batch(sorted(wanted)).asnumpy()
    return to_views(_picked(wanted, batch, clips, frames, size), crops, size)


def torchcodec_views(
    path: str | Path, clips: int = 1, crops: int = 1, *, frames: int = 16, stride: int = 4,
    size: int = 224,
) -> torch.Tensor:  # fmt: skip
    """The same views read with torchcodec (``VideoDecoder.get_frames_at``, one FFmpeg
    thread)."""
    from torchcodec.decoders import VideoDecoder

    dec = VideoDecoder(str(path), num_ffmpeg_threads=1, dimension_order="NHWC")
    wanted = wanted_frames(dec.metadata.num_frames, clips, frames, stride)
    batch = dec.get_frames_at(sorted(wanted)).data.numpy()
    return to_views(_picked(wanted, batch, clips, frames, size), crops, size)


def _picked(wanted: dict, batch: np.ndarray, clips: int, frames: int, size: int) -> np.ndarray:
    """The ``[clips, frames]`` object array :func:`to_views` takes, from ``batch``: the wanted
    frames in index order, ``uint8 [n, H, W, 3]``."""
    picked = np.empty((clips, frames), object)
    for i, rgb in zip(sorted(wanted), batch, strict=True):
        small = short_side(rgb, size)
        for c, j in wanted[i]:
            picked[c, j] = small
    return picked


READERS: dict[str, tuple[str, Callable[..., torch.Tensor]]] = {
    "pyav": ("av", pyav_views),
    "pyav_tuned": ("av", pyav_tuned_views),
    "decord": ("decord", decord_views),
    "torchcodec": ("torchcodec", torchcodec_views),
}


def available_readers() -> dict[str, str]:
    """``{reader: "ok" or why it cannot run here}`` (torchcodec's wheels, for one, load CUDA
    libraries a CPU-only machine may not have)."""
    out = {}
    for name, (module, _) in READERS.items():
        if importlib.util.find_spec(module) is None:
            out[name] = f"not installed (pip install {module})"
            continue
        try:
            __import__(module)
            if name == "torchcodec":
                from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads its libraries)
            out[name] = "ok"
        except Exception as e:  # a broken install must not stop the benchmark: reported
            out[name] = f"cannot load: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
    return out
