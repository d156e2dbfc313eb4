"""The step-by-step view: what ``cvpt.ClipTransform`` computed before its views were fused.

Every modality is made at full resolution (``clip.mvs`` dense, ``clip.residuals`` int16), then
cropped, resized, flipped and normalised in separate passes (main at 39b8f35, kept verbatim but
for names). It defines the values the fused path must give (``tests/test_fused_views.py``
compares them exactly) and is the baseline ``cvpt bench pipeline`` times the fused path against.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from cvpt.codec.clip import CompressedClip
from cvpt.data.transforms import IMAGENET_MEAN, IMAGENET_STD, MV_CLIP, Crop


def reference_view(
    clip: CompressedClip, crop: Crop, mv_clip: float = MV_CLIP, short_side: int | None = None
) -> dict[str, torch.Tensor]:
    """``resize_short_side`` (when ``short_side`` is given and differs) then ``apply_crop``, as
    they were: float32 ``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``,
    ``residuals [3, T_P, S, S]`` from the clip's dense ``iframes``, ``mvs``, ``residuals``."""
    iframes, mvs, residuals = clip.iframes, clip.mvs, clip.residuals
    h, w = iframes.shape[1:3]
    if short_side is not None and min(h, w) != short_side:
        s = short_side / min(h, w)
        nw, nh = round(w * s), round(h * s)
        iframes, mvs, residuals = _resize_all(iframes, mvs, residuals, 0, 0, w, h, nw, nh)
    iframes, mvs, residuals = _resize_all(
        iframes, mvs, residuals, crop.x, crop.y, crop.w, crop.h, crop.size, crop.size
    )
    if crop.flip:
        iframes, mvs, residuals = iframes[:, :, ::-1], mvs[:, :, ::-1], residuals[:, :, ::-1]
        mvs = mvs * np.array([-1.0, 1.0], np.float32)
    i = (iframes.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    m = np.clip(mvs, -mv_clip, mv_clip) / mv_clip
    r = residuals.astype(np.float32) / 255.0 / IMAGENET_STD
    return {
        "iframes": torch.from_numpy(np.ascontiguousarray(i.transpose(3, 0, 1, 2))),
        "mvs": torch.from_numpy(np.ascontiguousarray(m.transpose(3, 0, 1, 2), np.float32)),
        "residuals": torch.from_numpy(np.ascontiguousarray(r.transpose(3, 0, 1, 2))),
    }


def _resize_all(iframes, mvs, residuals, x, y, w, h, out_w, out_h):
    """Crop ``(x, y, w, h)`` of every frame and resize it to ``out_w × out_h``: images and
    residuals bilinear, MV fields nearest with their values scaled by the resize factors."""
    sx, sy = out_w / w, out_h / h
    same = (out_w, out_h) == (w, h)

    def each(frames, interp, dtype):
        out = np.empty((len(frames), out_h, out_w, frames.shape[-1]), dtype)
        for k, f in enumerate(frames):
            box = f[y : y + h, x : x + w]
            out[k] = box if same else cv2.resize(box, (out_w, out_h), interpolation=interp)
        return out

    iframes = each(iframes, cv2.INTER_LINEAR, np.uint8)
    mvs = each(mvs, cv2.INTER_NEAREST, np.float32) * np.array([sx, sy], np.float32)
    residuals = each(residuals, cv2.INTER_LINEAR, np.int16)
    return iframes, mvs, residuals
