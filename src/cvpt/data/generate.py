"""Procedural RGB videos with known motion, for tests, ``cvpt doctor``, demos and benchmarks.

Nothing is downloaded: every video cvpt needs to prove itself is made here, deterministically
from a seed.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_texture(
    height: int, width: int, *, seed: int = 0, sigma: float = 2.0, grey: bool = False
) -> np.ndarray:
    """``uint8 [height, width, 3]`` random texture, Gaussian-smoothed (σ px) to natural-image scale.

    Smoothing matters: the MPEG-4 encoder's diamond motion search follows image gradients, and on
    white noise it loses motions beyond a few pixels (measured: 0–10% exact at 8 px/frame).
    """
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (height, width, 1 if grey else 3), dtype=np.uint8)
    if grey:
        tex = np.repeat(tex, 3, axis=2)
    if sigma > 0:
        tex = cv2.GaussianBlur(tex, (0, 0), sigma)
        tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)  # restore the contrast
    return tex


def translating_texture(
    dx: float,
    dy: float,
    *,
    frames: int = 48,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    grey: bool = False,
    sigma: float = 2.0,
) -> np.ndarray:
    """``uint8 [frames, H, W, 3]``: a texture whose content moves ``(dx, dy)`` px per frame.

    Frame t shows the texture shifted by ``t·(dx, dy)`` (bilinear for sub-pixel shifts), so the
    ground-truth content motion of every pixel is exactly ``(dx, dy)``, and ``t·(dx, dy)`` since
    frame 0.
    """
    margin = int(np.ceil(max(abs(dx), abs(dy)) * frames)) + 8
    tex = smooth_texture(height + 2 * margin, width + 2 * margin, seed=seed, sigma=sigma, grey=grey)
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        m = np.float32([[1, 0, -margin + t * dx], [0, 1, -margin + t * dy]])
        cv2.warpAffine(tex, m, (width, height), dst=out[t], flags=cv2.INTER_LINEAR)
    return out


def moving_scene(
    *, frames: int = 180, height: int = 240, width: int = 320, seed: int = 0, objects: int = 3
) -> np.ndarray:
    """``uint8 [frames, H, W, 3]``: a panning textured background, textured discs moving on their
    own paths, and sensor noise; a stand-in for real footage in benchmarks and demos."""
    rng = np.random.default_rng(seed)
    pan = rng.uniform(-1.5, 1.5, 2)
    margin = int(np.ceil(np.abs(pan).max() * frames)) + 8
    bg = smooth_texture(height + 2 * margin, width + 2 * margin, seed=seed, sigma=3.0)
    sprites = [smooth_texture(64, 64, seed=seed + 1 + k, sigma=1.5) for k in range(objects)]
    radius = rng.integers(12, 28, objects)
    start = rng.uniform([0, 0], [width, height], (objects, 2))
    vel = rng.uniform(-4, 4, (objects, 2))
    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        m = np.float32([[1, 0, -margin + t * pan[0]], [0, 1, -margin + t * pan[1]]])
        cv2.warpAffine(bg, m, (width, height), dst=out[t], flags=cv2.INTER_LINEAR)
        for k in range(objects):
            cx, cy = (start[k] + t * vel[k]) % (width, height)
            r = int(radius[k])
            x0, y0 = int(cx) - r, int(cy) - r
            mask = np.zeros((2 * r, 2 * r), np.uint8)
            cv2.circle(mask, (r, r), r, 1, -1)
            _paste(out[t], sprites[k][: 2 * r, : 2 * r], mask, x0, y0)
    noise = rng.normal(0, 2.0, out.shape[1:]).astype(np.float32)
    for t in range(frames):
        out[t] = cv2.add(out[t], np.roll(noise, t * 7, axis=1), dtype=cv2.CV_8U)
    return out


def _paste(frame: np.ndarray, sprite: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> None:
    h, w = frame.shape[:2]
    sy, sx = max(0, -y0), max(0, -x0)
    ey, ex = min(sprite.shape[0], h - y0), min(sprite.shape[1], w - x0)
    if ey <= sy or ex <= sx:
        return
    region = frame[y0 + sy : y0 + ey, x0 + sx : x0 + ex]
    m = mask[sy:ey, sx:ex].astype(bool)
    region[m] = sprite[sy:ey, sx:ex][m]
