"""Reading a video as its re-encode would read, re-encoding only the GOPs the views read.

``cvpt.Predictor`` reads ``clips`` clips of ``num_gops`` GOPs from each video. A video not in
cvpt's layout used to be probed by decoding all of it, re-encoded whole (``reencode``),
verified by decoding again, and then read. Here:

- :func:`survey`: one demux pass (packet times, key flags, durations, picture types from
  the packet headers) and the first frame decoded: a few ms where decoding is a second.
- :func:`layout_problems`: what ``probe(path).layout_problems()`` says, from the survey
  (``probe`` itself only when the packets cannot tell: parameter sets inside the stream,
  unparsed packets). A prepared file is then read as it is, decoded once.
- :func:`reencoded_frames`: how many frames ``reencode`` would write, when the packets prove
  that source frame ``k`` (display order) becomes output frame ``k``: a constant frame rate,
  every frame timed, nothing hidden, nothing missing, a decoder that outputs in order.
  Otherwise the reason, and the caller re-encodes the whole file as before.
- :func:`encode_windows`: output frames ``[a, b)`` on the GOP grid, encoded alone
  (:class:`cvpt.codec.encode.WindowEncoder`): byte for byte the packets the whole re-encode
  writes there, so every clip read from them is bit-identical (tests/test_window.py). The
  source is decoded from the key frame before each window; frames no window shows and no
  frame refers to are not decoded. A frame the plan did not expect raises
  :class:`WindowMismatch`, and the caller re-encodes the whole file.

What only decoding every frame can find is not looked for: a packet that fails to decode in
a part no window reads (it does not change the windows; ``reencode`` would have warned).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
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
from cvpt.codec.encode import WindowEncoder
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

# The GOP of the copy ``cvpt.predictor.prepared`` re-encodes (``reencode``'s default).
PREPARED_GOP = 12
# Decoders whose skip_frame="NONREF" drops only frames no other frame refers to, checked
# bit-exact by the tests; others decode every frame (what a skipped frame leaves behind in
# their state is not known here: HEVC's sub-layer non-references, VP9's entropy contexts).
_SKIPS_NONREF = {"h264", "mpeg4"}
# Reorder depths beyond this are not measured (no encoder reorders more than 16 frames).
_MAX_REORDER = 32


class WindowMismatch(Exception):
    """A decoded frame was not what the survey promised: re-encode the whole file instead."""


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


def gop_windows(starts: list[int], clip_gops: int, num_gops: int) -> list[tuple[int, int]]:
    """GOP ranges ``[first, end)`` that hold the clips starting at GOPs ``starts`` (each
    ``clip_gops`` long, cut at the video's ``num_gops``), overlapping or touching ones merged:
    each range is encoded once, and read from at several starts."""
    out: list[list[int]] = []
    for a in sorted(set(starts)):
        b = min(a + clip_gops, num_gops)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def encode_windows(
    s: Survey,
    frames: int,
    windows: list[tuple[int, int]],
    folder: Path,
    *,
    short_side: int | None,
    gop: int = 12,
) -> list[Path]:
    """Encode output GOPs ``[first, end)`` of each window (sorted, disjoint) of what
    ``reencode(s.path, short_side=short_side, gop=gop)`` writes (``frames`` frames,
    :func:`reencoded_frames`), each into its own file under ``folder``, named as the source
    with ``.mp4``; return their paths. The source is decoded once, in order, seeking only
    forward to the key frame before a window when that skips packets. Raises
    :class:`WindowMismatch` when a decoded frame is not what the survey promised."""
    import numpy as np

    n = s.frames
    ranges = [(a * gop, min(b * gop, frames)) for a, b in windows]
    needed = np.zeros(n, bool)
    for a, b in ranges:
        needed[min(a, n - 1) : min(b, n)] = True
    source = _Source(s, needed)
    paths: list[Path] = []
    try:
        stream: Iterator[tuple[int, av.VideoFrame]] | None = None
        for k, (a, b) in enumerate(ranges):
            key = source.key_before(min(a, n - 1), min(b, n))
            if stream is None or key > source.pos + 1:  # seeking skips packets
                stream = source.frames_from(key)
            path = folder / str(k) / (s.path.stem + ".mp4")
            path.parent.mkdir(parents=True)
            _encode_window(s, stream, a, b, path, short_side=short_side, gop=gop)
            paths.append(path)
    finally:
        source.close()
    return paths


def _encode_window(s: Survey, stream, a: int, b: int, path: Path, **options) -> None:
    """Output frames ``[a, b)`` into ``path``: output frame ``k`` shows source frame ``k``,
    the last source frame held to the end of the output."""
    n = s.frames
    first, stop = min(a, n - 1), min(b, n)
    enc = WindowEncoder(path, s.path, s.first, s.rate, a, sar=s.sample_aspect, **options)
    try:
        want = first
        for rank, frame in stream:
            if frame.is_corrupt:  # reencode reports the damage the decoder concealed
                raise WindowMismatch(f"frame {rank} is damaged (concealed by the decoder)")
            if rank < want:  # a frame before the window, decoded as a reference
                if rank >= first:
                    raise WindowMismatch(f"frame {rank} came out twice")
                continue
            if rank > want:
                raise WindowMismatch(f"frame {want} did not come out of the decoder")
            if frame.interlaced_frame:  # reencode deinterlaces it, from the frames around it
                raise WindowMismatch(f"frame {rank} is interlaced")
            converted = enc.convert(frame)
            if rank < n - 1:
                enc.write(converted)
            else:  # the last frame: held as long as reencode holds it
                if frame.duration != s._last().duration:
                    raise WindowMismatch("the last frame's duration is not its packet's")
                for _ in range(max(a, rank), b):
                    enc.write(converted)
            want += 1
            if want == stop:
                return
        raise WindowMismatch(f"the source ends before frame {want}")
    finally:
        enc.close()


class _Source:
    """The source's frames, decoded in one pass: ``(display rank, frame)`` in display order
    from a key frame on. Frames no window needs and no frame refers to are skipped by the
    decoder where that is exact (``_SKIPS_NONREF``)."""

    def __init__(self, s: Survey, needed: np.ndarray):
        import numpy as np

        self.s, self.needed = s, needed
        self.container, self.stream = open_video(s.path)
        self.rank_of = {int(p): r for r, p in enumerate(np.sort(np.asarray(s.pts)))}
        self.index_of = {p: i for i, p in enumerate(s.pts)}  # decode order
        self.skips = s.codec in _SKIPS_NONREF
        self.pos = -1  # the last packet fed to the decoder (decode order)

    def key_before(self, first: int, stop: int) -> int:
        """The last key packet at or before every packet of display ranks ``[first, stop)``
        in decode order, and shown no later than ``first``: decoding from it gives them all,
        none of them a leading picture of an open GOP."""
        import numpy as np

        by_rank = np.argsort(np.asarray(self.s.pts), kind="stable")
        earliest = int(by_rank[first:stop].min())
        start = self.s.pts[int(by_rank[first])]
        for i in range(earliest, -1, -1):
            if self.s.keys[i] and self.s.pts[i] <= start:
                return i
        raise WindowMismatch(f"no key frame before frame {first}")

    def frames_from(self, key: int) -> Iterator[tuple[int, av.VideoFrame]]:
        self.container.seek(self.s.pts[key], stream=self.stream, backward=True)
        cc, landed = self.stream.codec_context, False
        with ffmpeg_errors(self.s.path, "reading its packets failed"):
            for packet in self.container.demux(self.stream):
                if packet.size and not packet.is_discard:
                    i = self.index_of.get(packet.pts)
                    if i is None or (not landed and i > key):
                        raise WindowMismatch(f"seeking to packet {key} landed elsewhere")
                    landed, self.pos = True, i
                    skip = self.skips and not self.needed[self.rank_of[packet.pts]]
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:  # reencode would skip it, and warn
                    raise WindowMismatch(f"packet {self.pos} does not decode ({e})") from e
                for frame in decoded:
                    rank = self.rank_of.get(frame.pts)
                    if rank is None:
                        raise WindowMismatch(f"a frame at pts {frame.pts} the packets lack")
                    yield rank, frame

    def close(self) -> None:
        self.container.close()
