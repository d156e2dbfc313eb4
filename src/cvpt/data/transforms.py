"""Clip geometry and normalisation (docs/design.md), for all three modalities at once.

One crop and one flip for every frame of every modality; a horizontal flip negates the MV
x-component; every resize scales MV magnitudes by its factor per axis (CoViAR forgets this);
normalisation is defined here and nowhere else. Input: a :class:`cvpt.CompressedClip` (numpy,
the video's resolution). Output: float32 tensors in the model's layout
``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``, ``residuals [3, T_P, S, S]``.

A view is made in one pass per modality, straight into the channels-first output: motion is
cropped, resized (nearest) and normalised on the codec's grid of cells and gathered into the
output last; residuals are made only inside the crop, from the decoded frame and its prediction;
I-frames are cropped, resized and normalised through a 256-entry table. The values are those of
the step-by-step definition (full-resolution fields cropped, resized, flipped, then
:func:`normalize`): ``tests/test_transforms.py`` compares the two exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from cvpt.codec.clip import Box, CompressedClip, difference
from cvpt.errors import ConfigError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # VideoMAE's I-frame statistics
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
MV_CLIP = 20.0  # px: CoViAR clips motion at ±20 and maps it to ±1 here
MODALITIES = ("iframes", "mvs", "residuals")  # the model's inputs, in its argument order
# what a batch carries for them: compact motion adds which cell each output row and column reads
INPUT_KEYS = (*MODALITIES, "mv_rows", "mv_cols")


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
    """Resize every frame so its short side is ``short_side`` (MVs scaled by the factors).

    The full-resolution arrays are made and resized: a video prepared at another short side than
    the transform's costs this once per clip (``cvpt prepare`` writes 256, the default)."""
    h, w = clip.height, clip.width
    if min(h, w) == short_side:
        return clip
    s = short_side / min(h, w)
    nw, nh = round(w * s), round(h * s)
    sx, sy = nw / w, nh / h

    def each(frames, interp):
        return np.stack([cv2.resize(f, (nw, nh), interpolation=interp) for f in frames])

    return clip.replace(
        iframes=each(clip.iframes, cv2.INTER_LINEAR),
        mvs=each(clip.mvs, cv2.INTER_NEAREST) * np.array([sx, sy], np.float32),
        residuals=each(clip.residuals, cv2.INTER_LINEAR),
    )


