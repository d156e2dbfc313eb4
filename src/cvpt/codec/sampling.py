"""Which GOPs and which P-frames a clip uses (DESIGN.md §1).

A clip is ``num_gops`` consecutive GOPs. From each GOP: its I-frame and ``p_per_gop`` P-frames,
one from each equal segment of the P positions ``1 .. L-1`` (L = GOP length). For L = 12 and
3 P-frames the segments are {1,2,3}, {4..7}, {8..11}; test mode takes the middle of each
(positions 2, 6, 10), train mode one random position in each.
"""

from __future__ import annotations

import numpy as np


def segment_bounds(gop_len: int, p_per_gop: int) -> list[tuple[int, int]]:
    """Inclusive ``(lo, hi)`` bounds of the ``p_per_gop`` segments of positions ``1..gop_len-1``.

    A GOP with fewer P-frames than segments (a short last GOP) gets overlapping one-position
    segments; a GOP that is a lone I-frame gets position 0 (zero motion, zero residual).
    """
    n = gop_len - 1
    if n <= 0:
        return [(0, 0)] * p_per_gop
    bounds = []
    for k in range(p_per_gop):
        lo = min(n, 1 + (k * n) // p_per_gop)
        hi = max(lo, ((k + 1) * n) // p_per_gop)
        bounds.append((lo, hi))
    return bounds


def sample_positions(
    gop_len: int, p_per_gop: int, *, train: bool, rng: np.random.Generator | None = None
) -> np.ndarray:
    """In-GOP positions of the sampled P-frames, ascending, ``int64 [p_per_gop]``."""
    bounds = segment_bounds(gop_len, p_per_gop)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        return np.array([rng.integers(lo, hi + 1) for lo, hi in bounds], dtype=np.int64)
    return np.array([lo + (hi - lo + 1) // 2 for lo, hi in bounds], dtype=np.int64)


def choose_start_gop(
    num_gops: int, clip_gops: int, *, train: bool, rng: np.random.Generator | None = None
) -> int:
    """First GOP of a clip: random in train mode, centred in test mode."""
    spare = max(0, num_gops - clip_gops)
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        return int(rng.integers(0, spare + 1))
    return spare // 2


def view_start_gops(num_gops: int, clip_gops: int, views: int) -> list[int]:
    """Start GOPs of ``views`` test clips spread evenly over the video (multi-view testing)."""
    spare = max(0, num_gops - clip_gops)
    if views <= 1:
        return [spare // 2]
    return [round(i * spare / (views - 1)) for i in range(views)]


def clip_gop_indices(num_gops: int, clip_gops: int, start: int) -> np.ndarray:
    """GOP index of every clip slot; a video too short for the clip repeats its last GOP."""
    return np.minimum(np.arange(start, start + clip_gops), num_gops - 1).astype(np.int64)
