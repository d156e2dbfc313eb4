"""Clip geometry and normalisation (docs/design.md), for all three modalities at once.

One crop and one flip for every frame of every modality; a horizontal flip negates the MV
x-component; every resize scales MV magnitudes by its factor per axis (CoViAR forgets this);
normalisation happens here and nowhere else. Input: a :class:`cvpt.CompressedClip` (numpy,
the video's resolution). Output: float32 tensors in the model's layout
``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``, ``residuals [3, T_P, S, S]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from cvpt.codec.reader import CompressedClip
from cvpt.errors import ConfigError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # VideoMAE's I-frame statistics
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MV_CLIP = 20.0  # px: CoViAR clips motion at ±20 and maps it to ±1 here


@dataclass(frozen=True)
class Crop:
    """A crop box in the clip's pixels, the output size, and whether to flip."""

    x: int
    y: int
    w: int
    h: int
    size: int
    flip: bool = False


def train_crop(
    height: int,
    width: int,
    rng: np.random.Generator,
    *,
    size: int = 224,
    scales=(1.0, 0.875, 0.75, 0.66),
    flip: bool = True,
) -> Crop:
    """Multi-scale corner crop (TSN/CoViAR): side lengths drawn from ``scales`` × the short
    side (independently for w and h, at most one scale step apart), placed at one of the four
    corners or the centre; flipped with probability ½ when ``flip``."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    pairs = [(w, h) for i, w in enumerate(sizes) for j, h in enumerate(sizes) if abs(i - j) <= 1]
    cw, ch = pairs[rng.integers(len(pairs))]
    dx, dy = (width - cw) // 4, (height - ch) // 4
    corners = [(0, 0), (4 * dx, 0), (0, 4 * dy), (4 * dx, 4 * dy), (2 * dx, 2 * dy)]
    x, y = corners[rng.integers(len(corners))]
    return Crop(x, y, cw, ch, size, bool(flip and rng.random() < 0.5))


def eval_crops(height: int, width: int, *, size: int = 224, num_crops: int = 1) -> list[Crop]:
    """Centre crop of ``size`` (the clip is already at short side 256), or 3 crops spread along
    the long side (left/top, centre, right/bottom)."""
    side = min(size, height, width)
    cx, cy = (width - side) // 2, (height - side) // 2
    if num_crops == 1:
        return [Crop(cx, cy, side, side, size)]
    if num_crops != 3:
        raise ConfigError(f"num_crops must be 1 or 3, got {num_crops}")
    if width >= height:
        return [Crop(x, cy, side, side, size) for x in (0, cx, width - side)]
    return [Crop(cx, y, side, side, size) for y in (0, cy, height - side)]


def resize_short_side(clip: CompressedClip, short_side: int) -> CompressedClip:
    """Resize every frame so its short side is ``short_side`` (MVs scaled by the factors)."""
    h, w = clip.iframes.shape[1:3]
    if min(h, w) == short_side:
        return clip
    s = short_side / min(h, w)
    nw, nh = round(w * s), round(h * s)
    return _replace(clip, *_resize_all(clip, 0, 0, w, h, nw, nh))


def apply_crop(
    clip: CompressedClip, crop: Crop, mv_clip: float = MV_CLIP
) -> dict[str, torch.Tensor]:
    """Crop, resize to ``crop.size``², flip, and normalise: the model's input tensors."""
    iframes, mvs, residuals = _resize_all(
        clip, crop.x, crop.y, crop.w, crop.h, crop.size, crop.size
    )
    if crop.flip:
        iframes, mvs, residuals = iframes[:, :, ::-1], mvs[:, :, ::-1], residuals[:, :, ::-1]
        mvs = mvs * np.array([-1.0, 1.0], np.float32)  # content moving right now moves left
    return normalize(iframes, mvs, residuals, mv_clip)


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """``uint8 [..., 3]`` RGB → float32 with ImageNet mean/std (VideoMAE's input statistics)."""
    return (frames.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def normalize(
    iframes: np.ndarray, mvs: np.ndarray, residuals: np.ndarray, mv_clip: float = MV_CLIP
) -> dict:
    """The one normalisation: I-frames ImageNet mean/std; MVs clipped to ±``mv_clip`` px (20:
    CoViAR's, for 256-px frames; small frames move fewer pixels) then divided by it;
    residuals /255 then / ImageNet std. Channels-first tensors ``[C, T, H, W]``."""
    i = normalize_rgb(iframes)
    m = np.clip(mvs, -mv_clip, mv_clip) / mv_clip
    r = residuals.astype(np.float32) / 255.0 / IMAGENET_STD
    return {
        "iframes": torch.from_numpy(np.ascontiguousarray(i.transpose(3, 0, 1, 2))),
        "mvs": torch.from_numpy(np.ascontiguousarray(m.transpose(3, 0, 1, 2), np.float32)),
        "residuals": torch.from_numpy(np.ascontiguousarray(r.transpose(3, 0, 1, 2))),
    }


@dataclass(frozen=True)
class ClipTransform:
    """A :class:`cvpt.CompressedClip` (numpy, the video's resolution) → the model's inputs.

    Resizes the short side to ``short_side`` (MVs scaled with it), crops ``size``² (train: a
    random multi-scale corner crop and flip drawn from ``rng``; eval: ``crops`` = 1 centre or 3
    crops along the long side), and normalises (I-frames ImageNet mean/std, MVs clipped to
    ±``mv_clip`` px then / ``mv_clip``, residuals / 255 / ImageNet std).

    ``transform(clip)`` gives float32 tensors ``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``,
    ``residuals [3, T_P, S, S]`` for one crop, or the same with a leading ``[crops]`` axis for 3.
    Raises :class:`cvpt.errors.ConfigError` for ``crops`` other than 1 or 3, ``ValueError`` for
    ``train=True`` without an ``rng``.
    """

    size: int = 224
    short_side: int = 256
    train: bool = False
    flip: bool = True
    crops: int = 1
    mv_clip: float = MV_CLIP

    def crops_of(
        self, clip: CompressedClip, rng: np.random.Generator | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """One dict of ``[C, T, S, S]`` tensors per crop (1 when training)."""
        clip = resize_short_side(clip, self.short_side)
        h, w = clip.iframes.shape[1:3]
        if self.train:
            if rng is None:
                raise ValueError("ClipTransform(train=True) draws its crop from rng: pass one")
            boxes = [train_crop(h, w, rng, size=self.size, flip=self.flip)]
        else:
            boxes = eval_crops(h, w, size=self.size, num_crops=self.crops)
        return [apply_crop(clip, box, self.mv_clip) for box in boxes]

    def __call__(
        self, clip: CompressedClip, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        out = self.crops_of(clip, rng)
        if len(out) == 1:
            return out[0]
        return {k: torch.stack([o[k] for o in out]) for k in out[0]}


def _resize_all(clip, x, y, w, h, out_w, out_h):
    """Crop ``(x, y, w, h)`` of every frame and resize it to ``out_w × out_h``: images and
    residuals bilinear; MV fields nearest (they are block-constant: no invented vectors), their
    values scaled by the per-axis resize factors."""
    sx, sy = out_w / w, out_h / h
    same = (out_w, out_h) == (w, h)

    def each(frames, interp, dtype):
        out = np.empty((len(frames), out_h, out_w, frames.shape[-1]), dtype)
        for k, f in enumerate(frames):
            box = f[y : y + h, x : x + w]
            out[k] = box if same else cv2.resize(box, (out_w, out_h), interpolation=interp)
        return out

    iframes = each(clip.iframes, cv2.INTER_LINEAR, np.uint8)
    mvs = each(clip.mvs, cv2.INTER_NEAREST, np.float32) * np.array([sx, sy], np.float32)
    residuals = each(clip.residuals, cv2.INTER_LINEAR, np.int16)
    return iframes, mvs, residuals


def _replace(clip: CompressedClip, iframes, mvs, residuals) -> CompressedClip:
    from dataclasses import replace

    return replace(clip, iframes=iframes, mvs=mvs, residuals=residuals)
