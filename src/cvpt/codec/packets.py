"""What one demux pass says about a video, without decoding it (but its first frame):
readiness for :func:`cvpt.read_clip` and the frames a re-encode would write.

- :func:`survey`: packet times, key flags, durations, picture types from the packet headers
  (:mod:`cvpt.codec.bitstream`) and the first frame decoded: a few ms where decoding is a second.
- :func:`layout_problems`: what ``probe(path).layout_problems()`` says, from the survey
  (``probe`` itself only when the packets cannot tell: parameter sets inside the stream,
  unparsed packets). ``cvpt prepare`` verifies its outputs with it.
- :func:`reencoded_frames`: how many frames ``reencode`` would write, when the packets prove
  that source frame ``k`` (display order) becomes output frame ``k``: a constant frame rate,
  every frame timed, nothing hidden, nothing missing, a decoder that outputs in order.
  Otherwise the reason (:mod:`cvpt.codec.window` then re-encodes the whole file).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import av

from cvpt.codec.bitstream import h264_length_size, h264_type, mpeg4_type
from cvpt.codec.container import (
    ffmpeg_errors,
    frame_timing,
    listed_frames,
    open_video,
    rational,
    reorder_window,
    skipped_bytes,
)
from cvpt.codec.orient import frame_orientation, has_display_matrix
from cvpt.codec.probe import (
    INTERLACED_ORDERS,
    READABLE_CODECS,
    VideoInfo,
    _decoded_duration,
    _first_time,
    aspect_text,
    display_aspect,
    field_order,
    header_end,
    key_frame_problem,
    non_square_problem,
    probe,
    sample_aspect,
    source_damage,
    split_gops,
)

if TYPE_CHECKING:
    import numpy as np  # imported where windows are planned: verifying a file never needs it

# Reorder depths beyond this are not measured (no encoder reorders more than 16 frames).
_MAX_REORDER = 32


@dataclass
class Survey:
    """What one demux pass and the first decoded frame say about a video's footage stream.

    Per shown packet, in decode order: ``pts``, ``keys``, ``durations`` (stream time base) and
    ``types`` (picture type letters from the packet headers; None where the packets were not
    read or cannot tell, see :mod:`cvpt.codec.bitstream`). ``first``: the first decoded frame
    (None if none decodes before the end); ``reorder``: frames the decoder holds back to put
    B-frames in display order (its declared delay); ``sample_aspect``: the stream's pixel
    shape (:func:`cvpt.codec.probe.sample_aspect`); ``field_order``: the stream's, as its
    decoder says after the first frame (:func:`cvpt.codec.probe.field_order`).
    """

    path: Path
    container: str  # FFmpeg's name of the format, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    stream_index: int
    width: int
    height: int
    time_base: Fraction | None
    rate: Fraction
    constant: bool
    pts: list[int | None]
    keys: list[bool]
    durations: list[int]
    types: str | None
    header_frames: int
    damage: str
    discarded: int
    reorder: int
    first: av.VideoFrame | None
    sample_aspect: Fraction = Fraction(1)
    field_order: str = "unknown"

    @property
    def frames(self) -> int:
        return len(self.pts)

    def info(self) -> VideoInfo | None:
        """What :func:`cvpt.probe` would report (damage as far as the packets show; interlacing
        as far as the first frame shows), or None when the packets cannot tell the picture
        types or the frame size, or the stream says it is interlaced and its first frame is
        not (only decoding every frame can tell)."""
        first = self.first
        if self.types is None or first is None or None in self.pts:
            return None
        if (first.width, first.height) != (self.width, self.height):
            return None
        if self.field_order in INTERLACED_ORDERS and not first.interlaced_frame:
            return None
        shown = sorted(range(len(self.pts)), key=self.pts.__getitem__)  # stable, display order
        pict = "".join(self.types[i] for i in shown)
        try:
            orient = frame_orientation(first)
            rotation, mirrored = orient.rotation, orient.mirrored
        except ValueError:  # not a right angle: reported as it is, as probe does
            rotation, mirrored = round(first.rotation), False
        return VideoInfo(
            path=str(self.path),
            codec=self.codec,
            width=first.width,
            height=first.height,
            fps=float(self.rate),
            frames=len(pict),
            duration_s=self._duration(),
            pict_types=pict,
            gop_lengths=split_gops(pict),
            header_frames=self.header_frames,
            rotation=rotation,
            mirrored=mirrored,
            constant_rate=self.constant,
            stream_index=self.stream_index,
            damage=self.damage,
            sample_aspect=aspect_text(self.sample_aspect),
            display_aspect=aspect_text(
                display_aspect(first.width, first.height, self.sample_aspect)
            ),
            interlaced_frames=int(first.interlaced_frame),
            field_order=self.field_order,
        )

    def _last(self) -> SimpleNamespace:
        """The last shown frame's time base and duration, as probe's helpers take a frame."""
        known = [(p, d) for p, d in zip(self.pts, self.durations, strict=True) if p is not None]
        duration = max(known)[1] if known else 0
        return SimpleNamespace(time_base=self.time_base, duration=duration)

    def _duration(self) -> float:
        return _decoded_duration(self.pts, self._last(), self.rate)


def survey(path: str | Path, gop: int = 12) -> Survey:
    """One demux pass over ``path``'s footage stream, decoding only until the first frame.
    Picture types are read from the packet headers while the stream still looks like cvpt's
    layout (key frames every ``gop`` packets, times rising); after that they are not needed.
    Raises :class:`cvpt.VideoError` subclasses naming the file."""
    path = Path(path)
    container, stream = open_video(path)
    try:
        cc = stream.codec_context
        codec = cc.name
        length_size = h264_length_size(cc.extradata) if codec == "h264" else None
        reading = codec == "mpeg4" or (codec == "h264" and length_size is not None)
        pts, keys, durations, types = [], [], [], []
        discarded, first, decoding = 0, None, True
        with ffmpeg_errors(path, "reading its packets failed"):
            for packet in container.demux(stream):
                if decoding:  # until the first frame is out, or the start fails to decode
                    first, decoding = _first_frame(packet, cc)
                if not packet.size:
                    continue
                if packet.is_discard:
                    discarded += 1
                    continue
                n = len(pts)
                reading = reading and packet.is_keyframe == (n % gop == 0)
                reading = reading and packet.pts is not None and (not n or packet.pts > pts[-1])
                if reading:
                    data = bytes(packet)
                    types.append(
                        mpeg4_type(data) if codec == "mpeg4" else h264_type(data, length_size)
                    )
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
                durations.append(packet.duration or 0)
        rate, constant = frame_timing(stream, pts, reorder_window(stream))  # decode order
        s = Survey(
            path=path,
            container=container.format.name,
            codec=codec,
            stream_index=stream.index,
            width=cc.width,
            height=cc.height,
            time_base=rational(stream.time_base),
            rate=rate,
            constant=constant,
            pts=pts,
            keys=keys,
            durations=durations,
            types="".join(types) if reading and None not in types else None,
            header_frames=listed_frames(stream),
            damage="",
            discarded=discarded,
            reorder=int(getattr(cc, "reorder_depth", 0) or 0),
            first=first,
            sample_aspect=sample_aspect(stream),
            field_order=field_order(stream),
        )
        s.damage = source_damage(
            decoded=len(pts),
            errors=0,
            packets=len(pts),
            header_frames=s.header_frames,
            expected_end=header_end(container, stream),
            decoded_end=_first_time(pts, s._last()) + s._duration() if pts else None,
            rate=rate,
            # (another pass, over every stream: only Matroska resynchronises silently)
            skipped=skipped_bytes(path) if "matroska" in container.format.name else (0, -1),
        )
        return s
    finally:
        container.close()


def _first_frame(packet: av.Packet, cc) -> tuple[av.VideoFrame | None, bool]:
    """Decode one more packet of the stream's start: ``(its first frame out or None, whether
    to go on decoding)``. A decoder that holds frames back for B-frames is drained at once
    (the first packet, a key frame, decodes alone: one frame decoded, not the reorder depth's
    worth). A damaged start stops it: the survey then has no first frame."""
    try:
        frames = packet.decode()
        if not frames and packet.size and packet.is_keyframe and not packet.is_discard:
            frames = cc.decode(None)  # (drained: nothing more comes out of it)
            return (frames[0] if frames else None), False
    except av.FFmpegError:
        return None, False
    return (frames[0], False) if frames else (None, True)


def layout_problems(path: str | Path, gop: int = 12, found: Survey | None = None) -> list[str]:
    """Why ``path`` is not ready for ``read_clip`` as it is (empty: it is), as
    ``probe(path).layout_problems(gop)`` says, from :func:`survey` (``found``, or one made
    here). ``probe``, which decodes every frame, runs only when the packets show no problem
    and cannot say there is none (see :meth:`Survey.info`)."""
    s = found or survey(path, gop)
    info = s.info()
    if info is not None:
        return info.layout_problems(gop)
    return packet_problems(s, gop) or probe(path).layout_problems(gop)


def packet_problems(s: Survey, gop: int = 12) -> list[str]:
    """What the packets alone show wrong with ``s`` for ``read_clip`` (not all there is)."""
    problems = []
    if s.codec not in READABLE_CODECS:
        problems.append(f"codec is {s.codec}, not MPEG-4 Part 2")
    known = [p for p in s.pts if p is not None]
    if any(b <= a for a, b in itertools.pairwise(known)):
        problems.append("its frames are stored out of display order (B-frames)")
    keys = key_frame_problem([i for i, k in enumerate(s.keys) if k], s.frames, gop)
    if keys:
        problems.append(keys)
    if not s.constant:
        problems.append("its frame rate is variable")
    if s.damage:
        problems.append(s.damage)
    if s.first is not None and has_display_matrix(s.first):
        problems.append(f"it is displayed rotated {round(s.first.rotation)}° or mirrored")
    if s.sample_aspect != 1:
        w, h = (s.first.width, s.first.height) if s.first is not None else (s.width, s.height)
        dar = display_aspect(w, h, s.sample_aspect)
        problems.append(non_square_problem(aspect_text(s.sample_aspect), aspect_text(dar)))
    if s.first is not None and s.first.interlaced_frame:
        problems.append(f"its frames are interlaced (field order {s.field_order})")
    return problems


def reencoded_frames(s: Survey) -> int | str:
    """How many frames ``reencode`` writes of the source ``s`` when its packets prove that
    source frame ``k`` (display order) is output frame ``k``: every frame timed, on the
    constant rate's grid, none hidden or missing, and a decoder that outputs them in display
    order (:class:`cvpt.codec.container.FrameClock` then times them by their pts). Else the
    reason (a string): the caller re-encodes the whole file."""
    import numpy as np

    n = s.frames
    if s.discarded:
        return "an edit list hides some of its frames"
    if s.first is None:
        return "its first frame does not decode"
    if s.keys and not s.keys[0]:  # reencode drops the frames before the first key frame
        return "it starts before its first key frame (cut mid-GOP)"
    if s.first.interlaced_frame or s.field_order in INTERLACED_ORDERS:
        return "it is interlaced (deinterlacing a frame takes the frames around it)"
    if s.container == "avi":  # B-frames get another packet's made-up pts (FrameClock)
        return "AVI stores no frame times"
    if not n or None in s.pts or s.time_base is None:
        return "some of its frames have no timestamp"
    if s.damage:
        return s.damage
    if not s.constant:
        return "its frame rate is variable"
    pts = np.sort(np.asarray(s.pts, np.int64))
    if np.any(np.diff(pts) == 0):
        return "two of its frames share a timestamp"
    if s.first.pts != pts[0]:
        return "its first decoded frame is not the first one shown"
    if reorder_depth(s.pts) > s.reorder:
        return "its decoder would not output the frames in display order"
    if not np.array_equal(_slots(pts - pts[0], s.time_base * s.rate), np.arange(n)):
        return "its frames are not one per frame slot"
    # _Resampler.close: the last frame lasts as long as the interval before it, or its own
    # duration if longer, and the output keeps that duration
    tb = Fraction(s.time_base)
    last = (int(pts[-1]) - int(pts[0])) * tb
    interval = last - (int(pts[-2]) - int(pts[0])) * tb if n > 1 else 1 / s.rate
    end = float(last + max(interval, s._last().duration * tb))
    return max(n, round(Fraction(end) * s.rate))


def _slots(offsets: np.ndarray, frames_per_tick: Fraction) -> np.ndarray:
    """``round(offset · frames_per_tick)`` in integers, half to even like ``round(Fraction)``
    (what _Resampler computes per frame)."""
    import numpy as np

    num, den = frames_per_tick.numerator, frames_per_tick.denominator
    q, r = np.divmod(offsets * num, den)
    return q + ((2 * r > den) | ((2 * r == den) & (q % 2 == 1)))


def reorder_depth(pts: list[int]) -> int:
    """How many frames a decoder must hold back to output packets with these ``pts`` (decode
    order) in display order: the most packets decoded before one and shown after it."""
    import numpy as np

    p = np.asarray(pts, np.int64)
    later = np.zeros(len(p), np.int64)
    for lag in range(1, min(_MAX_REORDER, len(p))):
        later[lag:] += p[:-lag] > p[lag:]
    if len(p) > _MAX_REORDER:  # shown before a packet decoded even earlier: not measured
        before = np.maximum.accumulate(p)[:-_MAX_REORDER]
        if np.any(before > p[_MAX_REORDER:]):
            return _MAX_REORDER + 1
    return int(later.max(initial=0))
