"""Encoding with PyAV: the compressed layout CVPT reads, and re-encoding any input into it.

The layout (docs/design.md; CoViAR's convention): MPEG-4 Part 2 (``mpeg4``) in mp4, GOP 12, no
B-frames, so every GOP is ``IPPPPPPPPPPP``; fixed quantiser q=2; short side 256.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
from av.video.reformatter import VideoReformatter

from cvpt.codec.container import (
    MAX_FPS,
    MIN_FPS,
    DecodeStats,
    FrameClock,
    coarse_time_base,
    decode_tolerant,
    frame_timing,
    listed_frames,
    open_video,
    rational,
    reorder_window,
    scan_packets,
    skipped_bytes,
)
from cvpt.codec.interlace import Deinterlacer
from cvpt.codec.orient import Orientation, frame_orientation, upright_frame
from cvpt.codec.packets import layout_problems, survey
from cvpt.codec.probe import (
    aspect_text,
    field_order,
    header_end,
    no_clean_frame,
    no_key_frame,
    probe,
    sample_aspect,
    source_damage,
    timestamp_damage,
)
from cvpt.errors import CorruptVideoError, EmptyVideoError, EncodeError, VideoError
from cvpt.io import atomic_output

if TYPE_CHECKING:
    import numpy as np  # imported where arrays are written: `cvpt prepare` never needs it

# Codecs whose encoder takes a fixed quantiser (qscale) rather than a rate factor.
_QSCALE_CODECS = {"mpeg4", "mpeg2video", "msmpeg4", "msmpeg4v2"}
# Encoder threads, fixed: the mpeg4 encoder cuts every frame into one slice per thread (x264's
# threads change its decisions too), and libavcodec's own count is the machine's cores + 1, so
# the same source prepared on a 16-core machine decoded to other frames (up to 26 levels apart
# on a 342x256 scene) than on a 2-core one. 3 is what libavcodec picks on the 2-core machines
# every CPU result shipped with cvpt (docs/results/cpu) was made on: their files are unchanged.
ENCODER_THREADS = 3


class VideoWriter:
    """Write RGB frames (or decoded ``av.VideoFrame``s) to a video file, one per call.

    ``gop`` frames per GOP, ``max_b_frames`` B-frames between references. For ``mpeg4`` the
    quantiser is fixed at ``q`` (``qscale`` with ``qmin = qmax = q``; ``global_quality`` has no
    effect through PyAV) and scene-cut I-frames are off. For ``libx264`` the GOP is fixed with
    ``keyint = min-keyint = gop``, ``scenecut=0`` and ``ref=1`` (with more references the exported
    MVs may point several frames back and nothing says which). Other encoders get their defaults.

    ``dia_size`` widens the MPEG-4 encoder's diamond motion search (FFmpeg's default, which CoViAR
    used, is ``None`` here). Measured on translating textures (docs/design.md): at 8 px/frame the
    share of exact MVs rises from 88–98% to 97–99.6% for +10% encode time, so 4 is the default.

    The encoder runs :data:`ENCODER_THREADS` threads whatever the machine: the bytes written are
    a function of the frames and the options only, not of the core count.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: float | Fraction = 30,
        codec: str = "mpeg4",
        gop: int = 12,
        max_b_frames: int = 0,
        q: int = 2,
        crf: int = 18,
        dia_size: int | None = 4,
        container_format: str | None = None,
        options: dict[str, str] | None = None,
        comment: str | None = None,
    ):
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self._container = av.open(str(self.path), mode="w", format=container_format)
        if comment:  # the container's comment tag (mp4: udta ©cmt), read back by any tool
            self._container.metadata["comment"] = comment
        try:
            rate = _encodable_rate(fps)
            stream = self._container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            cc = stream.codec_context
            cc.gop_size = gop
            cc.max_b_frames = max_b_frames
            cc.thread_count = ENCODER_THREADS  # the same bytes on every machine
            opts: dict[str, str] = {}
            if codec in _QSCALE_CODECS:
                cc.qscale = True
                cc.qmin = cc.qmax = q
                opts["sc_threshold"] = "1000000000"
                if dia_size is not None:
                    opts["dia_size"] = str(dia_size)
            elif codec == "libx264":
                opts["x264-params"] = (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={max_b_frames}:ref=1"
                )
                opts["crf"] = str(crf)
            opts.update(options or {})
            stream.options = opts
            self._stream = stream
            self._time_base = Fraction(1) / rate
        except BaseException:
            self._container.close()
            raise
        self._count = 0

    @property
    def frames_written(self) -> int:
        return self._count

    def write(self, frame: np.ndarray | av.VideoFrame) -> None:
        """Encode one frame: ``uint8 [H, W, 3]`` RGB, or a decoded frame of the right size."""
        if not isinstance(frame, av.VideoFrame):
            import numpy as np

            if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
                raise ValueError(
                    f"expected uint8 [{self.height}, {self.width}, 3] RGB, "
                    f"got {frame.dtype} {list(frame.shape)}"
                )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # A decoded frame keeps its source picture type and the encoder obeys a forced I: reset
        # it, or the source's I-frames reappear off the GOP grid.
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = self._count
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, **writer_options) -> Path:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames to ``path`` (see :class:`VideoWriter`)."""
    import numpy as np

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got {list(frames.shape)}")
    with VideoWriter(path, width=frames.shape[2], height=frames.shape[1], **writer_options) as w:
        for f in frames:
            w.write(f)
    return Path(path)


def target_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Output ``(width, height)``: short side scaled to ``short_side`` (aspect kept), both even.

    ``short_side=None`` (or 0) keeps the size, rounded down to even, as yuv420p requires.
    """
    if not short_side:
        return max(2, width - width % 2), max(2, height - height % 2)
    short = short_side - short_side % 2
    if width <= height:
        return short, max(2, round(height * short_side / width / 2) * 2)
    return max(2, round(width * short_side / height / 2) * 2), short


