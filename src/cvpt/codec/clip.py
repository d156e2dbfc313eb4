"""``cvpt.CompressedClip``: one clip's I-frames, motion and residuals, kept as compact as they come.

The reader keeps what the codec gives: motion on its grid of cells (16 px macroblocks for
MPEG-4) and each residual as the two frames it is the difference of (the decoded P-frame and
its motion-compensated prediction, the latter made only when asked for, inside the box asked
for). ``clip.mvs`` and ``clip.residuals`` are the full-resolution arrays of docs/design.md,
made on first access; the transforms (:mod:`cvpt.data.transforms`) never make them: they crop
the grid and the frames directly, so a 224² view costs the view, not the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvpt.codec.motion import grid_to_dense
from cvpt.codec.warp import Predictor

# (y0, y1, x0, x1): a box of a frame in pixels, ends exclusive
Box = tuple[int, int, int, int]


class CompressedClip:
    """One clip in the compressed domain, as numpy arrays in the video's own resolution.

    - ``iframes``: ``uint8 [T_I, H, W, 3]`` RGB, one per GOP.
    - ``mvs``: ``float32 [T_P, H, W, 2]``, x then y, content motion ``dst − src`` in pixels;
      accumulated (displacement since the GOP's I-frame) unless ``accumulated`` is False.
      Made on first access from ``mv_grid``: ``float32 [T_P, Hc, Wc, 2]``, the same motion on
      the codec's grid of ``mv_cell``-pixel cells (1 for a clip built from dense fields).
    - ``residuals``: ``int16 [T_P, H, W, 3]`` RGB, current frame minus its motion-compensated
      prediction (from the I-frame when accumulated, else from the previous frame); made on
      first access. :meth:`residual_parts` gives a box of them without making the rest.
    - ``gop_indices``: ``int64 [T_I]`` GOP of every slot; ``positions``: ``int64 [T_I, p_per_gop]``
      in-GOP position of every P-frame (T_P = T_I · p_per_gop, ordered GOP by GOP).

    Build one from dense arrays (``CompressedClip(path, iframes, mvs, residuals, ...)``, what
    tests and hand-made inputs do) or, as :func:`cvpt.read_clip` does, from ``mv_grid`` /
    ``mv_cell`` and a residual source; the two are the same clip to every reader of it.
    """

    def __init__(
        self,
        path: str,
        iframes: np.ndarray,
        mvs: np.ndarray | None = None,
        residuals: np.ndarray | None = None,
        gop_indices: np.ndarray | None = None,
        positions: np.ndarray | None = None,
        accumulated: bool = True,
        num_gops_in_video: int = 0,
        gop_size: int = 12,
        fps: float = 30.0,
        *,
        mv_grid: np.ndarray | None = None,
        mv_cell: int = 1,
        residual_source: ResidualSource | None = None,
    ):
        if (mvs is None) == (mv_grid is None):
            raise ValueError("CompressedClip: give the motion as mvs or as mv_grid, not both")
        if (residuals is None) == (residual_source is None):
            raise ValueError("CompressedClip: give residuals or a residual_source, not both")
        iframes = np.asarray(iframes)
        if iframes.dtype != np.uint8 or iframes.ndim != 4 or iframes.shape[-1] != 3:
            raise ValueError(
                f"{path}: iframes must be uint8 [T_I, H, W, 3] RGB, got {iframes.dtype} "
                f"{list(iframes.shape)}"
            )
        self.path, self.iframes = path, iframes
        self.gop_indices = np.arange(len(iframes)) if gop_indices is None else gop_indices
        self.positions = positions
        self.accumulated, self.num_gops_in_video = accumulated, num_gops_in_video
        self.gop_size, self.fps = gop_size, fps
        self._mvs: np.ndarray | None = None
        self._residuals: np.ndarray | None = None
        if mvs is not None:
            self.mvs = mvs
        else:
            self.mv_grid, self.mv_cell = _motion(path, mv_grid, self.height, self.width, mv_cell)
        if residuals is not None:
            self.residuals = residuals
        else:
            self.residual_source = residual_source

    @property
    def height(self) -> int:
        return int(self.iframes.shape[1])

    @property
    def width(self) -> int:
        return int(self.iframes.shape[2])

    # Once made, the dense arrays are the clip: a caller may edit them in place, and every later
    # reader of the clip (the transforms included) must see what the caller sees.
    @property
    def mvs(self) -> np.ndarray:
        if self._mvs is None:
            self.mvs = grid_to_dense(self.mv_grid, self.height, self.width, self.mv_cell)
        return self._mvs

    @mvs.setter
    def mvs(self, value: np.ndarray) -> None:
        self._mvs = self.mv_grid = _motion(self.path, value, self.height, self.width, 1)[0]
        self.mv_cell = 1

    @property
    def residuals(self) -> np.ndarray:
        if self._residuals is None:
            cur, pred = self.residual_source.parts((0, self.height, 0, self.width))
            if pred is None:
                self.residuals = np.asarray(cur)
            else:
                pairs = zip(cur, pred, strict=True)
                self.residuals = np.stack([difference(c, p) for c, p in pairs])
        return self._residuals

    @residuals.setter
    def residuals(self, value: np.ndarray) -> None:
        value = np.asarray(value)
        want = (len(self.mv_grid), self.height, self.width, 3)
        if value.shape != want:
            raise ValueError(
                f"{self.path}: residuals must be [T_P, H, W, 3] = {list(want)} (as the motion "
                f"and the I-frames), got {list(value.shape)}"
            )
        if value.dtype != np.int16:
            if not np.issubdtype(value.dtype, np.integer) or (
                value.size and (value.min() < -255 or value.max() > 255)
            ):
                seen = f" from {value.min()} to {value.max()}" if value.size else ""
                raise ValueError(
                    f"{self.path}: residuals must be integers in [-255, 255] (int16), got "
                    f"{value.dtype}{seen}"
                )
            value = value.astype(np.int16)
        self._residuals = value
        self.residual_source = DenseResiduals(value)

    def residual_parts(self, box: Box) -> tuple[Sequence[np.ndarray], Sequence | None]:
        """The residuals inside ``box`` as ``(current, prediction)``: two sequences of T_P
        ``uint8 [h, w, 3]`` frames (views, not necessarily contiguous) whose difference they
        are; or ``(residuals, None)``, ``int16 [h, w, 3]`` each, for a clip built from them."""
        return self.residual_source.parts(box)

    @property
    def frame_indices(self) -> np.ndarray:
        """``int64 [T_P]`` index in the video of every sampled P-frame."""
        return (self.gop_indices[:, None] * self.gop_size + self.positions).reshape(-1)

    @property
    def repeated_gops(self) -> int:
        """How many clip slots repeat the last GOP because the video was too short."""
        return int(len(self.gop_indices) - len(np.unique(self.gop_indices)))

    def replace(self, **changes) -> CompressedClip:
        """A copy with ``changes`` (constructor arguments: e.g. dense ``mvs`` / ``residuals``)."""
        args = dict(
            path=self.path,
            iframes=self.iframes,
            gop_indices=self.gop_indices,
            positions=self.positions,
            accumulated=self.accumulated,
            num_gops_in_video=self.num_gops_in_video,
            gop_size=self.gop_size,
            fps=self.fps,
        )
        if "mvs" not in changes and "mv_grid" not in changes:
            args.update(mv_grid=self.mv_grid, mv_cell=self.mv_cell)
        elif "mv_grid" in changes:  # a new grid on the same cells unless it says otherwise
            args.update(mv_cell=self.mv_cell)
        if "residuals" not in changes and "residual_source" not in changes:
            args.update(residual_source=self.residual_source)
        return CompressedClip(**{**args, **changes})

    def __repr__(self) -> str:
        t_p = len(self.mv_grid)
        return (
            f"CompressedClip({self.path!r}, {len(self.iframes)} I-frames + {t_p} P-frames "
            f"{self.width}x{self.height}, GOPs {self.gop_indices.tolist()}, "
            f"{'accumulated' if self.accumulated else 'per-frame'} motion on a "
            f"{self.mv_cell}-px grid)"
        )


def _motion(path: str, grid, height: int, width: int, cell: int) -> tuple[np.ndarray, int]:
    """``grid`` checked against the frame it describes: ``[T_P, Hc, Wc, 2]`` covering
    ``height × width`` with ``cell``-pixel cells (cell 1: dense), floating point (made float32,
    the dtype every view computes in)."""
    grid = np.asarray(grid)
    hc, wc = -(-height // cell), -(-width // cell)
    if grid.ndim != 4 or grid.shape[1:] != (hc, wc, 2):
        what = "mvs must be [T_P, H, W, 2]" if cell == 1 else "mv_grid must be [T_P, Hc, Wc, 2]"
        raise ValueError(
            f"{path}: {what} = [T_P, {hc}, {wc}, 2] for {width}x{height} frames"
            + (f" and {cell}-px cells" if cell > 1 else "")
            + f", got {list(grid.shape)}"
        )
    if not np.issubdtype(grid.dtype, np.floating):
        raise ValueError(f"{path}: motion must be floating point (px), got {grid.dtype}")
    return (grid if grid.dtype == np.float32 else grid.astype(np.float32)), cell


def difference(cur: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``int16 cur − pred`` of two ``uint8`` frames (copy-then-subtract: 15% faster than
    ``np.subtract(..., dtype=int16)``)."""
    out = np.empty(cur.shape, np.int16)
    np.copyto(out, cur)
    np.subtract(out, pred, out=out)
    return out


class ResidualSource:
    """Where a clip's residuals come from: :meth:`parts` of a box (see
    :meth:`CompressedClip.residual_parts`)."""

    def parts(self, box: Box) -> tuple[Sequence[np.ndarray], Sequence | None]:
        raise NotImplementedError


class DenseResiduals(ResidualSource):
    """Residuals given whole, ``int16 [T_P, H, W, 3]``."""

    def __init__(self, residuals: np.ndarray):
        self.residuals = residuals

    def parts(self, box: Box) -> tuple[Sequence[np.ndarray], None]:
        y0, y1, x0, x1 = box
        return self.residuals[:, y0:y1, x0:x1], None


class PredictedResiduals(ResidualSource):
    """Decoded P-frames and their predictions, both ``uint8 [H, W, 3]`` per frame (the reader's
    per-frame residual modes: predicted from the previous frame, or bilinear)."""

    def __init__(self, current: Sequence[np.ndarray], predictions: Sequence[np.ndarray]):
        self.current, self.predictions = current, predictions

    def parts(self, box: Box) -> tuple[list[np.ndarray], list[np.ndarray]]:
        y0, y1, x0, x1 = box
        return (
            [f[y0:y1, x0:x1] for f in self.current],
            [f[y0:y1, x0:x1] for f in self.predictions],
        )


class ShiftedResiduals(ResidualSource):
    """Decoded P-frames against their GOP's I-frame moved by the accumulated motion, whole
    pixels per cell (CoViAR's nearest prediction, :class:`cvpt.codec.warp.Predictor`), made
    only inside the box asked for. ``current``: T_P frames ``uint8 [H, W, 3]``; ``references``:
    one per I-frame, ``Predictor.reference`` of it (the source's own copies: editing the clip's
    I-frames or motion later does not change its residuals); ``grid``: accumulated motion
    ``float32 [T_P, Hc, Wc, 2]``, copied; P-frame t is predicted from reference
    ``t // (T_P / T_I)``."""

    def __init__(self, current: Sequence[np.ndarray], references: Sequence[np.ndarray],
                 grid: np.ndarray, cell: int):  # fmt: skip
        self.current, self.references, self.grid = current, references, grid.copy()
        h, w = references[0].shape[0] - 2 * cell, references[0].shape[1] - 2 * cell
        self.predictor = Predictor(h, w, cell, "nearest")

    def parts(self, box: Box) -> tuple[list[np.ndarray], list[np.ndarray]]:
        y0, y1, x0, x1 = box
        p = len(self.grid) // len(self.references)
        preds: list[np.ndarray] = []
        for g, ref in enumerate(self.references):
            fields = self.grid[g * p : (g + 1) * p]
            preds += list(self.predictor.predict(ref, fields, box=box))
        return [f[y0:y1, x0:x1] for f in self.current], preds
