"""``cvpt.read_clip``: I-frames, motion vectors and residuals of one clip, straight from the codec.

Work per clip is bounded and independent of the video's length: GOP starts are computed from
the header (frame count and rate, what ``cvpt prepare`` writes) and confirmed on the decoded
I-frames, with a cached packet index as the fallback; one seek per run of GOPs; at most
``num_gops × gop`` decoded frames, and the decoder drops the frames after the last sampled
position unseen. Only the frames a clip uses are converted to RGB (one swscale thread); motion
is accumulated on a grid of cells (16 px for MPEG-4's macroblocks, 4 px otherwise) and stays
there; residuals are predicted when a crop asks for them (:mod:`cvpt.codec.clip`).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from cvpt.codec.clip import CompressedClip, PredictedResiduals, ShiftedResiduals
from cvpt.codec.container import (
    ffmpeg_errors,
    frame_side_data,
    frame_timing,
    open_video,
    reorder_window,
    scan_packets,
    stream_fps,
)
from cvpt.codec.motion import Accumulator, MotionRecords, grid_shape, grid_to_dense
from cvpt.codec.orient import has_display_matrix
from cvpt.codec.probe import (
    READABLE_CODECS,
    aspect_text,
    display_aspect,
    key_frame_problem,
    non_square_problem,
    sample_aspect,
)
from cvpt.codec.sampling import (
    ClipSpec,
    choose_start_gop,
    clip_gop_indices,
    sample_positions,
)
from cvpt.codec.warp import Predictor
from cvpt.errors import CorruptVideoError, EmptyVideoError, UnpreparedVideoError

_I, _P, _B = (
    av.video.frame.PictureType.I,
    av.video.frame.PictureType.P,
    av.video.frame.PictureType.B,
)


class ShortVideoWarning(UserWarning):
    """A video had fewer GOPs than a clip needs; its last GOP was repeated."""


@dataclass(frozen=True)
class _Index:
    keyframe_pts: tuple[int, ...]  # pts of every GOP's I-frame, in order
    frames: int
    width: int
    height: int
    fps: float
    computed: bool  # True: pts computed from the header, to be confirmed by the decode


@dataclass(frozen=True)
class _Request:
    """What read_clip was asked for, passed down in one piece."""

    spec: ClipSpec
    start_gop: int | None
    train: bool


def read_clip(
    path: str | Path,
    spec: ClipSpec | None = None,
    *,
    start_gop: int | None = None,
    train: bool = False,
    rng: np.random.Generator | int | None = None,
    **changes,
) -> CompressedClip:
    """Read one compressed-domain clip of a prepared video (see ``cvpt prepare``).

    ``spec`` (:class:`ClipSpec`, default the paper's) says what a clip is; ``changes`` are
    :class:`ClipSpec` fields changed for this call, e.g. ``read_clip(p, accumulate=False)``.
    Test mode (default): the centred run of ``num_gops`` GOPs and P positions 2, 6, 10. Train
    mode: a random start GOP and one random P position per third of each GOP, drawn from
    ``rng`` (a Generator or a seed). ``start_gop`` fixes the first GOP (multi-view testing).
    A video with fewer than ``num_gops`` GOPs repeats its last one (with a
    :class:`ShortVideoWarning`).

    ``residual_interp`` moves the reference with ``"nearest"`` (CoViAR; default: each cell
    shifted by its motion rounded to whole pixels, ties toward zero) or ``"linear"`` (bilinear,
    as the codec's own half-pel prediction: residuals 9–15% smaller on the generated scenes,
    ~0.3 ms more per P-frame). ``mv_cell`` is the motion grid in pixels
    (None: 16 for MPEG-4, whose vectors are per macroblock; 4 for H.264).

    Raises a :class:`cvpt.VideoError` subclass naming the file: missing, not a video, empty,
    corrupt, or :class:`UnpreparedVideoError` for B-frames / another GOP / another codec;
    ``ValueError`` for an invalid spec.
    """
    spec = (spec or ClipSpec()).replace(**changes)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    req = _Request(spec, start_gop, train)
    # First with GOP starts computed from the header; if the file disagrees, from its packets.
    for demux in (False, True):
        container, stream = open_video(path, export_mvs=True)
        try:
            return _read(str(path), container, stream, req, rng, demux=demux)
        except _SeekMismatch:
            continue
        finally:
            container.close()
    raise AssertionError("unreachable: the demuxed index never raises _SeekMismatch")


def count_gops(path: str | Path, gop_size: int = ClipSpec.gop_size) -> int:
    """How many GOPs ``read_clip`` sees in ``path``, without decoding a frame: header
    arithmetic less the frames whose bytes lie past the end of a truncated file (one look at
    the container's index), or the cached packet scan for files whose header cannot say. Every
    GOP counted here has its I-frame's bytes in the file (multi-view testing spreads its views
    over these)."""
    container, stream = open_video(path)
    try:
        return len(_index(str(path), container, stream, gop_size).keyframe_pts)
    finally:
        container.close()


def _read(path: str, container, stream, req: _Request, rng, *, demux: bool) -> CompressedClip:
    sar = sample_aspect(stream)  # (the container's, else the codec's)
    if sar != 1:  # read as stored, every picture would be squeezed
        cc = stream.codec_context
        dar = aspect_text(display_aspect(cc.width, cc.height, sar))
        raise UnpreparedVideoError(path, non_square_problem(aspect_text(sar), dar))
    index = _index(path, container, stream, req.spec.gop_size, demux=demux)
    n_gops = len(index.keyframe_pts)
    start_gop = req.start_gop
    if start_gop is None:
        start_gop = choose_start_gop(n_gops, req.spec.num_gops, train=req.train, rng=rng)
    elif not 0 <= start_gop < n_gops:
        raise ValueError(f"{path}: start_gop={start_gop} outside the video's {n_gops} GOPs")
    gops = clip_gop_indices(n_gops, req.spec.num_gops, start_gop)
    if gops[-1] < start_gop + req.spec.num_gops - 1:
        warnings.warn(
            f"{path}: {n_gops} GOP(s) from GOP {start_gop}, fewer than the clip's "
            f"{req.spec.num_gops}; repeating the last GOP",
            ShortVideoWarning,
            stacklevel=3,
        )
    # One draw per distinct GOP: a repeated GOP (a short video) is a copy of its first slot,
    # so its positions must be that slot's too, or they would name frames it does not hold.
    drawn: dict[int, np.ndarray] = {}
    for g in gops.tolist():
        if g not in drawn:
            n = min(req.spec.gop_size, index.frames - g * req.spec.gop_size)
            drawn[g] = sample_positions(n, req.spec.p_per_gop, train=req.train, rng=rng)
    positions = np.stack([drawn[g] for g in gops.tolist()])
    cell = req.spec.mv_cell or (16 if stream.codec_context.name == "mpeg4" else 4)
    return _decode_clip(path, container, stream, index, gops, positions, req, cell)


# Packet indexes built by demuxing, by (path, size, mtime, gop): only for files whose GOP starts
# cannot be computed from the header (no frame count, e.g. mkv); a few hundred bytes per video.
_INDEX_CACHE: OrderedDict[tuple, _Index] = OrderedDict()
_INDEX_CACHE_SIZE = 16384


class _SeekMismatch(Exception):
    """The computed pts of a GOP's I-frame was not where the file has it."""


def clear_index_cache() -> None:
    """Forget cached packet indexes (benchmarks measure cold reads with it)."""
    _INDEX_CACHE.clear()


def _index(path: str, container, stream, gop_size: int, *, demux: bool = False) -> _Index:
    """Where each GOP starts. Computed from the header when it can be (frame count, constant
    frame rate: what `cvpt prepare` writes), so a clip costs the same in a 10 s and a 10 min
    video; otherwise, or with ``demux``, from one pass over the packets (cached)."""
    codec = stream.codec_context.name
    if codec not in READABLE_CODECS:
        raise UnpreparedVideoError(path, f"its video codec is {codec}, not MPEG-4 Part 2")
    cc = stream.codec_context
    rate, tb = stream.average_rate, stream.time_base
    if not demux and stream.frames > 0 and rate and tb:
        frames = _frames_present(path, stream)
        n_gops = -(-frames // gop_size)
        return _Index(
            keyframe_pts=_keyframe_pts(
                stream.start_time or 0, n_gops * gop_size, gop_size, rate, tb
            ),
            frames=frames,
            width=cc.width,
            height=cc.height,
            fps=float(stream_fps(stream)),
            computed=True,
        )
    st = Path(path).stat()
    key = (path, st.st_size, st.st_mtime_ns, gop_size)
    if key in _INDEX_CACHE:
        _INDEX_CACHE.move_to_end(key)
        return _INDEX_CACHE[key]
    index = _demux_index(path, container, stream, gop_size)
    _INDEX_CACHE[key] = index
    if len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
        _INDEX_CACHE.popitem(last=False)
    return index


def _frames_present(path: str, stream) -> int:
    """The header's frame count, less the frames whose bytes lie past the end of the file (a
    truncated mp4 whose index is at its start: the header still lists every frame). One look
    at the last index entry; the entries are scanned only when it is missing."""
    entries = stream.index_entries
    n = min(len(entries), stream.frames)
    if n == 0:
        return stream.frames
    size = os.path.getsize(path)
    last = entries[n - 1]
    if last.pos + last.size <= size:
        return stream.frames
    return sum(1 for k in range(n) if entries[k].pos + entries[k].size <= size)


def _keyframe_pts(start: int, frames: int, gop_size: int, rate, time_base) -> tuple[int, ...]:
    """pts of frames 0, gop, 2·gop, … below ``frames`` at a constant ``rate`` (frames/s) in
    ``time_base`` units, rounded half to even like ``round(Fraction)``: integer numpy, so a
    10-minute video's 1500 GOPs cost microseconds, not a Fraction operation each."""
    rate, time_base = Fraction(rate), Fraction(time_base)
    num = rate.denominator * time_base.denominator  # pts units per frame = num / den
    den = rate.numerator * time_base.numerator
    q, r = np.divmod(np.arange(0, frames, gop_size, dtype=np.int64) * num, den)
    q += (2 * r > den) | ((2 * r == den) & (q % 2 == 1))
    return tuple((q + start).tolist())


def _demux_index(path: str, container, stream, gop_size: int) -> _Index:
    pts, keys = scan_packets(container, stream, path)
    keys = [k for p, k in zip(pts, keys, strict=True) if p is not None]
    pts = [p for p in pts if p is not None]
    if not pts:
        raise EmptyVideoError(path, "the video stream holds no frame")
    if any(b <= a for a, b in itertools.pairwise(pts)):
        raise UnpreparedVideoError(path, "its frames are stored out of display order (B-frames)")
    key_at = [i for i, k in enumerate(keys) if k]
    problem = key_frame_problem(key_at, len(pts), gop_size)
    if problem:
        raise UnpreparedVideoError(path, problem)
    if not frame_timing(stream, pts, reorder_window(stream))[1]:
        raise UnpreparedVideoError(path, "its frame rate is variable")
    cc = stream.codec_context
    return _Index(
        keyframe_pts=tuple(pts[i] for i in key_at),
        frames=len(pts),
        width=cc.width,
        height=cc.height,
        fps=float(stream_fps(stream)),
        computed=False,
    )


@dataclass
class _Sampled:
    """A sampled P-frame, kept from its decode until its GOP's fields are known."""

    out: int  # its slot in the clip's P outputs
    record: int  # index of its motion records in the GOP's
    ref: np.ndarray | None  # the reference it is predicted from (eager residual modes)


class _ClipBuffers:
    """The outputs of one clip, filled GOP by GOP.

    While a GOP decodes, a frame leaves only what the outputs need (the I-frame and the sampled
    P-frames as RGB, each P-frame's motion records, copied) and is released at once, so the
    decoder keeps reusing its few buffers. ``finish()`` then turns the clip's motion records
    into fields in one batch (forty P-frames cost one numpy pass over their records instead of
    forty) and accumulates them GOP by GOP on the cell grid. Nothing is made at full resolution
    but the frames themselves: motion stays on the grid and, in the default mode (accumulated,
    nearest), the predictions are made later, only inside the crop a view needs
    (:mod:`cvpt.codec.clip`).
    """

    def __init__(
        self, h: int, w: int, t_i: int, t_p: int, accumulate: bool, interp: str, cell: int
    ):
        self.h, self.w, self.cell, self.p = h, w, cell, t_p // t_i
        self.iframes = np.empty((t_i, h, w, 3), np.uint8)
        self.pframes: list[np.ndarray | None] = [None] * t_p  # RGB of the sampled P-frames
        self._grid = grid_shape(h, w, cell)
        self.grid = np.empty((t_p, *self._grid, 2), np.float32)
        self.accumulate = accumulate
        # Predictions from the I-frame by whole-pixel cell shifts can wait for the crop; the
        # per-frame and bilinear modes predict each frame now, from a reference gone later.
        self.lazy = accumulate and interp == "nearest"
        self.predictions: list[np.ndarray | None] = [None] * t_p
        self.refs: list[np.ndarray | None] = [None] * t_i  # each I-frame as a reference
        self._predictor = Predictor(h, w, cell, interp)
        # One swscale context for the clip: a frame's own to_ndarray(format=...) builds a new one
        # for every frame.
        self._rgb = VideoReformatter()
        self._records = MotionRecords()  # the P-frames whose MVs are needed, the clip's
        self._gops: list[tuple[int, list[_Sampled]]] = []  # (first record, sampled) per GOP
        self._copies: list[tuple[int, int]] = []  # (slot, slot it repeats): short videos
        self._ref: np.ndarray | None = None  # what the next sampled frame is predicted from

    def start_gop(self, slot: int, frame: av.VideoFrame, outs: list[int]) -> None:
        """The GOP's I-frame: store it as RGB; it is the reference of the GOP's residuals.
        ``outs``: P slots that take the I-frame itself (a GOP that is a lone I-frame, see
        ``sampling.segment_bounds``): zero motion and zero residual, written here."""
        self.iframes[slot] = rgb = self._to_rgb(frame)
        for out in outs:
            self.grid[out] = 0
            self.pframes[out] = self.predictions[out] = rgb
        # the residuals' own copy of their reference: the clip's I-frames are the user's to edit
        self.refs[slot] = self._ref = self._predictor.reference(rgb)
        self._gops.append((len(self._records), []))

    def p_frame(self, frame: av.VideoFrame, outs: list[int], next_wanted: bool) -> None:
        """One P-frame: keep its MVs; if sampled (``outs``: its slots, several when a short
        GOP's thirds share a frame), its RGB too."""
        rgb = self._to_rgb(frame) if outs else None
        for out in outs:
            self.pframes[out] = rgb
            self._gops[-1][1].append(_Sampled(out, len(self._records), self._ref))
        if self.accumulate or outs:  # non-accumulated: only sampled frames' MVs
            self._records.append(frame_side_data(frame).get("MOTION_VECTORS"))
        if not self.accumulate and next_wanted:  # the next sampled frame is predicted from this
            self._ref = self._predictor.reference(rgb if rgb is not None else self._to_rgb(frame))

    def repeat_slot(self, dst: int, src: int) -> None:
        """Slot ``dst`` repeats the GOP decoded for slot ``src`` (short videos)."""
        self.iframes[dst] = self.iframes[src]
        self.refs[dst] = self.refs[src]
        self._copies.append((dst, src))

    def finish(self) -> None:
        """Write every sampled P-frame's MV field (and, in the eager modes, its prediction)."""
        fields = self._records.fields(self._grid, self.cell)
        acc = Accumulator(self._grid, self.cell)
        for start, sampled in self._gops:
            if not sampled:
                continue
            first = sampled[0].out  # a GOP's sampled frames fill its p consecutive slots
            picked = self.grid[first : first + len(sampled)]
            if self.accumulate:
                acc.reset()
                folded = start
                for i, s in enumerate(sampled):
                    for d in fields[folded : s.record + 1]:
                        acc.add(d)
                    folded, picked[i] = s.record + 1, acc.field
            else:
                picked[:] = fields[[s.record for s in sampled]]
            if not self.lazy:
                self._predict(sampled, picked)
        p = self.p
        for dst, src in self._copies:
            self.grid[dst * p : (dst + 1) * p] = self.grid[src * p : (src + 1) * p]
            self.pframes[dst * p : (dst + 1) * p] = self.pframes[src * p : (src + 1) * p]
            self.predictions[dst * p : (dst + 1) * p] = self.predictions[src * p : (src + 1) * p]

    def _predict(self, sampled: list[_Sampled], picked: np.ndarray) -> None:
        dense = grid_to_dense(picked, self.h, self.w, self.cell)
        if self.accumulate:  # one call: the frames share their reference, the I-frame
            preds = list(self._predictor.predict(sampled[0].ref, picked, dense))
        else:
            preds = [
                self._predictor.predict(s.ref, f, d)
                for s, f, d in zip(sampled, picked, dense, strict=True)
            ]
        for s, pred in zip(sampled, preds, strict=True):
            self.predictions[s.out] = pred

    def residual_source(self) -> ShiftedResiduals | PredictedResiduals:
        if self.lazy:
            return ShiftedResiduals(self.pframes, self.refs, self.grid, self.cell)
        return PredictedResiduals(self.pframes, self.predictions)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        return self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()


def _decode_clip(path, container, stream, index, gops, positions, req: _Request, cell: int):
    t_i, p = positions.shape
    gop_size = req.spec.gop_size
    buf = _ClipBuffers(
        index.height, index.width, t_i, t_i * p, req.spec.accumulate, req.spec.residual_interp, cell
    )
    cc = stream.codec_context
    first_slot: dict[int, int] = {}  # GOP → the slot that decoded it
    frames = None
    with ffmpeg_errors(path):
        for slot, g in enumerate(int(g) for g in gops):
            if g in first_slot:
                buf.repeat_slot(slot, first_slot[g])
                continue
            if frames is None or g - 1 not in first_slot:
                container.seek(index.keyframe_pts[g], stream=stream, backward=True)
                frames = _frames_from(container, stream, path, index, g, gop_size)
            first_slot[g] = slot
            wanted: dict[int, list[int]] = {}  # position → its slots (short GOPs repeat one)
            for k, pos in enumerate(positions[slot]):
                wanted.setdefault(int(pos), []).append(slot * p + k)
            last = max(wanted)
            for pos in range(last + 1):
                frame = next(frames, None)
                if frame is None:
                    if index.computed:  # GOP starts assumed from the header: ask the packets
                        raise _SeekMismatch
                    raise CorruptVideoError(path, f"GOP {g} ends after {pos} of its frames")
                _check_frame(path, frame, index, g, pos, gop_size)
                if pos == 0:
                    cc.skip_frame = "DEFAULT"
                    buf.start_gop(slot, frame, wanted.get(0, []))
                else:
                    buf.p_frame(frame, wanted.get(pos, []), pos + 1 in wanted)
            # The rest of the GOP is not needed: let the decoder drop it unseen, up to the next
            # I-frame (whose pts _check_frame confirms, so a longer GOP cannot slip through).
            cc.skip_frame = "NONKEY"
    buf.finish()
    return CompressedClip(
        path=path,
        iframes=buf.iframes,
        mv_grid=buf.grid,
        mv_cell=cell,
        residual_source=buf.residual_source(),
        gop_indices=np.asarray(gops),
        positions=positions,
        accumulated=req.spec.accumulate,
        num_gops_in_video=len(index.keyframe_pts),
        gop_size=gop_size,
        fps=index.fps,
    )


def _frames_from(container, stream, path, index: _Index, gop: int, gop_size: int):
    """Decoded frames from GOP ``gop``'s I-frame on (a seek may land a little early)."""
    start_pts = index.keyframe_pts[gop]
    frames = container.decode(stream)
    for skipped, frame in enumerate(frames):
        if frame.pts is None or frame.pts >= start_pts:
            if frame.pts != start_pts:
                if index.computed:
                    raise _SeekMismatch
                raise CorruptVideoError(path, f"no frame at the pts of GOP {gop}'s I-frame")
            yield frame
            break
        if skipped >= 2 * gop_size:
            if index.computed:  # e.g. key frames further apart than the header arithmetic says
                raise _SeekMismatch
            raise CorruptVideoError(path, "seeking to a GOP landed too far before its I-frame")
    for frame in frames:  # not `yield from`: PyAV's iterator may end with a bare StopIteration
        yield frame


def _check_frame(path, frame, index: _Index, gop: int, pos: int, gop_size: int) -> None:
    """The frame is where the GOP-``gop_size`` layout says: size, picture type, I-frame pts;
    and it is whole: not damage the decoder concealed, not two fields woven together."""
    if frame.is_corrupt:  # (the clip's frames after it in the GOP are predicted from it)
        raise CorruptVideoError(
            path,
            f"frame {pos} of GOP {gop} is damaged: the decoder concealed the damage (it flags "
            "the frame corrupt) and its pictures would be wrong; re-encode the source with "
            "`cvpt prepare` (which lists it as damaged) or download it again",
        )
    if frame.interlaced_frame:
        raise UnpreparedVideoError(
            path, f"frame {pos} of GOP {gop} is interlaced (two fields woven together)"
        )
    if frame.width != index.width or frame.height != index.height:
        raise CorruptVideoError(
            path,
            f"frame {pos} of GOP {gop} is {frame.width}x{frame.height}, "
            f"the stream says {index.width}x{index.height}",
        )
    want = _I if pos == 0 else _P
    if frame.pict_type != want:
        got = {_I: "I", _P: "P", _B: "B"}.get(frame.pict_type, "?")
        raise UnpreparedVideoError(
            path,
            f"frame {pos} of GOP {gop} is {'an' if got == 'I' else 'a'} {got}-frame where a GOP "
            f"of {gop_size} "
            f"(I then {gop_size - 1} P) needs {'I' if pos == 0 else 'P'}",
        )
    if pos == 0 and has_display_matrix(frame):  # its pixels are not upright
        raise UnpreparedVideoError(
            path, f"it is displayed rotated {round(frame.rotation)}° or mirrored (a display matrix)"
        )
    if pos == 0 and frame.pts != index.keyframe_pts[gop]:
        if index.computed:
            raise _SeekMismatch
        raise UnpreparedVideoError(path, f"GOP {gop} does not start at frame {gop * gop_size}")