@dataclass
class ReencodeResult:
    """What :func:`reencode` wrote, and what it found wrong with the source."""

    src: str
    dst: str
    frames: int  # written: the source's duration at ``fps``
    width: int
    height: int
    fps: float
    decode_errors: int  # damaged source packets skipped (the frames around them are kept)
    seconds: float
    decoded_frames: int = 0  # source frames that decoded
    header_frames: int = 0  # what the source's header claims (0: it does not say)
    constant_rate: bool = True  # False: a variable-frame-rate source, resampled by timestamp
    rotation: int = 0  # the source's display rotation (degrees counter-clockwise), applied
    damage: str = ""  # why the source looks truncated or damaged ("" when it does not)
    sample_aspect: str = "1:1"  # the source's pixel shape, made square (display aspect kept)
    interlaced_frames: int = 0  # source frames flagged interlaced, deinterlaced (bwdif)
    field_order: str = "progressive"  # the source stream's (ffprobe's names)
    leading_frames: int = 0  # source frames before its first key frame, dropped
    corrupt_frames: int = 0  # source frames the decoder flagged corrupt (concealed damage)


SETTINGS_PREFIX = "cvpt prepare:"


def settings_tag(*, codec: str, gop: int, q: int, short_side: int | None, dia_size) -> str:
    """What a prepared file was written with, as the comment tag it carries, e.g. ``cvpt
    prepare: codec=mpeg4 gop=12 q=2 short_side=256 dia_size=4``: a rerun with other settings
    can tell the file is not what it asks for (:func:`settings_of`)."""
    return (
        f"{SETTINGS_PREFIX} codec={codec} gop={gop} q={q} short_side={short_side} "
        f"dia_size={dia_size}"
    )


def settings_of(path: str | Path) -> dict[str, str] | None:
    """The settings a file prepared by cvpt carries (:func:`settings_tag`), as strings; None
    for a file without them (another tool's, or cvpt's before it wrote them). Reads the header
    only."""
    container, _ = open_video(path)
    try:
        tag = container.metadata.get("comment", "")
    finally:
        container.close()
    if not tag.startswith(SETTINGS_PREFIX):
        return None
    return dict(kv.split("=", 1) for kv in tag[len(SETTINGS_PREFIX) :].split() if "=" in kv)


