"""Display rotation: the display matrix phones and cameras write, applied to pixels as the
ffmpeg CLI's autorotate does (right angles and mirrors; other angles are refused)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av

from cvpt.codec.container import frame_side_data

if TYPE_CHECKING:
    import numpy as np

_IDENTITY = (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)


@dataclass(frozen=True)
class Orientation:
    """How coded pixels become upright: transpose, then flip rows, then flip columns.

    ``rotation`` is the display matrix's counter-clockwise angle in degrees (what PyAV's
    ``frame.rotation`` and ffprobe's ``rotation`` say; a phone held upright writes 90 or −90),
    ``mirrored`` whether it also mirrors. The eight right-angle orientations are exact.
    """

    rotation: int = 0
    mirrored: bool = False
    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """``(width, height)`` as displayed."""
        return (height, width) if self.transpose else (width, height)

    def apply(self, plane: np.ndarray) -> np.ndarray:
        """An ``[H, W, ...]`` array turned upright (a view; copy before handing it to C)."""
        if self.transpose:
            plane = plane.swapaxes(0, 1)
        if self.flip_rows:
            plane = plane[::-1]
        if self.flip_cols:
            plane = plane[:, ::-1]
        return plane


def has_display_matrix(frame: av.VideoFrame) -> bool:
    """True when the frame is to be turned or mirrored for display (a non-identity matrix)."""
    sd = frame_side_data(frame).get("DISPLAYMATRIX")
    return sd is not None and struct.unpack("<9i", bytes(sd)) != _IDENTITY


def frame_orientation(frame: av.VideoFrame) -> Orientation:
    """The display orientation of a decoded frame (identity without a display matrix).

    Raises ValueError for an angle that is not a multiple of 90°.
    """
    sd = frame_side_data(frame).get("DISPLAYMATRIX")
    if sd is None:
        return Orientation()
    m = struct.unpack("<9i", bytes(sd))
    if m == _IDENTITY:
        return Orientation()
    ccw = round(frame.rotation)
    mirrored = m[0] * m[4] - m[1] * m[3] < 0
    theta = -ccw % 360  # clockwise, as fftools' get_rotation
    # fftools/ffmpeg_filter.c, autorotate: transpose=clock / cclock_flip, hflip+vflip, ...
    if theta == 90:
        t, r, c = (True, False, False) if m[3] > 0 else (True, False, True)
    elif theta == 270:
        t, r, c = (True, True, True) if m[3] < 0 else (True, True, False)
    elif theta == 180:
        t, r, c = False, m[4] < 0, m[0] < 0
    elif theta == 0:
        t, r, c = False, m[4] < 0, False
    else:
        raise ValueError(f"its display matrix rotates by {ccw}°, not a multiple of 90°")
    return Orientation(ccw, mirrored, t, r, c)


def upright_frame(frame: av.VideoFrame, orient: Orientation) -> av.VideoFrame:
    """A ``yuv420p`` frame turned upright, plane by plane (no colour conversion). Its colour
    tags (range, matrix) are copied; the display matrix is not (it has been applied)."""
    if orient.is_identity:
        return frame
    import numpy as np  # here: an upright source (most) never needs it

    w, h = frame.width, frame.height
    flat = frame.to_ndarray().ravel()  # yuv420p: Y, then U and V at half size, packed
    ends = np.cumsum([0, w * h, w * h // 4, w * h // 4])
    sizes = [(h, w), (h // 2, w // 2), (h // 2, w // 2)]
    planes = [
        orient.apply(flat[a:b].reshape(size)).ravel()
        for a, b, size in zip(ends[:-1], ends[1:], sizes, strict=True)
    ]
    ow, oh = orient.display_size(w, h)
    out = av.VideoFrame.from_ndarray(
        np.concatenate(planes).reshape(oh * 3 // 2, ow), format="yuv420p"
    )
    out.color_range, out.colorspace = frame.color_range, frame.colorspace
    return out
