"""Motion fields and residuals as images (the paper's Fig. 3a)."""

from __future__ import annotations

import cv2
import numpy as np


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour a motion field ``float32 [H, W, 2]`` (px) as ``uint8 [H, W, 3]`` RGB.

    Hue = direction (as in optical-flow figures: right red, down yellow-green, left cyan, up
    violet), value = magnitude / ``max_magnitude`` (default: the field's 99th percentile), full
    saturation; no motion is black.
    """
    fx, fy = flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32)
    mag, ang = cv2.cartToPolar(fx, fy, angleInDegrees=True)
    if max_magnitude is None:
        max_magnitude = float(np.percentile(mag, 99)) if mag.any() else 1.0
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (ang / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / max(max_magnitude, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size: int = 64) -> np.ndarray:
    """``uint8 [size, size, 3]`` legend for :func:`flow_to_rgb` (centre = no motion)."""
    r = (size - 1) / 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.dstack([xs - r, ys - r])
    img = flow_to_rgb(flow, max_magnitude=r)
    img[np.hypot(xs - r, ys - r) > r] = 255
    return img


def residual_magnitude(residual: np.ndarray) -> np.ndarray:
    """Mean absolute residual over RGB, ``float32 [H, W]`` on the 0–255 scale."""
    return np.abs(residual.astype(np.float32)).mean(axis=-1)
