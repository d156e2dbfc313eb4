"""``cvpt.probe``: what a video holds and whether cvpt can trust it as it is.

Frame count, rate, size, codec and GOP pattern, and what real-world files get wrong: display
rotation, non-square pixels, interlacing, colour range, a variable frame rate, several video
streams, truncation, damage the decoder conceals, and a start before the first key frame.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av

from cvpt.codec.container import (
    DecodeStats,
    FrameClock,
    coarse_time_base,
    decode_tolerant,
    describe_streams,
    frame_timing,
    listed_frames,
    open_video,
    rational,
    skipped_bytes,
    timestamp_breaks,
)
from cvpt.codec.orient import frame_orientation
from cvpt.errors import EmptyVideoError

# What cvpt.read_clip accepts: CVPT's MPEG-4 Part 2, and the H.264 option of `cvpt prepare`.
READABLE_CODECS = ("mpeg4", "h264")

_TYPE_LETTER = {
    av.video.frame.PictureType.I: "I",
    av.video.frame.PictureType.P: "P",
    av.video.frame.PictureType.B: "B",
}
# AVFieldOrder names as ffprobe prints them: tt = top field first (coded and shown), bb =
# bottom field first, tb / bt = coded in one order and shown in the other.
_FIELD_ORDERS = {0: "unknown", 1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}
INTERLACED_ORDERS = ("tt", "bb", "tb", "bt")
# AVColorRange names as ffprobe prints them.
_RANGES = {0: "unknown", 1: "tv", 2: "pc"}
# AVColorSpace (the YUV matrix) names as ffprobe prints them.
_MATRICES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020nc",
    10: "bt2020c",
}


@dataclass
class VideoInfo:
    """What :func:`probe` found. ``pict_types`` holds one letter (I/P/B/?) per decoded frame.

    ``frames`` decoded against ``header_frames`` claimed (0: the header does not say);
    ``rotation`` is the display matrix's counter-clockwise angle in degrees (ffprobe's);
    ``color_range`` ``"tv"`` (limited), ``"pc"`` (full) or ``"unknown"``; ``constant_rate``
    whether every frame sits on the ``fps`` grid; ``streams`` every video stream
    (index, codec, size, frames, picture dispositions) and ``stream_index`` the one
    read; ``damage`` why the file looks truncated or damaged ("" when it does not);
    ``width`` × ``height`` the first frame's size, ``size_changes`` where the frame size
    changes (``"96x32 from frame 24"``; empty when it does not: WebRTC recordings do).

    ``sample_aspect`` is the shape of a stored pixel (width:height, ``"1:1"`` square, as
    ffprobe's ``sample_aspect_ratio``), ``display_aspect`` the picture's shape as a player
    shows it (before a display rotation); ``interlaced_frames`` counts frames the decoder
    flags interlaced (two fields woven together) and ``field_order`` is the stream's
    (``progressive``, ``tt`` top field first, ``bb``, ``tb``, ``bt``, ``unknown``);
    ``corrupt_frames`` frames the decoder flagged corrupt (damage it concealed) and
    ``leading_frames`` frames before the first key frame (predicted from pictures the file
    does not hold), which are not in ``frames`` or ``pict_types``: both are in ``damage`` too.
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    pict_types: str = field(repr=False)
    gop_lengths: list[int] = field(repr=False)
    header_frames: int = 0
    decode_errors: int = 0
    rotation: int = 0
    mirrored: bool = False
    color_range: str = "unknown"
    colorspace: str = "unknown"
    constant_rate: bool = True
    stream_index: int = 0
    streams: list[dict] = field(default_factory=list)
    damage: str = ""
    size_changes: list[str] = field(default_factory=list)
    sample_aspect: str = "1:1"
    display_aspect: str = ""
    interlaced_frames: int = 0
    field_order: str = "unknown"
    corrupt_frames: int = 0
    leading_frames: int = 0

    @property
    def num_gops(self) -> int:
        return len(self.gop_lengths)

    @property
    def has_b_frames(self) -> bool:
        return "B" in self.pict_types

    @property
    def gop_pattern(self) -> str:
        """Run-length summary, e.g. ``'14 × IPPPPPPPPPPP + IPPPPP'``."""
        parts = []
        starts = [0, *itertools.accumulate(self.gop_lengths)]
        gops = [self.pict_types[a:b] for a, b in itertools.pairwise(starts)]
        for pattern, run in itertools.groupby(gops):
            n = len(list(run))
            shown = pattern if len(pattern) <= 24 else f"{pattern[:12]}…({len(pattern)} frames)"
            parts.append(shown if n == 1 else f"{n} × {shown}")
        return " + ".join(parts) if parts else "(no frames)"

    def layout_problems(self, gop: int = 12) -> list[str]:
        """Why this video is not ready for read_clip as it is (empty list: it is). Besides the
        layout (codec, GOP, B-frames): a display rotation, a variable frame rate and damage,
        which read_clip would not see and ``cvpt prepare`` fixes or reports."""
        problems = []
        if self.codec not in READABLE_CODECS:
            problems.append(f"codec is {self.codec}, not MPEG-4 Part 2")
        if self.has_b_frames:
            problems.append(f"it has {self.pict_types.count('B')} B-frames")
        if not self.pict_types.startswith("I"):
            problems.append("it does not start with an I-frame")
        expected = ("I" + "P" * (gop - 1)) * (self.frames // gop + 1)
        if not problems and self.pict_types != expected[: self.frames]:
            bad = next(
                i for i, (a, b) in enumerate(zip(self.pict_types, expected, strict=False)) if a != b
            )
            problems.append(
                f"GOP pattern is {self.gop_pattern}, not I+{gop - 1}P (frame {bad} is "
                f"{self.pict_types[bad]}, expected {expected[bad]})"
            )
        if self.rotation or self.mirrored:
            turn = f"rotated {self.rotation}°" + (" and mirrored" if self.mirrored else "")
            problems.append(f"it is displayed {turn} (a display matrix)")
        if self.sample_aspect != "1:1":
            problems.append(non_square_problem(self.sample_aspect, self.display_aspect))
        if self.interlaced_frames:
            problems.append(
                f"{self.interlaced_frames} of its frames are interlaced (two fields woven "
                f"together, field order {self.field_order})"
            )
        if not self.constant_rate:
            problems.append("its frame rate is variable")
        if self.damage:
            problems.append(self.damage)
        if self.size_changes:
            problems.append(
                f"its frame size changes ({self.width}x{self.height}, then "
                + ", ".join(self.size_changes)
                + ")"
            )
        return problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("pict_types")
        d.update(
            num_gops=self.num_gops, gop_pattern=self.gop_pattern, has_b_frames=self.has_b_frames
        )
        return d


def aspect_text(ratio: Fraction) -> str:
    """``Fraction(4, 3)`` as ffprobe writes an aspect ratio: ``"4:3"``."""
    return f"{ratio.numerator}:{ratio.denominator}"


def sample_aspect(stream) -> Fraction:
    """The shape of the stream's stored pixels, width over height, as FFmpeg's players take it
    (``av_guess_sample_aspect_ratio``: the container's, else the codec's; 1 when neither says
    or what they say is nonsense)."""
    sar = rational(stream.sample_aspect_ratio)  # (PyAV 19: an AVRational, 0/1 when unset)
    return sar if sar and sar > 0 else Fraction(1)


def display_aspect(width: int, height: int, sar: Fraction) -> Fraction:
    """The shape a player shows a ``width`` × ``height`` picture of pixels ``sar`` in."""
    return Fraction(width) * sar / height if height else Fraction(0)


def non_square_problem(sar: str, dar: str) -> str:
    """read_clip's and the readiness checks' words for a picture of non-square pixels."""
    return (
        f"its pixels are not square (sample aspect {sar}, shown at {dar}): read as stored, "
        "its pictures would be squeezed"
    )


def key_frame_problem(key_at: list[int], frames: int, gop: int) -> str | None:
    """Why key frames at the indices ``key_at`` of ``frames`` frames are not one every ``gop``
    frames, in words (None when they are): read_clip's and the packet survey's message."""
    if key_at == list(range(0, frames, gop)):
        return None
    if not key_at:
        return f"it has no key frame, where a GOP of {gop} needs one every {gop} frames"
    if len(key_at) == 1:
        return f"its only key frame is frame {key_at[0]}, not one every {gop} frames"
    shown = ", ".join(map(str, key_at[:6])) + (", …" if len(key_at) > 6 else "")
    return f"its key frames are at frames {shown}, not every {gop} frames"


def probe(path: str | Path) -> VideoInfo:
    """Decode ``path`` once and describe it: codec, size, fps, frames and GOP pattern, display
    rotation, colour range, constant or variable frame rate, the video streams and which one is
    read, and frames that decode against the header's count (damage).

    Picture types come from the decoder (``frame.pict_type``), not from packet key flags: an
    x264 scene-cut I-frame is not a key frame, and P and B are only told apart after decoding.
    Damaged packets are skipped and counted (up to 50) as ``cvpt prepare`` does. Raises
    :class:`cvpt.VideoError` subclasses naming the file.
    """
    container, stream = open_video(path, thread_type="AUTO")
    try:
        types, times, changes = [], [], []
        errors, first, end, interlaced = 0, None, None, 0
        clock = FrameClock()
        stats = DecodeStats()
        for frame in decode_tolerant(container, stream, path, stats=stats):
            if isinstance(frame, Exception):
                errors += 1
                continue
            if first is None:
                first = frame
            if end is not None and (frame.width, frame.height) != (end.width, end.height):
                changes.append(f"{frame.width}x{frame.height} from frame {len(types)}")
            interlaced += frame.interlaced_frame
            types.append(_TYPE_LETTER.get(frame.pict_type, "?"))
            clock.observe(frame)
            times.append((frame.pts, frame.dts))
            end = frame
        if first is None:
            if stats.leading:
                raise EmptyVideoError(path, no_key_frame(stats.leading))
            raise EmptyVideoError(path, "the video stream holds no decodable frame")
        # every frame timed by the faults of all of them
        pts = [clock.time(SimpleNamespace(pts=p, dts=d)) for p, d in times]
        rate, constant = frame_timing(stream, pts)
        if not constant:  # as reencode times them (the packets' times): mkv's milliseconds at
            # 2000 fps repeat, and the clock then takes the times of the frames drained last
            # for faults and runs them on by whole ticks
            packet_timing = frame_timing(stream, [p for p, _ in times])
            rate, constant = packet_timing if packet_timing[1] else (rate, constant)
        # times that go back (output order: no reordering left), as reencode places them
        coarse = coarse_time_base(stream.time_base, rate)
        restarts, outliers = timestamp_breaks(pts, 0, equal=not coarse)
        cuts = [0, *restarts, len(pts)]
        duration = sum(_decoded_duration(pts[a:b], end, rate) for a, b in itertools.pairwise(cuts))
        try:
            orient = frame_orientation(first)
            rotation, mirrored = orient.rotation, orient.mirrored
        except ValueError:  # not a right angle: reported as it is, prepare refuses it
            rotation, mirrored = round(first.rotation), False
        header = listed_frames(stream)
        pict = "".join(types)
        lengths = split_gops(pict)
        sar = sample_aspect(stream)
        return VideoInfo(
            path=str(path),
            codec=stream.codec_context.name,
            width=first.width,
            height=first.height,
            fps=float(rate),
            frames=len(pict),
            duration_s=duration,
            pict_types=pict,
            gop_lengths=lengths,
            header_frames=header,
            decode_errors=errors,
            rotation=rotation,
            mirrored=mirrored,
            color_range=_RANGES.get(int(first.color_range), str(first.color_range)),
            colorspace=_MATRICES.get(int(first.colorspace), str(first.colorspace)),
            constant_rate=constant,
            stream_index=stream.index,
            streams=describe_streams(container, path),
            damage=source_damage(
                decoded=len(pict),
                errors=errors,
                packets=len(pict) + errors,
                header_frames=header,
                expected_end=header_end(container, stream),
                decoded_end=None if restarts else _first_time(pts, end) + duration,
                rate=rate,
                skipped=skipped_bytes(path),
                leading=stats.leading,
                corrupt=stats.corrupt,
                tainted=stats.tainted,
                damaged_start=(stats.bad_key, stats.damaged_start),
                timestamps=timestamp_damage(restarts, outliers),
            ),
            size_changes=changes,
            sample_aspect=aspect_text(sar),
            display_aspect=aspect_text(display_aspect(first.width, first.height, sar)),
            interlaced_frames=interlaced,
            field_order=field_order(stream),
            corrupt_frames=len(stats.corrupt),
            leading_frames=stats.leading,
        )
    finally:
        container.close()


def field_order(stream) -> str:
    """The stream's field order as ffprobe names it (its decoder's, after a decode)."""
    return _FIELD_ORDERS.get(int(stream.codec_context.field_order or 0), "unknown")


def no_key_frame(leading: int) -> str:
    """Why a stream none of whose frames follows a key frame gives no picture."""
    return (
        f"none of its {leading} frame(s) follows a key frame: each is predicted from "
        "pictures the file does not hold"
    )


def no_clean_frame(frames: int, corrupt: int, format_name: str, path: str | Path) -> str:
    """Why a stream none of whose ``frames`` decoded frames is free of damage gives no
    picture: ``corrupt`` of them the decoder flagged (damage it concealed), the rest predicted
    from those. When FFmpeg read the file as a format its name does not say (``format_name``,
    FFmpeg's demuxer; random bytes in a ``.avi`` can pass for a raw H.263 stream), says so."""
    why = (
        f"none of its {frames} decoded frame(s) is free of damage: the decoder concealed damage in "
    )
    why += "each" if corrupt >= frames else f"{corrupt} and the rest are predicted from those"
    suffix = Path(path).suffix.lower().lstrip(".")
    try:
        named = av.format.ContainerFormat(format_name.split(",")[0]).extensions
    except (ValueError, av.FFmpegError):
        named = set()
    if suffix and suffix not in named and suffix not in format_name.split(","):
        why += (
            f" (FFmpeg read it as '{format_name}', not the .{suffix} its name says: not a video?)"
        )
    return why


def split_gops(pict: str) -> list[int]:
    """Frames per GOP of picture types ``pict`` (one letter per frame, display order): a GOP
    starts at each I-frame, and at frame 0 whatever it is."""
    starts = [i for i, t in enumerate(pict) if t == "I"]
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    return [b - a for a, b in itertools.pairwise([*starts, len(pict)])]


def _decoded_duration(pts: list, last: av.VideoFrame, rate: Fraction) -> float:
    """Seconds from the first frame's start to the last one's end (by count without times)."""
    known, tb = [p for p in pts if p is not None], rational(last.time_base)
    if len(known) < 2 or tb is None:
        return len(pts) / float(rate)
    known.sort()
    span = (known[-1] - known[0]) * tb
    # the last frame lasts as long as the interval before it, or its own duration if longer
    tail = max((known[-1] - known[-2]) * tb, (last.duration or 0) * tb)
    return float(span + tail)


def source_damage(
    *,
    decoded: int,
    errors: int,
    packets: int,
    header_frames: int,
    expected_end: tuple[float | None, bool],
    decoded_end: float | None,
    rate: Fraction,
    skipped: tuple[int, int] = (0, -1),
    leading: int = 0,
    corrupt: list[int] | tuple[int, ...] = (),
    tainted: int = 0,
    damaged_start: tuple[int | None, int] = (None, 0),
    timestamps: str = "",
) -> str:
    """Why a source looks truncated or damaged, from what decoded against what its header and
    packets claim ("" when nothing does). ``expected_end``: :func:`header_end`;
    ``decoded_end``: the last decoded frame's end on the stream's timeline (None: unknown);
    ``skipped``: bytes the demuxer skipped, and where
    (:func:`cvpt.codec.container.skipped_bytes`); ``leading``: frames before the first key
    frame, dropped (not in ``decoded``); ``corrupt``: indices of decoded frames the decoder
    flagged corrupt, and ``tainted`` the frames showing that damage (up to the next key frame),
    ``damaged_start`` the packet of a first key frame that does not decode and the frames
    lost with it (:class:`cvpt.codec.container.DecodeStats`); ``timestamps``: what
    :func:`timestamp_damage` says. Shared by :func:`reencode` and
    :func:`cvpt.probe`. "truncated" when the frames end early, "damaged" when frames are
    missing but the end is there."""
    why = []
    if leading:
        why.append(
            f"starts mid-GOP: {leading} frame(s) before its first key frame dropped (predicted "
            "from pictures the file does not hold, they would show grey or garbage; for "
            "H.264/HEVC, those the decoder put out nothing for before its recovery point)"
        )
    bad_key, lost = damaged_start
    if bad_key is not None and lost:
        why.append(
            f"damaged: the first key frame (packet {bad_key}) does not decode; {lost} "
            "frame(s) up to the next key frame dropped"
        )
    decoded += leading + lost  # (accounted for: not missing)
    if skipped[0]:
        why.append(
            f"damaged: {skipped[0]} bytes from byte {skipped[1]} could not be read and were "
            "skipped, with the frames they held"
        )
    end, own = expected_end
    short = end is not None and decoded_end is not None and end - decoded_end
    # the video stream's own end: a frame and a half of slack (the last frame's duration is
    # counted differently by muxers); the file's end: two frames and 2%, so audio that
    # outlasts the video is not damage
    cut = short and short > (1.5 / float(rate) if own else 2 / float(rate) + 0.02 * end)
    if header_frames and decoded < header_frames:
        what = "truncated" if cut or decoded_end is None else "damaged"
        why.append(f"{what}: its header lists {header_frames} frames, {decoded} decode")
    elif not header_frames and cut:
        why.append(
            f"truncated: its header says it ends at {end:.2f} s, "
            f"its frames end at {decoded_end:.2f} s"
        )
    if decoded < packets and not why:
        why.append(f"{packets - decoded} of its {packets} frames do not decode")
    if errors:
        why.append(f"{errors} damaged packet(s) skipped")
    if corrupt and why and why[-1].startswith("truncated") and corrupt[-1] == decoded - leading - 1:
        # the last frame, cut part-way: the truncation (which the packets show too, so the
        # readiness check from the packets says the same), not damage inside the file
        corrupt, tainted = corrupt[:-1], tainted - 1
    if corrupt:
        at = ", ".join(map(str, corrupt[:5])) + (", …" if len(corrupt) > 5 else "")
        why.append(
            f"damaged: {len(corrupt)} frame(s) the decoder concealed (flagged corrupt: frame "
            f"{at}), {tainted} frame(s) showing the damage up to the next key frame"
        )
    return "; ".join(filter(None, [*why, timestamps]))


def _frames_text(indices: list[int]) -> str:
    return ", ".join(map(str, indices[:5])) + (", …" if len(indices) > 5 else "")


def timestamp_damage(
    restarts: list[int], outliers: list[int], jumps: list[int] = (), dropped: list[int] = ()
) -> str:
    """What a source's timestamps get wrong, in words ("" when nothing), from the indices of
    its decoded frames whose time restarts (goes back, and the frames after it follow on from
    there), is one out of place (goes back or repeats, and the next goes on from before it),
    jumps forward by more than :data:`cvpt.codec.encode.MAX_GAP_S`, or is dropped (a slot
    already written). Shared by :func:`reencode` and :func:`cvpt.probe`."""
    why = []
    if restarts:
        why.append(
            f"timestamps restart at frame {_frames_text(restarts)}: the frames after each "
            "restart are timed on from the frame before"
        )
    if outliers:
        why.append(
            f"{len(outliers)} frame(s) timed out of order or at a repeated time (frame "
            f"{_frames_text(outliers)}): kept in decode order"
        )
    if jumps:
        why.append(
            f"timestamps jump forward more than 10 s at frame {_frames_text(jumps)}: taken "
            "for broken times, the frames follow on"
        )
    if dropped:
        why.append(
            f"{len(dropped)} frame(s) dropped: timed on instants already written (frame "
            f"{_frames_text(dropped)})"
        )
    return "; ".join(why)


def header_end(container, stream) -> tuple[float | None, bool]:
    """``(seconds, own)``: where on the stream's timeline the header says the video ends (None:
    it does not say), and whether that is the video stream's own end rather than the file's.

    The stream's start plus its duration; else its ``DURATION`` tag (FFmpeg's and mkvmerge's
    Matroska muxers write one per track: its end time); else the file's duration. Matroska,
    WebM and NUT give the file's end time there (a file whose first frame is at 5 s and lasts
    2 s says 7 s), FLV its length: taken as an end, it can miss a truncation of a file that
    does not start at 0, never invent one."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base), True
    tag = _tag_seconds(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tag:
        return tag, True
    if container.duration:
        return container.duration / av.time_base, False
    return None, False


def _tag_seconds(text: str | None) -> float | None:
    """``HH:MM:SS.fffffffff`` (a Matroska ``DURATION`` tag) in seconds; None if it is not one."""
    try:
        h, m, sec = (text or "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None


def _first_time(pts: list, frame: av.VideoFrame) -> float:
    """Seconds on the stream's timeline of the first frame (0 without timestamps)."""
    known, tb = [p for p in pts if p is not None], rational(frame.time_base)
    if not known or tb is None:
        return 0.0
    return float(min(known) * tb)
