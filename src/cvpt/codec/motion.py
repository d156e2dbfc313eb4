"""Motion vectors from FFmpeg side data: block lists → fields on a grid of square cells.

Convention (docs/design.md; CoViAR): a vector is the *content* motion ``dst − src`` in pixels, x
then y, float with half-pel kept, so that ``cur[y, x] ≈ ref[y − mv_y, x − mv_x]``. FFmpeg's
``motion_x / motion_scale`` points from the current block into the reference (``src − dst``),
hence the minus sign. Intra blocks are absent from the side data and stay 0.

Fields live on a grid of ``cell``-pixel cells, made dense only for the frames a clip samples.
``cell=16`` is exact for MPEG-4 Part 2 without 4MV (what ``cvpt prepare`` writes: one vector
per macroblock); ``cell=4`` is exact for every block FFmpeg exports (H.264 down to 4×4, MPEG-4
4MV 8×8) and traces accumulated motion at finer positions, at about 4× the cost per frame.
"""

from __future__ import annotations

import functools
import sys

import cv2
import numpy as np


def grid_shape(height: int, width: int, cell: int) -> tuple[int, int]:
    """Cells covering a ``height × width`` frame (partial cells at the edges count)."""
    return -(-height // cell), -(-width // cell)


def side_data_to_grid(
    vectors: np.ndarray | None, grid_hw: tuple[int, int], cell: int
) -> np.ndarray:
    """Scatter FFmpeg's ``AVMotionVector`` records into a ``float32 [Hc, Wc, 2]`` field.

    ``vectors`` is the structured array of ``frame.side_data['MOTION_VECTORS'].to_ndarray()``
    (None for a frame without side data, i.e. all intra). Only past-reference vectors
    (``source < 0``) are used; B-frame future references never occur in the layout we read.
    A block covers ``max(1, size // cell)`` cells from the cell of its top-left corner.
    """
    hc, wc = grid_hw
    field = np.zeros((hc, wc, 2), np.float32)
    if vectors is None or len(vectors) == 0:
        return field
    v = vectors[vectors["source"] < 0]
    mx, my = _content_motion(v)
    bw, bh = v["w"].astype(np.int64), v["h"].astype(np.int64)
    x0 = (v["dst_x"].astype(np.int64) - bw // 2) // cell
    y0 = (v["dst_y"].astype(np.int64) - bh // 2) // cell
    for w, h in {(int(a), int(b)) for a, b in zip(bw, bh, strict=True)}:
        sel = (bw == w) & (bh == h)
        _scatter_blocks(
            field, x0[sel], y0[sel], mx[sel], my[sel], max(1, w // cell), max(1, h // cell)
        )
    return field


class MotionRecords:
    """The ``MOTION_VECTORS`` side data of a run of frames, turned into fields in one batch.

    ``append`` copies a frame's records out (a few kB), so the frame and its decoder buffer are
    released at once. ``fields`` then scatters them all: MPEG-4 macroblock streams on a 16-px grid
    take a fast path that reads every frame's records at once, one numpy call per column (a clip
    has 40 P-frames of 300 records; per-frame calls would cost more than the scatter itself).
    Anything else (4MV, H.264 partitions, other grids) goes frame by frame through
    :func:`side_data_to_grid`.
    """

    _dtype: np.dtype | None = None  # PyAV's structured AVMotionVector dtype, learnt once

    def __init__(self) -> None:
        # every frame's records back to back, copied once from the side data (a bytearray
        # grows in place: no per-frame bytes object, no join), and where each frame's end
        self._buf = bytearray()
        self._ends: list[int] = []

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, vectors) -> None:
        """A frame's ``MOTION_VECTORS`` side data (None: no inter blocks)."""
        if vectors is not None and len(vectors):
            if MotionRecords._dtype is None:
                MotionRecords._dtype = vectors.to_ndarray().dtype
            self._buf += vectors
        self._ends.append(len(self._buf))

    def fields(self, grid_hw: tuple[int, int], cell: int) -> np.ndarray:
        """``float32 [n, Hc, Wc, 2]``: every appended frame's field, in order."""
        hc, wc = grid_hw
        out = np.zeros((len(self._ends), hc, wc, 2), np.float32)
        if not self._buf:
            return out
        size = self._dtype.itemsize
        ends = np.asarray(self._ends)
        starts = np.concatenate([[0], ends[:-1]])
        # a view (no copy): it pins the bytearray's size only until this call returns
        records = np.frombuffer(self._buf, np.uint8)
        if cell == 16 and _FAST_LAYOUT and size == _RECORD:
            counts = (ends - starts) // size
            first_cell = np.repeat(np.arange(len(ends)) * (hc * wc), counts)
            if _scatter_macroblocks(out, records, first_cell):
                return out
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            if b > a:
                out[k] = side_data_to_grid(records[a:b].view(self._dtype), grid_hw, cell)
        return out


# AVMotionVector as FFmpeg lays it out (40 bytes): int32 source @0, uint8 w @4, uint8 h @5,
# int16 src_x/src_y/dst_x/dst_y @6..13, uint64 flags @16, int32 motion_x/motion_y @24/28,
# uint16 motion_scale @32. The fast path reads these as columns of int16/int32 views: one
# numpy call per column instead of one per strided field access.
_RECORD = 40
_FAST_LAYOUT = sys.byteorder == "little"
_W16_H16 = 16 | (16 << 8)  # w and h bytes read as one little-endian int16


def _scatter_macroblocks(fields: np.ndarray, records: np.ndarray, first_cell: np.ndarray) -> bool:
    """Write 16×16 past-reference blocks into ``fields [n, Hc, Wc, 2]``, one cell per macroblock.

    ``records``: the bytes of 40-byte AVMotionVectors; ``first_cell``: the flat index of each
    record's frame's first cell. Damaged positions are clipped into the grid. Returns False,
    writing nothing, if any record is another kind of block."""
    i16 = records.view(np.int16).reshape(-1, _RECORD // 2)
    i32 = i16.view(np.int32)
    if not ((i16[:, 2] == _W16_H16).all() and (i32[:, 0] < 0).all()):
        return False
    hc, wc = fields.shape[1:3]
    scale = i16[:, 16]  # motion_scale (uint16): 2 for half-pel streams, 4 for quarter-pel
    one_scale = len(scale) and scale[0] > 0 and (scale == scale[0]).all()
    if one_scale and len(i16) == fields.shape[0] * hc * wc and _in_raster_order(i16, hc, wc):
        # Every macroblock of every frame is inter-coded (no intra block left a gap) and listed
        # in raster order, as FFmpeg exports them: the records are the fields, cell by cell.
        np.multiply(i32[:, 6:8], -1.0 / scale[0], out=fields.reshape(-1, 2))
        return True
    ys, xs = i16[:, 6] >> 4, i16[:, 5] >> 4  # dst is the block centre: centre // 16 is its cell
    _clamp(ys, hc - 1)  # damaged side data can point outside the frame
    _clamp(xs, wc - 1)
    cells = first_cell + ys * np.intp(wc)  # int64: no int16 overflow on large frames
    cells += xs
    if one_scale:
        # One scale: scatter (motion_x, motion_y) as one int64 per record, scale all at once.
        motion = np.zeros(fields.shape[:3], np.int64).reshape(-1)
        motion[cells] = i16.view(np.int64)[:, 3]
        np.multiply(motion.view(np.int32), -1.0 / scale[0], out=fields.reshape(-1))
    else:  # damaged side data: scales differ, or are 0
        fields.reshape(-1, 2)[cells] = i32[:, 6:8] / -np.maximum(scale, 1)[:, None]
    return True


def _in_raster_order(i16: np.ndarray, hc: int, wc: int) -> bool:
    """Whether the records' block centres (dst_x, dst_y) are every macroblock of an ``Hc × Wc``
    grid in raster order, frame after frame."""
    want = _raster_centres(hc, wc)
    got = i16[:, 5:7].reshape(-1, hc * wc, 2)
    return bool((got == want).all())


@functools.lru_cache(maxsize=64)
def _raster_centres(hc: int, wc: int) -> np.ndarray:
    """``int16 [Hc·Wc, 2]``: (dst_x, dst_y) of every 16×16 macroblock in raster order (FFmpeg
    gives a block's centre, clipped to nothing: an edge block's centre may lie outside)."""
    ys, xs = np.meshgrid(np.arange(hc), np.arange(wc), indexing="ij")
    out = np.stack([xs.ravel() * 16 + 8, ys.ravel() * 16 + 8], axis=1).astype(np.int16)
    out.setflags(write=False)
    return out


def _clamp(a: np.ndarray, high: int) -> None:
    """``a`` into ``[0, high]`` in place (``np.clip`` costs 4× as much on a few thousand)."""
    np.maximum(a, 0, out=a)
    np.minimum(a, high, out=a)


def _content_motion(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dst − src`` in pixels, float32 (FFmpeg stores ``src − dst`` times ``motion_scale``)."""
    scale = np.maximum(v["motion_scale"], 1).astype(np.float32)
    return -v["motion_x"] / scale, -v["motion_y"] / scale


def _scatter_blocks(field, x0, y0, mx, my, cw: int, ch: int) -> None:
    """Write each block's vector into its ``ch × cw`` cells (clipped to the grid)."""
    hc, wc = field.shape[:2]
    ys = (y0[:, None, None] + np.arange(ch)[None, :, None]).repeat(cw, axis=2)
    xs = (x0[:, None, None] + np.arange(cw)[None, None, :]).repeat(ch, axis=1)
    inside = (ys >= 0) & (ys < hc) & (xs >= 0) & (xs < wc)
    rows = np.broadcast_to(np.arange(len(x0))[:, None, None], ys.shape)[inside]
    field[ys[inside], xs[inside], 0] = mx[rows]
    field[ys[inside], xs[inside], 1] = my[rows]


class Accumulator:
    """Displacement from the GOP's I-frame, traced back through every P-frame (CoViAR).

    ``D_t(p) = d_t(p) + D_{t-1}(p − d_t(p))``: the content at ``p`` in frame t came from
    ``p − d_t(p)`` in frame t−1, which had moved ``D_{t-1}`` since the I-frame. The fractional
    displacement is traced (not CoViAR's truncated integer source positions, which give larger
    accumulated residuals), on the cell grid with nearest lookup.
    """

    def __init__(self, grid_hw: tuple[int, int], cell: int):
        hc, wc = grid_hw
        gx, gy = np.meshgrid(np.arange(wc, dtype=np.float32), np.arange(hc, dtype=np.float32))
        self._base = np.dstack([gx, gy])  # cell coordinates, [Hc, Wc, 2]
        self._where = np.empty_like(self._base)
        self._scale = -1.0 / cell
        self.field = np.zeros((hc, wc, 2), np.float32)
        self._zero = True

    def reset(self) -> None:
        """Start a new GOP: the I-frame has zero displacement from itself."""
        self.field.fill(0)
        self._zero = True

    def add(self, d: np.ndarray) -> np.ndarray:
        """Fold in one P-frame's field ``d`` (``float32 [Hc, Wc, 2]``, pixels); returns ``D``."""
        if self._zero:  # first P-frame of the GOP: D = d
            np.copyto(self.field, d)
            self._zero = False
            return self.field
        cv2.scaleAdd(d, self._scale, self._base, dst=self._where)  # cell the content came from
        traced = cv2.remap(
            self.field, self._where, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
        )
        np.add(d, traced, out=self.field)
        return self.field


def grid_to_dense(
    field: np.ndarray, height: int, width: int, cell: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Upsample cell fields ``[..., Hc, Wc, 2]`` to ``float32 [..., height, width, 2]`` pixels
    (each cell → cell² copies).

    One pixel row per cell row is built by repeating cells along x, then copied ``cell`` times
    as whole rows: row-long copies are 4× faster than ``cv2.resize(INTER_NEAREST)``.
    """
    lead = field.shape[:-3]
    if out is None:
        out = np.empty((*lead, height, width, 2), np.float32)
    elif not out.flags.c_contiguous:  # the row copies below write through reshaped views
        raise ValueError("grid_to_dense: out must be C-contiguous")
    rows = np.repeat(field, cell, axis=-2)[..., :width, :]  # [..., Hc, W, 2]
    full = height // cell  # cell rows that lie wholly inside the frame
    blocks = out[..., : full * cell, :, :].reshape(*lead, full, cell, 2 * width)
    blocks[:] = rows[..., :full, :, :].reshape(*lead, full, 1, 2 * width)
    if full * cell < height:
        out[..., full * cell :, :, :] = rows[..., full : full + 1, :, :]
    return out
