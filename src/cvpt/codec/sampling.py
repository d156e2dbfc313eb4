"""Which GOPs and which P-frames a clip uses (docs/design.md, *Compressed modalities*).

A clip is ``num_gops`` consecutive GOPs. From each GOP: its I-frame and ``p_per_gop`` P-frames,
one from each equal segment of the P positions ``1 .. L-1`` (L = GOP length). For L = 12 and
3 P-frames the segments are {1,2,3}, {4..7}, {8..11}; test mode takes the middle of each
(positions 2, 6, 10), train mode one random position in each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from cvpt.codec.warp import INTERPOLATIONS


@dataclass
class ClipSpec:
    """What one clip is, carried in one piece from a run's config through the dataset to
    :func:`cvpt.read_clip` (pytorchvideo's clip-sampler idea). The defaults are the paper's:
    4 GOPs of 12 frames, 3 P-frames from each, accumulated to the I-frame (CoViAR)."""

    num_gops: int = 4  # GOPs (= I-frames) per clip; the model sees T_I = num_gops
    p_per_gop: int = 3  # P-frames sampled per GOP, one per equal segment; T_P = T_I · p_per_gop
    accumulate: bool = True  # MVs/residuals relative to the GOP's I-frame (False: previous frame)
    residual_interp: str = "nearest"  # reference moved by whole-pixel MVs (CoViAR) or "linear"
    mv_cell: int | None = None  # MV grid in px: None = 16 for MPEG-4 (macroblocks), 4 otherwise
    gop_size: int = 12  # GOP length of prepared videos (cvpt prepare)

    def __post_init__(self) -> None:
        if self.residual_interp not in INTERPOLATIONS:
            raise ValueError(
                f"residual_interp must be one of {INTERPOLATIONS}, got {self.residual_interp!r}"
            )
        if self.num_gops < 1 or self.p_per_gop < 1 or self.gop_size < 2:
            raise ValueError("num_gops and p_per_gop must be ≥ 1 and gop_size ≥ 2")
        if self.mv_cell not in (None, 4, 8, 16):
            raise ValueError(f"mv_cell must be None, 4, 8 or 16, got {self.mv_cell}")

    @property
    def num_pframes(self) -> int:
        """P-frames per clip, T_P."""
        return self.num_gops * self.p_per_gop

    def replace(self, **changes) -> ClipSpec:
        """A copy with ``changes`` (field names), validated."""
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict:
        return asdict(self)


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