def reencode(
    src: str | Path,
    dst: str | Path,
    *,
    gop: int = 12,
    short_side: int | None = 256,
    q: int = 2,
    codec: str = "mpeg4",
    dia_size: int | None = 4,
    overwrite: bool = False,
    verify: bool | str = True,
    decode_threads: str = "AUTO",
) -> ReencodeResult:
    """Re-encode any video ``src`` into the compressed layout CVPT reads, written to ``dst``.

    MPEG-4 Part 2 (``codec="mpeg4"``, default) or H.264 (``"libx264"``) in mp4, ``gop`` frames per
    GOP, no B-frames, fixed quantiser ``q``, short side resized to ``short_side`` (even sizes),
    MPEG-4 motion search ``dia_size`` (see :class:`VideoWriter`). What the source's player would
    show is what is written (docs/reader.md, "Real-world sources"):

    - colour: any range and matrix (full-range ``yuvj*`` / "pc", BT.709, ...) is converted to
      limited-range BT.601, what every decoder assumes of an untagged stream (the output
      carries no colour tag), so every decoder reads the source's levels;
    - display rotation (the display matrix of phone videos) is applied: the output is upright;
    - non-square pixels (a sample aspect ratio other than 1:1: DV, anamorphic DVD, PAL-pixel
      XviD) are made square at the picture's display aspect, as a player shows it; the short
      side is the displayed one;
    - interlaced frames (flagged by the decoder) are deinterlaced (FFmpeg's ``bwdif``, one
      frame per frame, :mod:`cvpt.codec.interlace`);
    - frames before the first key frame (a stream cut mid-GOP, predicted from pictures the
      file does not hold) are dropped and counted in ``damage`` and ``leading_frames``; frames
      the decoder flags corrupt (damage it concealed) are kept, counted in ``damage`` and
      ``corrupt_frames``; a source none of whose frames is free of that damage is refused
      (:class:`~cvpt.errors.CorruptVideoError`: random bytes can pass for a raw H.263 stream);
    - the output has a constant frame rate: a variable-frame-rate source is resampled by
      timestamp (frames repeated or dropped, as the ffmpeg CLI's constant-rate output), keeping
      its duration; a constant-rate source keeps every frame, at any rate up to
      :data:`cvpt.codec.container.MAX_FPS` (what MPEG-4 Part 2 can time; a source timed faster
      is refused, never thinned out; so is one slower than :data:`MIN_FPS`, never repeated);
    - timestamps that go back (recordings joined with ``cat``, a reset, a swapped or repeated
      pts) are re-based as the ffmpeg CLI re-bases a discontinuity: every frame is written in
      decode order and ``damage`` says where (:class:`_Resampler`);
    - the stream with the footage is read (:func:`cvpt.codec.container.footage_stream`).

    Audio is dropped. ``dst`` is written through a temp file and renamed, so it is never half
    written; it is refused when it is ``src`` itself, and when it exists unless ``overwrite``.
    With ``verify`` the output's layout is checked before the rename, as ``cvpt.probe(dst)
    .layout_problems(gop)`` would check it, and its frame count. ``verify="packets"`` (what
    ``True`` means) reads it from one pass over the packets, their headers' picture types
    included (:func:`cvpt.codec.packets.layout_problems`, which decodes only when the packets
    cannot tell); ``verify="decode"`` decodes every frame (:func:`cvpt.probe`), which also
    proves that every packet decodes. A truncated or damaged source is encoded as far as it
    decodes and says so in ``damage``.

    ``decode_threads`` is FFmpeg's ``thread_type`` for decoding the source: ``"AUTO"`` (frame
    and slice threads, as the ffmpeg CLI) uses the cores of a lone process, ``"NONE"`` (one
    thread) costs less CPU time in all (``cvpt.prepare`` takes it with several workers). The
    decoded frames, and so the output, are the same either way.

    Raises :class:`cvpt.VideoError` subclasses naming ``src`` (unreadable input) or ``dst``
    (:class:`EncodeError`).
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise EncodeError(
            dst, "the output path is the source itself; cvpt never overwrites a source"
        )
    if dst.exists() and not overwrite:
        raise EncodeError(dst, "the output exists (pass overwrite=True to replace it)")
    if dst.suffix.lower() != ".mp4":
        raise EncodeError(dst, "the output must be an .mp4 file")
    if codec not in ("mpeg4", "libx264"):
        raise EncodeError(dst, f"codec must be 'mpeg4' or 'libx264', got {codec!r}")
    if codec == "mpeg4" and not 2 <= q <= 31:
        raise EncodeError(dst, f"the MPEG-4 quantiser q must be from 2 to 31, got {q}")
    verify = "packets" if verify is True else verify
    if verify not in (False, "packets", "decode"):
        raise EncodeError(dst, f"verify must be True, False, 'packets' or 'decode', got {verify!r}")

    container, stream = open_video(src)
    try:  # one pass over the packets first: the frame times decide the output rate
        pts, _ = scan_packets(container, stream, src)
        rate, constant = frame_timing(stream, pts, reorder_window(stream))
        by_count = constant and coarse_time_base(stream.time_base, rate)
        format_name = container.format.name
    finally:
        container.close()  # (stream is not to be touched after this)
    if not MIN_FPS <= rate <= MAX_FPS:
        timed = (
            f"{float(rate):.0f} per second, more than the {MAX_FPS}"
            if rate > MAX_FPS
            else f"one every {float(1 / rate):.0f} s, slower than the one every "
            f"{float(1 / MIN_FPS):.0f} s"
        )
        raise EncodeError(
            src,
            f"its frames are timed {timed} an MPEG-4 Part 2 stream of cvpt's can time "
            f"({float(MIN_FPS):g} to {MAX_FPS} fps); cvpt does not drop or repeat frames to "
            "fit (broken timestamps? `cvpt probe` shows them)",
        )

    container, stream = open_video(src, thread_type=decode_threads)
    expected_end = header_end(container, stream)
    header = listed_frames(stream)
    sar = sample_aspect(stream)
    stats = DecodeStats()
    try:
        with atomic_output(dst) as tmp:
            enc = _Resampler(
                tmp, src, rate, gop, short_side, codec, q, dia_size, sar=sar, by_count=by_count
            )
            try:
                for frame in decode_tolerant(container, stream, src, stats=stats):
                    enc.add(frame)
            finally:
                enc.close()
            if enc.writer is None or enc.writer.frames_written == 0:
                if stats.leading:
                    raise EmptyVideoError(src, no_key_frame(stats.leading))
                raise EmptyVideoError(src, "no decodable video frame")
            if stats.tainted >= stats.frames:  # nothing of the video is there to prepare
                why = no_clean_frame(stats.frames, len(stats.corrupt), format_name, src)
                raise CorruptVideoError(src, why)
            if verify:
                problems, frames = _written_layout(tmp, gop, verify)
                written = enc.writer.frames_written
                if problems or frames != written:
                    problems.append(f"{frames} frames read back, {written} written")
                    raise EncodeError(
                        dst, "the re-encoded output does not verify: " + "; ".join(problems)
                    )
    except VideoError:
        raise
    except (av.FFmpegError, OSError) as e:
        raise EncodeError(dst, f"encoding failed ({e})") from e
    finally:
        container.close()
    return ReencodeResult(
        src=str(src),
        dst=str(dst),
        frames=enc.writer.frames_written,
        width=enc.writer.width,
        height=enc.writer.height,
        fps=float(rate),
        decode_errors=enc.errors,
        seconds=time.perf_counter() - t0,
        decoded_frames=enc.decoded,
        header_frames=header,
        constant_rate=constant,
        rotation=enc.orient.rotation if enc.orient else 0,
        sample_aspect=aspect_text(sar),
        interlaced_frames=enc.interlaced,
        field_order=field_order(stream),
        leading_frames=stats.leading,
        corrupt_frames=len(stats.corrupt),
        damage="; ".join(
            filter(
                None,
                [
                    source_damage(
                        decoded=enc.decoded,
                        errors=enc.errors,
                        packets=len(pts),
                        header_frames=header,
                        expected_end=expected_end,
                        # times broken: where they end says nothing
                        decoded_end=None if enc.jumps or enc.restarts else enc.end_on_timeline,
                        rate=rate,
                        skipped=skipped_bytes(src, format_name),
                        leading=stats.leading,
                        corrupt=stats.corrupt,
                        tainted=stats.tainted,
                        damaged_start=(stats.bad_key, stats.damaged_start),
                    ),
                    timestamp_damage(
                        enc.restarts,
                        enc.outliers,
                        enc.jumps,
                        enc.dropped if constant else [],  # (variable: resampled, as meant)
                    ),
                ],
            )
        ),
    )


def _written_layout(path: Path, gop: int, verify: str) -> tuple[list[str], int]:
    """``(problems, frames)`` of a file just written: why ``read_clip`` would refuse it (empty:
    it would not) and its frame count, from its packets (``verify="packets"``) or by decoding
    every frame (``"decode"``)."""
    if verify == "decode":
        info = probe(path)
        return info.layout_problems(gop), info.frames
    found = survey(path, gop)
    return layout_problems(path, gop, found), found.frames


# A jump in the frame times longer than this is a broken timestamp, not a pause (seconds).
MAX_GAP_S = 10.0
# Frames observed before the first is timed (FrameClock): B-frame reordering shows by then.
CLOCK_LOOKAHEAD = 16


class _Resampler:
    """Decoded source frames in, constant-rate upright limited-range frames out.

    Frame ``k`` of the output shows the source frame on screen at ``k / rate`` (rounded to the
    nearest slot): a frame that lands on a slot already written is dropped, a gap is filled by
    repeating the frame before it, and the last frame lasts as long as the interval before it
    (or its own duration, if longer), so the output keeps the source's duration. A source
    without timestamps is numbered by count. A gap of more than ``MAX_GAP_S`` is taken for a
    broken timestamp (a stream discontinuity), not a pause: the frame follows the one before,
    ``jumps`` lists it and the source is reported as damaged. So is a frame whose time is
    not after the one before (two recordings joined with ``cat``, a muxer's reset, a swapped
    or repeated timestamp): as the ffmpeg CLI re-bases a discontinuity, it takes the next slot
    and the frames after it follow on (``restarts``); where the next frame's time goes on
    from the run before, that run's timing is taken back up (``outliers``: one frame out of
    place). No frame is dropped for its time going back; ``dropped`` lists those dropped.

    Pixels of shape ``sar`` (the source's sample aspect ratio) are scaled square at the
    picture's display aspect. Frames flagged interlaced are deinterlaced (from the first such
    frame on, every frame goes through :class:`cvpt.codec.interlace.Deinterlacer`, one frame
    late; its times stay the decoded frame's). ``by_count``: a constant-rate source whose time
    base is too coarse to tell its frames apart (:func:`cvpt.codec.container.coarse_time_base`)
    has frame ``k`` in slot ``k``, whatever its rounded time says (nothing dropped).
    """

    def __init__(
        self, tmp, src, rate, gop, short_side, codec, q, dia_size, sar=Fraction(1), by_count=False
    ):
        self.tmp, self.src, self.rate = tmp, src, rate
        self.sar, self.by_count = sar, by_count
        self.max_gap = max(1, round(MAX_GAP_S * rate))  # in frames
        # decoded frames (indices) whose time jumps forward past max_gap, goes back (a restart,
        # or one out of place), or falls on a slot already written (dropped)
        self.jumps: list[int] = []
        self.restarts: list[int] = []
        self.outliers: list[int] = []
        self.dropped: list[int] = []
        self.placed = 0  # decoded frames placed so far
        self.last_pts: int | None = None
        # first_pts and last_pts before the last restart, until the next frame confirms it
        self.undo: tuple[int, int] | None = None
        self.scaled = (0, 0)  # output size before turning upright
        self.options = dict(codec=codec, gop=gop, q=q, dia_size=dia_size)
        self.short_side = short_side
        # one swscale context for the video: frame.reformat() builds a new one for every frame
        self.reformatter = VideoReformatter()
        self.writer: VideoWriter | None = None
        self.orient: Orientation | None = None
        self.decoded = self.errors = self.next_slot = self.interlaced = 0
        self.deinterlacer: Deinterlacer | None = None  # from the first interlaced frame on
        self.clock = FrameClock()  # the ffmpeg CLI's frame times (AVI with B-frames)
        # frames (and their pictures) before the clock is decided
        self.held: list[tuple[av.VideoFrame, av.VideoFrame]] | None = []
        self.first_pts: int | None = None
        self.time_base: Fraction | None = None
        self.last: av.VideoFrame | None = None
        self.last_time: Fraction | None = None  # seconds from the first frame
        self.interval = Fraction(1) / rate  # of the last two frames
        self.duration = Fraction(0)  # the last frame's own duration, if it says

    @property
    def end_time(self) -> float | None:
        """Seconds from the first frame to the end of the last one (None: nothing decoded)."""
        if self.last_time is None:
            return None
        return float(self.last_time + max(self.interval, self.duration))

    @property
    def end_on_timeline(self) -> float | None:
        """:attr:`end_time` on the stream's timeline (from its time 0, not the first frame)."""
        if self.end_time is None:
            return None
        return self.end_time + float((self.first_pts or 0) * (self.time_base or 0))

    def add(self, frame: av.VideoFrame | Exception) -> None:
        if isinstance(frame, Exception):
            self.errors += 1
            return
        self.decoded += 1
        if self.writer is None:
            self._open(frame)
        if frame.interlaced_frame:
            self.interlaced += 1
            if self.deinterlacer is None:
                self.deinterlacer = Deinterlacer()
        if self.deinterlacer is None:
            self._take(frame, frame)
            return
        for decoded, picture in self.deinterlacer.feed(frame):
            self._take(decoded, picture)

    def _take(self, frame: av.VideoFrame, picture: av.VideoFrame) -> None:
        """The decoded ``frame`` (its times) shows ``picture`` (deinterlaced, or itself)."""
        self.clock.observe(frame)
        if self.held is not None:  # the first frames wait until their clock is decided
            self.held.append((frame, picture))
            if len(self.held) >= CLOCK_LOOKAHEAD:
                self._release()
            return
        self._place(frame, picture)

    def _release(self) -> None:
        held, self.held = self.held or [], None
        for frame, picture in held:
            self._place(frame, picture)

    def _place(self, frame: av.VideoFrame, picture: av.VideoFrame) -> None:
        index, self.placed = self.placed, self.placed + 1
        pts, tb = self.clock.time(frame), rational(frame.time_base)
        if pts is None or tb is None:
            slot, now = self.next_slot, None
        else:
            if self.first_pts is None:
                self.first_pts, self.time_base = pts, tb
            if self.undo is not None:  # the frame before went back: does the old run go on?
                (base, top), self.undo = self.undo, None
                if pts > top:  # it did: that frame was one out of place (timestamp_breaks)
                    self.outliers.append(self.restarts.pop())
                    if round((pts - base) * tb * self.rate) >= self.next_slot:
                        self.first_pts = base  # (else its slot is written: on from here)
            now = (pts - self.first_pts) * tb
            slot = self.next_slot if self.by_count else round(now * self.rate)
            back = self.last_pts is not None and (
                pts < self.last_pts or (pts == self.last_pts and not self.by_count)
            )
            if back or abs(slot - self.next_slot) > self.max_gap:  # re-based to follow on
                (self.restarts if back else self.jumps).append(index)
                self.undo = (self.first_pts, self.last_pts) if back else None
                self.first_pts += round((now - self.next_slot / self.rate) / tb)
                now = (pts - self.first_pts) * tb
                slot = self.next_slot if self.by_count else round(now * self.rate)
            self.last_pts = pts
            self.duration = (frame.duration or 0) * tb
        if now is not None and self.last_time is not None and now > self.last_time:
            self.interval = now - self.last_time
        self.last_time = now if now is not None else self.last_time
        if slot < self.next_slot:  # on a slot already shown: dropped
            self.dropped.append(index)
            return
        self._fill(slot)
        self.last = self._convert(picture)
        self.writer.write(self.last)
        self.next_slot += 1

    def close(self) -> None:
        """Hold the last frame for its duration, then flush the encoder."""
        if self.writer is None:
            return
        try:
            if self.deinterlacer is not None:
                for decoded, picture in self.deinterlacer.flush():
                    self._take(decoded, picture)
            self._release()
            if self.last is not None and self.end_time is not None and not self.by_count:
                self._fill(round(Fraction(self.end_time) * self.rate))
        finally:
            self.writer.close()

    def _fill(self, slot: int) -> None:
        while self.next_slot < slot:
            self.writer.write(self.last)
            self.next_slot += 1

    def _open(self, frame: av.VideoFrame) -> None:
        try:
            self.orient = frame_orientation(frame)
        except ValueError as e:
            raise EncodeError(self.src, str(e)) from None
        # non-square pixels: the width a player shows them at (the height is kept)
        coded_w, coded_h = max(2, round(frame.width * self.sar)), frame.height
        w, h = target_size(*self.orient.display_size(coded_w, coded_h), self.short_side)
        self.scaled = self.orient.display_size(w, h)  # the same size, before turning upright
        self.writer = VideoWriter(
            self.tmp, width=w, height=h, fps=self.rate, container_format="mp4",
            comment=settings_tag(short_side=self.short_side, **self.options), **self.options,
        )  # fmt: skip

    def _convert(self, frame: av.VideoFrame) -> av.VideoFrame:
        w, h = self.scaled
        out = self.reformatter.reformat(frame, width=w, height=h, **CONVERSION)
        return upright_frame(out, self.orient)


# What every source frame is converted to before encoding: whatever the source's range and
# matrix (its frame's tags: full-range "yuvj"/pc, BT.709, ...), limited-range BT.601 yuv420p,
# which every decoder assumes of an untagged stream; scaled bicubic, in one thread.
CONVERSION = dict(
    format="yuv420p",
    dst_colorspace="ITU601",
    dst_color_range="MPEG",
    interpolation="BICUBIC",
    threads=1,
)


class WindowEncoder:
    """Output frames ``start, start + 1, …`` of what :func:`reencode` writes of a source, alone.

    For a source whose frame ``k`` (in display order) is output frame ``k`` (a constant rate,
    nothing dropped or repeated, none interlaced): opened on the source's first frame as
    :class:`_Resampler` opens (its size, display rotation and ``sar``, the stream's sample
    aspect ratio, decide the output's), it converts each frame as
    ``reencode`` does, and numbers the frames from ``start``. With ``start`` on the GOP grid
    the packets are byte for byte those of the whole re-encode: FFmpeg's MPEG-4 encoder writes
    each frame's time into its header and carries nothing from one GOP into the next
    (tests/test_window.py). Used by :mod:`cvpt.codec.window`.
    """

    def __init__(
        self,
        dst: str | Path,
        src: str | Path,
        first: av.VideoFrame,
        rate: Fraction,
        start: int,
        *,
        gop: int = 12,
        short_side: int | None = 256,
        q: int = 2,
        codec: str = "mpeg4",
        dia_size: int | None = 4,
        sar: Fraction = Fraction(1),
    ):
        self._resampler = _Resampler(dst, src, rate, gop, short_side, codec, q, dia_size, sar)
        self._resampler._open(first)
        self.writer: VideoWriter = self._resampler.writer
        self.writer._count = start  # the frame's number is its time in the bitstream

    def convert(self, frame: av.VideoFrame) -> av.VideoFrame:
        """The source frame as ``reencode`` hands it to the encoder (upright, limited range)."""
        return self._resampler._convert(frame)

    def write(self, converted: av.VideoFrame) -> None:
        """Encode the next output frame (a :meth:`convert` result; repeat it to repeat)."""
        self.writer.write(converted)

    def close(self) -> None:
        """Flush the encoder and close the file."""
        self.writer.close()


def _encodable_rate(fps: float | Fraction) -> Fraction:
    """A frame rate whose time base MPEG-4 accepts (denominator of 1/rate at most 65535,
    :data:`cvpt.codec.container.MAX_FPS`): the rate, else the nearest in steps of 1/100 fps,
    else the nearest in the finest steps that fit (above 655 fps). ValueError above 65535."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    if rate > MAX_FPS:
        raise ValueError(f"frame rate {float(rate):g} is above the {MAX_FPS} MPEG-4 can time")
    if rate.numerator > MAX_FPS:
        rate = Fraction(round(float(rate) * 100), 100)
    if rate.numerator > MAX_FPS:
        steps = int(MAX_FPS) // math.ceil(rate)  # per frame per second: numerator ≤ 65535
        rate = Fraction(math.floor(Fraction(fps) * steps), steps)
    return rate