def apply_crop(
    clip: CompressedClip,
    crop: Crop,
    mv_clip: float = MV_CLIP,
    *,
    compact: bool = False,
    out: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Crop, resize to ``crop.size``², flip, and normalise: the model's input tensors,
    ``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``, ``residuals [3, T_P, S, S]`` float32.

    Images and residuals are resized bilinearly, motion by nearest neighbour (its fields are
    block-constant: no invented vectors) with its values scaled by the per-axis factors.
    ``compact=True`` leaves the normalisation to :func:`normalize_inputs` (on the device, after
    batching): ``iframes`` uint8 and ``residuals`` int16 as they are before it, ``mvs`` the
    normalised float32 cells the view reads with ``mv_rows`` / ``mv_cols`` (which cell each
    output row and column reads): the same values once made dense (:func:`expand_motion`).
    ``out``: tensors of those shapes and dtypes to write into (e.g. one view of a stack),
    returned. Raises ``ValueError`` for a crop that does not lie inside the frame."""
    h, w = clip.height, clip.width
    if min(crop.w, crop.h, crop.size) < 1:
        raise ValueError(f"{clip.path}: crop {crop} is empty (width, height and size ≥ 1)")
    if not (crop.x >= 0 and crop.x + crop.w <= w and crop.y >= 0 and crop.y + crop.h <= h):
        raise ValueError(
            f"{clip.path}: crop {crop.w}x{crop.h} at ({crop.x}, {crop.y}) is not inside the "
            f"{w}x{h} frame"
        )
    box = (crop.y, crop.y + crop.h, crop.x, crop.x + crop.w)
    cur, pred = clip.residual_parts(box)
    out = out or {}
    if out:
        t_i, t_p, size = len(clip.iframes), len(clip.mv_grid), crop.size
        want = {"iframes": (3, t_i, size, size), "residuals": (3, t_p, size, size)}
        if compact:
            gh, gw = _cells_read(clip.mv_cell, box, crop)
            want.update(mvs=(2, t_p, gh, gw), mv_rows=(size,), mv_cols=(size,))
        else:
            want["mvs"] = (2, t_p, size, size)
        _check_outputs(out, want, compact, clip.path)
    return {
        "iframes": _image_view(clip.iframes, box, crop, compact, out.get("iframes")),
        **_motion_view(clip.mv_grid, clip.mv_cell, box, crop, mv_clip, compact, out),
        "residuals": _residual_view(cur, pred, crop, compact, out.get("residuals")),
    }


def _output(out: torch.Tensor | None, shape: tuple, dtype) -> np.ndarray:
    """``out`` as a numpy view (checked by :func:`_check_outputs`), or a new array."""
    return np.empty(shape, dtype) if out is None else out.numpy()


def _check_outputs(out: dict, want: dict[str, tuple], compact: bool, path) -> None:
    """Every output a view is written into, checked before any is written: each key of
    ``want`` (its shape; compact motion's cells may be larger), a contiguous CPU tensor of the
    view's dtype."""
    for key, shape in want.items():
        x, dtype = out.get(key), _DTYPES[compact][key]
        fits = x is not None and x.dim() == len(shape) and x.dtype == dtype
        if fits and key == "mvs" and compact:  # cells: at least the view's
            fits = tuple(x.shape[:2]) == shape[:2] and all(
                a >= b for a, b in zip(x.shape[2:], shape[2:], strict=True)
            )
        elif fits:
            fits = tuple(x.shape) == shape
        if not fits or x.device.type != "cpu":
            got = "nothing" if x is None else f"{x.dtype} {list(x.shape)} on {x.device}"
            raise ValueError(
                f"{path}: out[{key!r}] must be a CPU {dtype} tensor {list(shape)}, got {got}"
            )
        if not x.is_contiguous():
            raise ValueError(f"{path}: out[{key!r}] must be contiguous (a view of an empty())")


# the dtypes of a view's tensors: float32, or compact (normalised by normalize_inputs later)
_DTYPES = {
    False: {"iframes": torch.float32, "mvs": torch.float32, "residuals": torch.float32},
    True: {
        "iframes": torch.uint8,
        "mvs": torch.float32,  # the cells the view reads (expand_motion)
        "mv_rows": torch.int64,
        "mv_cols": torch.int64,
        "residuals": torch.int16,
    },
}


def normalize_rgb(frames: np.ndarray) -> np.ndarray:
    """``uint8 [..., 3]`` RGB → float32 with ImageNet mean/std (VideoMAE's input statistics)."""
    return (frames.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD


def normalize_motion(mvs: np.ndarray, mv_clip: float = MV_CLIP) -> np.ndarray:
    """Motion in pixels → float32 in [−1, 1]: clipped to ±``mv_clip`` px (20: CoViAR's, for
    256-px frames; small frames move fewer pixels), then divided by it."""
    return np.clip(mvs, -mv_clip, mv_clip) / mv_clip


def normalize_residuals(residuals: np.ndarray) -> np.ndarray:
    """``int16 [..., 3]`` residuals → float32: / 255, then / ImageNet std."""
    return residuals.astype(np.float32) / 255.0 / IMAGENET_STD


def normalize(
    iframes: np.ndarray, mvs: np.ndarray, residuals: np.ndarray, mv_clip: float = MV_CLIP
) -> dict:
    """The one normalisation, on channels-last arrays (``[T, H, W, C]``): I-frames ImageNet
    mean/std (:func:`normalize_rgb`); MVs clipped to ±``mv_clip`` px then divided by it
    (:func:`normalize_motion`); residuals /255 then / ImageNet std
    (:func:`normalize_residuals`). Channels-first tensors ``[C, T, H, W]``. (:func:`apply_crop`
    computes the same values in one pass per modality.)"""
    i = normalize_rgb(iframes)
    m = normalize_motion(mvs, mv_clip)
    r = normalize_residuals(residuals)
    return {
        "iframes": torch.from_numpy(np.ascontiguousarray(i.transpose(3, 0, 1, 2))),
        "mvs": torch.from_numpy(np.ascontiguousarray(m.transpose(3, 0, 1, 2), np.float32)),
        "residuals": torch.from_numpy(np.ascontiguousarray(r.transpose(3, 0, 1, 2))),
    }


def normalize_inputs(batch: dict) -> dict:
    """Model inputs from :func:`apply_crop`'s ``compact`` tensors, wherever they are (on the
    GPU after ``.to(device)``: less than half the bytes cross from the workers and the bus):
    ``iframes`` uint8 → ImageNet mean/std, ``residuals`` int16 → / 255 / std, motion cells and
    ``mv_rows``/``mv_cols`` → dense ``mvs`` (:func:`expand_motion`). The same float32
    operations as :func:`normalize`, so the same values, exactly. Float32 inputs are returned
    as they are; other keys are kept."""
    out = dict(batch)
    i, r = batch["iframes"], batch["residuals"]
    # the channels axis is the 4th from the end: [..., 3, T, H, W]
    # Divisors are tensors on the device: CUDA divides by a Python number as a multiplication
    # by its reciprocal (1 ulp off for half the values); a tensor is divided, as numpy does.
    if i.dtype == torch.uint8:  # in place after the one new tensor: the same float32 steps
        f255 = torch.tensor(255.0, device=i.device)
        mean = torch.as_tensor(IMAGENET_MEAN, device=i.device).view(3, 1, 1, 1)
        std = torch.as_tensor(IMAGENET_STD, device=i.device).view(3, 1, 1, 1)
        out["iframes"] = i.float().div_(f255).sub_(mean).div_(std)
    if r.dtype == torch.int16:
        f255 = torch.tensor(255.0, device=r.device)
        std = torch.as_tensor(IMAGENET_STD, device=r.device).view(3, 1, 1, 1)
        out["residuals"] = r.float().div_(f255).div_(std)
    if "mv_rows" in batch:  # compact motion: the cells a view reads and which, per pixel
        out["mvs"] = expand_motion(batch["mvs"], out.pop("mv_rows"), out.pop("mv_cols"))
    return out


@dataclass(frozen=True)
class ClipTransform:
    """A :class:`cvpt.CompressedClip` (numpy, the video's resolution) → the model's inputs.

    Resizes the short side to ``short_side`` (MVs scaled with it), crops ``size``² (train: a
    random multi-scale corner crop and flip drawn from ``rng``; eval: ``crops`` = 1 centre or 3
    crops along the long side), and normalises (I-frames ImageNet mean/std, MVs clipped to
    ±``mv_clip`` px then / ``mv_clip``, residuals / 255 / ImageNet std).

    ``transform(clip)`` gives float32 tensors ``iframes [3, T_I, S, S]``, ``mvs [2, T_P, S, S]``,
    ``residuals [3, T_P, S, S]`` for one crop, or the same with a leading ``[crops]`` axis for 3.
    ``compact=True``: uint8 I-frames, int16 residuals and the motion's cells with their maps,
    made the same float32 inputs later by :func:`normalize_inputs` (on the device; see
    :func:`apply_crop`).
    Raises :class:`cvpt.errors.ConfigError` for ``crops`` other than 1 or 3, ``ValueError`` for
    ``train=True`` without an ``rng``.
    """

    size: int = 224
    short_side: int = 256
    train: bool = False
    flip: bool = True
    crops: int = 1
    mv_clip: float = MV_CLIP
    compact: bool = False

    @property
    def views_per_clip(self) -> int:
        """Crops taken of every clip: 1 when training, else ``crops``."""
        return 1 if self.train else self.crops

    def boxes(self, clip: CompressedClip, rng: np.random.Generator | None = None) -> list[Crop]:
        """The crops this transform takes of ``clip`` (after :func:`resize_short_side`): one
        random crop drawn from ``rng`` when training, else ``crops`` eval crops."""
        h, w = clip.height, clip.width
        if min(h, w) != self.short_side:
            s = self.short_side / min(h, w)
            h, w = round(h * s), round(w * s)
        if self.train:
            if rng is None:
                raise ValueError("ClipTransform(train=True) draws its crop from rng: pass one")
            return [train_crop(h, w, rng, size=self.size, flip=self.flip)]
        return eval_crops(h, w, size=self.size, num_crops=self.crops)

    def crops_of(
        self, clip: CompressedClip, rng: np.random.Generator | None = None
    ) -> list[dict[str, torch.Tensor]]:
        """One dict of ``[C, T, S, S]`` tensors per crop (1 when training)."""
        boxes = self.boxes(clip, rng)
        clip = resize_short_side(clip, self.short_side)
        return [apply_crop(clip, box, self.mv_clip, compact=self.compact) for box in boxes]

    def cells(self, clip: CompressedClip, rng: np.random.Generator | None = None) -> tuple:
        """``(rows, columns)``: the most cells of ``clip``'s motion grid one of this
        transform's views reads (compact views' motion size; :meth:`empty`'s ``cells``)."""
        boxes = self.boxes(clip, rng)
        clip = resize_short_side(clip, self.short_side)
        spans = [_cells_read(clip.mv_cell, (b.y, b.y + b.h, b.x, b.x + b.w), b) for b in boxes]
        return max(r for r, _ in spans), max(c for _, c in spans)

    def empty(
        self, views: int, t_i: int, t_p: int, cells: tuple[int, int] | None = None
    ) -> dict[str, torch.Tensor]:
        """Uninitialised outputs for ``views`` views of clips of ``t_i`` I-frames and ``t_p``
        P-frames: ``[views, C, T, S, S]`` each, in this transform's dtypes (:meth:`write`);
        compact: motion ``[views, 2, T_P, *cells]`` (:meth:`cells`) and ``mv_rows``,
        ``mv_cols [views, S]``."""
        s, dtypes = self.size, _DTYPES[self.compact]
        out = {
            "iframes": torch.empty((views, 3, t_i, s, s), dtype=dtypes["iframes"]),
            "mvs": torch.empty((views, 2, t_p, s, s), dtype=dtypes["mvs"]),
            "residuals": torch.empty((views, 3, t_p, s, s), dtype=dtypes["residuals"]),
        }
        if self.compact:
            if cells is None:
                raise ValueError("compact outputs need the motion's cells: empty(..., cells=)")
            out["mvs"] = torch.empty((views, 2, t_p, *cells), dtype=dtypes["mvs"])
            out["mv_rows"] = torch.empty((views, s), dtype=torch.int64)
            out["mv_cols"] = torch.empty((views, s), dtype=torch.int64)
        return out

    def write(
        self,
        clip: CompressedClip,
        out: dict[str, torch.Tensor],
        first: int = 0,
        rng: np.random.Generator | None = None,
    ) -> int:
        """Write this transform's views of ``clip`` into ``out[k][first:]`` (from :meth:`empty`)
        without an intermediate copy; returns how many were written."""
        boxes = self.boxes(clip, rng)
        room = min(len(t) for t in out.values()) - first if out else 0
        if first < 0 or room < len(boxes):
            raise ValueError(
                f"{clip.path}: {len(boxes)} view(s) from index {first} do not fit in outputs "
                f"of {room + first} view(s)"
            )
        clip = resize_short_side(clip, self.short_side)
        for k, box in enumerate(boxes):
            view = {key: t[first + k] for key, t in out.items()}
            apply_crop(clip, box, self.mv_clip, compact=self.compact, out=view)
        return len(boxes)

    def __call__(
        self, clip: CompressedClip, rng: np.random.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        boxes = self.boxes(clip, rng)
        if len(boxes) == 1:
            clip = resize_short_side(clip, self.short_side)
            return apply_crop(clip, boxes[0], self.mv_clip, compact=self.compact)
        cells = self.cells(clip) if self.compact else None  # eval crops: no rng drawn
        out = self.empty(len(boxes), len(clip.iframes), len(clip.mv_grid), cells)
        self.write(clip, out, 0, rng)
        return out


# The I-frame normalisation as a table, one float32 per uint8 value and channel: exactly the
# values normalize_rgb gives, at the cost of one lookup per pixel.
RGB_TABLES = [
    np.ascontiguousarray(
        normalize_rgb(np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))[:, c]
    ).reshape(256, 1)
    for c in range(3)
]


def _image_view(frames: np.ndarray, box: Box, crop: Crop, compact: bool, out=None) -> torch.Tensor:
    """``[3, T, S, S]`` of ``uint8 [T, H, W, 3]`` frames: crop, bilinear resize, flip, and the
    normalisation table per channel plane (``compact``: the planes as they are)."""
    y0, y1, x0, x1 = box
    s = crop.size
    res = _output(out, (3, len(frames), s, s), np.uint8 if compact else np.float32)
    for t, frame in enumerate(frames):
        for c, plane in enumerate(_planes(frame[y0:y1, x0:x1], crop)):
            if compact:
                res[c, t] = plane
            else:
                cv2.LUT(plane, RGB_TABLES[c], dst=res[c, t])
    return torch.from_numpy(res)


def _motion_view(
    grid: np.ndarray, cell: int, box: Box, crop: Crop, mv_clip: float, compact: bool, out=None
) -> dict[str, torch.Tensor]:
    """The motion of a view, from motion on a grid of ``cell``-px cells (``float32 [T, Hc, Wc,
    2]``): the crop's pixels resized by nearest neighbour read the cells their source pixels lie
    in, so the values are scaled, flipped and normalised on the grid and gathered last.
    ``{"mvs": [2, T, S, S]}``; compact: ``{"mvs": [2, T, gh, gw]}``, the normalised cells the
    view reads (``out`` may be larger: the rest is zero), and ``mv_rows``, ``mv_cols`` (``int64
    [S]``), which of them each output row and column reads: :func:`expand_motion` gathers the
    same float32 values on the device."""
    s = crop.size
    rows, cols = _cell_maps(cell, box, crop)
    y0, y1, x0, x1 = box
    g = grid * np.array([s / (x1 - x0), s / (y1 - y0)], np.float32)
    if crop.flip:
        g = g * np.array([-1.0, 1.0], np.float32)  # content moving right now moves left
    g = normalize_motion(g, mv_clip).astype(np.float32)
    g = np.ascontiguousarray(g.transpose(3, 0, 1, 2))  # [2, T, Hc, Wc]
    out = out or {}
    if compact:
        r0, c0 = rows.min(), cols.min()
        gh, gw = rows.max() - r0 + 1, cols.max() - c0 + 1
        cells = out.get("mvs")
        if cells is None:
            cells = torch.empty((2, len(grid), gh, gw))
        a = cells.numpy()
        a[:, :, :gh, :gw] = g[:, :, r0 : r0 + gh, c0 : c0 + gw]
        a[:, :, gh:], a[:, :, :gh, gw:] = 0, 0  # a larger output's padding
        found = {"mv_rows": rows - r0, "mv_cols": cols - c0}
        for key, v in found.items():
            t = out.get(key)
            if t is None:
                t = torch.empty(s, dtype=torch.int64)
            t.numpy()[:] = v
            found[key] = t
        return {"mvs": cells, **found}
    res = _output(out.get("mvs"), (2, len(grid), s, s), np.float32)
    # mode="clip": the indices are in range, and without it numpy takes into a temporary first
    np.take(np.take(g, cols, axis=3, mode="clip"), rows, axis=2, out=res, mode="clip")
    return {"mvs": torch.from_numpy(res)}


def _cells_read(cell: int, box: Box, crop: Crop) -> tuple[int, int]:
    """``(rows, columns)`` of cells a view of ``box`` reads (compact motion's size)."""
    rows, cols = _cell_maps(cell, box, crop)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _cell_maps(cell: int, box: Box, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """``intp [S]`` each: the cell row every output row reads and the cell column every output
    column reads (flipped when the crop is), for a crop resized by nearest neighbour."""
    y0, y1, x0, x1 = box
    ymap, xmap = _nearest_maps(y1 - y0, x1 - x0, crop.size)
    rows, cols = (y0 + ymap) // cell, (x0 + xmap) // cell
    return rows, (cols[::-1] if crop.flip else cols)


def expand_motion(cells: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Compact motion made dense where it is (a GPU): ``cells [..., 2, T, gh, gw]``, ``rows``
    and ``cols [..., S]`` → ``float32 [..., 2, T, S, S]``, ``out[..., y, x] = cells[..., rows[y],
    cols[x]]``: copies of the same float32 values the float32 view gathers."""
    lead, (two, t, gh, gw), s = cells.shape[:-4], cells.shape[-4:], rows.shape[-1]
    c = cells.reshape(-1, two * t, gh, gw)
    r, k = rows.reshape(-1, 1, s, 1), cols.reshape(-1, 1, 1, s)
    x = torch.gather(c, 3, k.expand(len(c), two * t, gh, s))
    return torch.gather(x, 2, r.expand(len(c), two * t, s, s)).reshape(*lead, two, t, s, s)


@functools.lru_cache(maxsize=512)
def _nearest_maps(h: int, w: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Which source row and column ``cv2.resize(..., INTER_NEAREST)`` of an ``h × w`` image to
    ``s × s`` reads for every output row and column (``intp [s]`` each): asked of OpenCV itself,
    on an image of coordinates of the motion fields' own type, so the gather matches it exactly.
    """
    if (h, w) == (s, s):
        ymap = xmap = np.arange(s)
    else:
        coords = np.empty((h, w, 2), np.float32)
        coords[..., 0] = np.arange(w, dtype=np.float32)[None, :]
        coords[..., 1] = np.arange(h, dtype=np.float32)[:, None]
        read = cv2.resize(coords, (s, s), interpolation=cv2.INTER_NEAREST)
        xmap, ymap = read[0, :, 0].astype(np.intp), read[:, 0, 1].astype(np.intp)
        if not ((read[..., 0] == xmap).all() and (read[..., 1] == ymap[:, None]).all()):
            raise AssertionError("cv2.resize(INTER_NEAREST) is not separable on this build")
    for a in (ymap, xmap):
        a.setflags(write=False)
    return ymap, xmap


def _residual_view(cur, pred, crop: Crop, compact: bool, out=None) -> torch.Tensor:
    """``[3, T, S, S]`` residuals of a crop from ``clip.residual_parts`` (``cur`` and ``pred``
    uint8 frames, or ``cur`` int16 residuals and ``pred`` None). At the output size the two
    frames are subtracted straight into the float output; otherwise their int16 difference is
    resized bilinearly (what resizing the full-resolution residual gives)."""
    s = crop.size
    res = _output(out, (3, len(cur), s, s), np.int16 if compact else np.float32)
    for t, frame in enumerate(cur):
        if pred is not None and frame.shape[:2] == (s, s) and not compact:
            a, b = (cv2.flip(f, 1) if crop.flip else f for f in (frame, pred[t]))
            for c, (pa, pb) in enumerate(zip(cv2.split(a), cv2.split(b), strict=True)):
                np.subtract(pa, pb, out=res[c, t], dtype=np.float32)
                _scale_residual(res[c, t], c)
            continue
        r = frame if pred is None else difference(frame, pred[t])
        for c, plane in enumerate(_planes(r, crop)):
            if compact:
                res[c, t] = plane
            else:  # int16 → float32 and / 255 in one pass, then / std: normalize_residuals' steps
                np.divide(plane, np.float32(255.0), out=res[c, t], dtype=np.float32)
                res[c, t] /= IMAGENET_STD[c]
    return torch.from_numpy(res)


def _planes(image: np.ndarray, crop: Crop) -> tuple[np.ndarray, ...]:
    """The channel planes of a crop's ``[h, w, 3]`` pixels at the output size: resized
    bilinearly (unless already ``crop.size``²) and flipped as the crop says."""
    s = crop.size
    if image.shape[:2] != (s, s):
        image = cv2.resize(image, (s, s), interpolation=cv2.INTER_LINEAR)
    if crop.flip:
        image = cv2.flip(image, 1)
    return cv2.split(image)


def _scale_residual(plane: np.ndarray, c: int) -> None:
    """A float32 residual plane of channel ``c``, in place: what :func:`normalize_residuals`
    does (/ 255, then / the channel's ImageNet std: two roundings, as there)."""
    plane /= np.float32(255.0)
    plane /= IMAGENET_STD[c]
