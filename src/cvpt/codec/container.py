"""Opening videos with PyAV and turning FFmpeg failures into :class:`cvpt.VideoError`.

Every reader and writer in cvpt opens files through :func:`open_video`, so that "missing",
"not a video", "audio only" and "corrupt" are told apart in one place, and so that every one of
them reads the same video stream of a file with several (:func:`footage_stream`).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from cvpt.codec.bitstream import is_key_picture
from cvpt.errors import CorruptVideoError, NotAVideoError, VideoError, VideoNotFoundError

# Extensions `cvpt prepare` picks up when walking a tree (lower case, with the dot).
VIDEO_EXTENSIONS = frozenset(
    [
        ".avi",
        ".mp4",
        ".m4v",
        ".mkv",
        ".webm",
        ".mov",
        ".mpg",
        ".mpeg",
        ".flv",
        ".wmv",
        ".3gp",
        ".ogv",
        ".ts",
        ".mts",
    ]
)

# Used when a container reports no usable frame rate (raw streams, broken headers).
DEFAULT_FPS = Fraction(30)
# The frame rates cvpt takes a stream to have. The highest is what an MPEG-4 Part 2 stream can
# time (its vop_time_increment_resolution, the time base's denominator, is 16 bits): a source
# timed faster than that is refused by `cvpt prepare`, never resampled with frames dropped.
# Below the lowest (a frame every 1000 s), a source is refused too: timed on that grid, each
# of its frames would be written several times.
MAX_FPS = Fraction(65535)
MIN_FPS = Fraction(1, 1000)

# PyAV 18 decodes a container's metadata strictly unless told otherwise, so one tag that is not
# UTF-8 (a camera's or an old muxer's Latin-1 title) fails the whole open; PyAV 19 removed the
# option (and the attribute it set) and always reads UTF-8 with surrogateescape, which cannot
# fail. Tested on the feature, not the version number.
_OPEN_OPTIONS = (
    {"metadata_errors": "ignore"} if hasattr(av.container.Container, "metadata_errors") else {}
)


def open_input(path: str | Path) -> av.container.InputContainer:
    """``av.open(path)`` for reading, with tags that are not UTF-8 read, not refused (on every
    PyAV cvpt supports). FFmpeg errors propagate as ``av.FFmpegError``."""
    return av.open(str(path), mode="r", **_OPEN_OPTIONS)


def rational(value) -> Fraction | None:
    """A PyAV rational attribute (``time_base``, ``average_rate``, ...) as a Fraction, None when
    unset: PyAV 18 gives ``Fraction`` or None, PyAV 19 ``av.AVRational``, ``AVRational(0, 1)``
    when unset, which has no ``round()``, ``int()`` or ``limit_denominator()``."""
    return Fraction(value.numerator, value.denominator) if value else None


def check_file(path: str | Path) -> Path:
    """Return ``path`` as a Path, or raise :class:`VideoNotFoundError` naming it."""
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(p, "no such file")
    if not p.is_file():
        raise VideoNotFoundError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise NotAVideoError(p, "the file is empty (0 bytes)")
    return p


def open_video(
    path: str | Path, *, export_mvs: bool = False, thread_type: str = "NONE"
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open ``path`` and return ``(container, its footage stream)`` (see :func:`footage_stream`).

    ``export_mvs`` asks the decoder for motion-vector side data (``flags2=+export_mvs``); it must
    be set before the first decode and costs no measurable time. ``thread_type="NONE"`` (one
    decode thread) is the right choice for short clip decodes and inside DataLoader workers,
    where frame threads cost start-up time and oversubscribe the cores.
    """
    p = check_file(path)
    try:
        container = open_input(p)
    except av.FFmpegError as e:
        problem = _mp4_index_problem(p)
        if problem:
            raise CorruptVideoError(
                p,
                f"an MP4/MOV whose index (the moov box) {problem}: a recording or download cut "
                "off before it was finished; FFmpeg cannot decode it without the index",
            ) from e
        raise NotAVideoError(p, f"FFmpeg cannot open it as a media file ({_short(e)})") from e
    try:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise NotAVideoError(p, f"holds no video stream (found: {', '.join(kinds)})")
        stream = footage_stream(container, p)
        if stream.codec_context is None or not stream.codec_context.name:
            raise NotAVideoError(p, "its video stream has no decoder in this FFmpeg build")
        if not stream.codec_context.width or not stream.codec_context.height:
            raise CorruptVideoError(p, "its video stream reports no frame size")
        stream.thread_type = thread_type
        if export_mvs:
            stream.codec_context.options = {"flags2": "+export_mvs"}
    except BaseException:
        container.close()
        raise
    return container, stream


try:  # the class behind ``frame.side_data`` (PyAV >= 12), made here without the frame's cache
    from av.sidedata.sidedata import SideDataContainer as _SideDataContainer
except ImportError:  # pragma: no cover - a PyAV that moved it: the property still works
    _SideDataContainer = None


def frame_side_data(frame: av.VideoFrame) -> Mapping:
    """The frame's side data (``"MOTION_VECTORS"``, ``"DISPLAYMATRIX"``, ...) by type name.

    Use this, not ``frame.side_data``: PyAV's property caches its container on the frame and the
    container points back at the frame, so every frame read that way lives until the garbage
    collector runs, and the decoder, unable to reuse the pictures still held, allocates new
    ones. Measured on 320x240 MPEG-4 with motion vectors read from every frame: a 48-frame
    decode took 1.3-3.5x as long (the more the busier the machine). A container made here
    refers to the frame, but the frame not to it: freed as soon as the caller drops it.
    """
    if _SideDataContainer is not None:
        try:
            return _SideDataContainer(frame)
        except TypeError:  # pragma: no cover - a PyAV whose container is built another way
            pass
    return frame.side_data


def _mp4_index_problem(path: Path) -> str | None:
    """For an ISO media file (``ftyp`` first): "is missing" when its top-level boxes hold no
    ``moov``, "is cut short" when the ``moov`` runs past the end of the file; else None.
    Reads box headers only."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        pos, first = 0, True
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if first and kind != b"ftyp":
                return None
            if length == 1 and len(head) == 16:  # 64-bit size
                length = int.from_bytes(head[8:16], "big")
            if kind == b"moov":
                return "is cut short" if pos + length > size else None
            if length < 8:  # 0: to the end of the file; <8: not a box
                break
            pos, first = pos + length, False
    return None if first else "is missing"


@contextlib.contextmanager
def ffmpeg_errors(path: str | Path, what: str = "decoding failed") -> Iterator[None]:
    """Translate FFmpeg exceptions raised inside the block into :class:`CorruptVideoError`."""
    try:
        yield
    except VideoError:
        raise
    except (av.FFmpegError, EOFError, ValueError, IndexError, OverflowError) as e:
        raise CorruptVideoError(path, f"{what} ({_short(e)})") from e


# Dispositions of video streams that are pictures, not footage: cover art, thumbnails.
_PICTURE_DISPOSITIONS = (
    av.stream.Disposition.attached_pic
    | av.stream.Disposition.timed_thumbnails
    | av.stream.Disposition.still_image
)
# Frame counts of the video streams of multi-stream files without a frame count in their
# header (mkv, webm), by (path, size, mtime): one packet scan per file and process.
_STREAM_FRAMES: OrderedDict[tuple, dict[int, int]] = OrderedDict()


def footage_stream(
    container: av.container.InputContainer, path: str | Path
) -> av.video.stream.VideoStream:
    """The video stream that holds the footage: the only one (no cost), or, of several, the one
    with the most frames among those that are not cover art or thumbnails (disposition
    ``attached_pic``, ``timed_thumbnails``, ``still_image``); ties go to the larger picture,
    then to the first stream. Frame counts come from the header, or from one scan of the packets
    when the header has none (cached per file). Raises :class:`NotAVideoError` without one.
    """
    streams = list(container.streams.video)
    if len(streams) == 1:
        return streams[0]
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise NotAVideoError(path, f"holds no video stream (found: {', '.join(kinds)})")
    footage = [s for s in streams if not int(s.disposition) & _PICTURE_DISPOSITIONS] or streams
    if len(footage) == 1:
        return footage[0]
    counts = {s.index: s.frames for s in footage}
    if not all(counts.values()):
        counts = count_packets(container, path, footage)
    return max(
        footage,
        key=lambda s: (counts[s.index], s.codec_context.width * s.codec_context.height, -s.index),
    )


def count_packets(container, path, streams) -> dict[int, int]:
    """Shown packets (frames) of each of ``streams`` by stream index, from one demux pass of
    ``container`` (then sought back to the start), kept per (path, size, mtime): for streams
    whose header has no frame count (mkv, webm)."""
    st = Path(path).stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _STREAM_FRAMES:
        counts = dict.fromkeys((s.index for s in streams), 0)
        with ffmpeg_errors(path, "counting the frames of its video streams failed"):
            for packet in container.demux(streams):
                if packet.size and packet.stream.index in counts:
                    counts[packet.stream.index] += 1
            container.seek(0)
        _STREAM_FRAMES[key] = counts
        if len(_STREAM_FRAMES) > 1024:
            _STREAM_FRAMES.popitem(last=False)
    return _STREAM_FRAMES[key]


def describe_streams(container: av.container.InputContainer, path: str | Path) -> list[dict]:
    """One dict per video stream: index, codec, size, frames (the header's count less what an
    edit list hides, :func:`listed_frames`, else the packets counted by :func:`footage_stream`;
    0: unknown), picture dispositions."""
    streams = list(container.streams.video)
    counts = {s.index: listed_frames(s) for s in streams}
    if len(streams) > 1 and not all(counts.values()):
        counts = count_packets(container, path, streams)
    out = []
    for s in streams:
        flags = [d.name for d in av.stream.Disposition if d & _PICTURE_DISPOSITIONS & s.disposition]
        cc = s.codec_context
        out.append(
            {
                "index": s.index,
                "codec": cc.name if cc else None,
                "width": cc.width if cc else 0,
                "height": cc.height if cc else 0,
                "frames": counts.get(s.index, 0),
                "picture": flags,
            }
        )
    return out


_PICT_I = av.video.frame.PictureType.I


@dataclass
class DecodeStats:
    """What :func:`decode_tolerant` saw of a stream beyond the frames it yielded.

    ``packets``: shown packets fed to the decoder (not empty, not hidden by an edit list);
    ``leading_packets``: those before the first packet flagged key (0 when none is);
    ``leading_dropped``: frames the decoder put out before the first key frame, dropped
    (MPEG-4 Part 2 decodes a stream cut mid-GOP from a grey picture); ``leading_errors``:
    packets before the first key packet that failed to decode (their parameter sets were cut
    off); ``corrupt``: indices, among the frames yielded, of frames the decoder flagged corrupt
    (damage it concealed); ``tainted``: frames yielded from the first corrupt frame of a GOP to
    the next key frame (predicted from concealed pictures: they show the damage too);
    ``bad_key``: the shown-packet index of a key picture before the start that failed to
    decode (a damaged first key frame, not a cut: the frames up to the next key frame are
    lost to damage, :attr:`damaged_start`), None when none did.
    """

    packets: int = 0
    leading_packets: int = 0
    leading_dropped: int = 0
    leading_errors: int = 0
    frames: int = 0
    errors: int = 0
    corrupt: list[int] = field(default_factory=list)
    tainted: int = 0
    bad_key: int | None = None
    _key_packet: bool = False  # a packet flagged key was fed
    _started: bool = False  # a frame was yielded
    _early: list = field(default_factory=list)  # times of the packets fed before the start
    _first: int | None = None  # the first frame's time
    _earlier: int | None = None  # packets timed before it (None: untimed)

    @property
    def _before_start(self) -> int:
        """Shown frames lost before the first frame yielded: dropped here, failed, or dropped
        by the decoder itself (packets that gave neither a frame nor an error: H.264 puts out
        nothing before a key frame or recovery point, nor an open GOP's leading B-frames
        whose references precede the cut)."""
        missing = self.packets - self.frames - self.leading_dropped - self.errors
        missing -= self.leading_errors
        # packets shown before the first frame (not those a truncation lost at the end);
        # without times, those before the first key packet
        earlier = self.leading_packets if self._earlier is None else self._earlier
        by_decoder = min(earlier - self.leading_dropped - self.leading_errors, missing)
        return self.leading_dropped + self.leading_errors + max(0, by_decoder)

    @property
    def leading(self) -> int:
        """Frames before the first key frame (a cut mid-GOP), dropped: those before a damaged
        first key frame only, when it is one (:attr:`damaged_start`)."""
        if self.bad_key is None:
            return self._before_start
        return min(self.bad_key, self._before_start)

    @property
    def damaged_start(self) -> int:
        """Frames lost from the damaged first key frame (:attr:`bad_key`) to the next one."""
        return self._before_start - self.leading


# Decoders that output nothing before a key frame or a recovery point (x264's intra refresh:
# no key frame at all after a cut), and flag corrupt what they output before it: a frame they
# output unflagged is a correct picture, key or not.
RECOVERING_DECODERS = ("h264", "hevc")


def decode_tolerant(
    container, stream, path, max_errors: int = 50, stats: DecodeStats | None = None
):
    """Yield decoded frames, and an Exception in place of each damaged packet.

    Like the ffmpeg CLI, a transcode goes on past a damaged packet; after ``max_errors`` of them
    the file is declared corrupt. Frames before the stream's first key frame (a stream cut
    mid-GOP: predicted from pictures the file does not hold) are dropped, and failures of the
    packets before the first key packet are not damage: ``stats`` (a :class:`DecodeStats`)
    counts both, and the frames flagged corrupt. For :data:`RECOVERING_DECODERS` the first
    frame the decoder outputs unflagged starts the stream, key frame or not. A key picture
    (by its packet's flag or its header) that fails before the start is damage
    (``stats.bad_key``), not a cut.
    """
    stats = DecodeStats() if stats is None else stats
    errors = 0
    tainted = False
    codec = stream.codec_context.name
    recovers = codec in RECOVERING_DECODERS
    key_at = index_keys = None  # the first key picture's packet before the start; the index
    with ffmpeg_errors(path, "demuxing failed"):
        for packet in container.demux(stream):
            if packet.size:
                stats._key_packet = stats._key_packet or packet.is_keyframe
                if not packet.is_discard:
                    stats.packets += 1
                    stats.leading_packets += not stats._key_packet
                    if not stats._started:
                        stats._early.append(packet.pts)
                    elif stats._earlier is not None and packet.pts is not None:
                        stats._earlier += packet.pts < stats._first
                    if key_at is None and not stats._started:
                        index_keys = _index_keys(stream) if index_keys is None else index_keys
                        if _key_packet(packet, codec, stream, index_keys):
                            key_at = stats.packets - 1
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                errors += 1
                if errors > max_errors:
                    raise
                if not stats._started:
                    # (frame threads raise a packet's error with a later packet's)
                    stats.bad_key = key_at if stats.bad_key is None else stats.bad_key
                    if stats.bad_key is not None or not stats._key_packet:
                        stats.leading_errors += 1
                        continue
                stats.errors += 1
                yield e
                continue
            for frame in frames:
                key = frame.key_frame or frame.pict_type == _PICT_I
                key = key or (recovers and not frame.is_corrupt)
                if not stats._started:
                    # before the first key frame, unless a key packet went to the decoder
                    # before any shown one: an edit list hides the frames from the key frame
                    # before its cut (`ffmpeg -ss … -c copy`); they are decoded, not shown
                    hidden_key = stats._key_packet and not stats.leading_packets
                    if not key and not hidden_key:
                        stats.leading_dropped += 1
                        continue
                    stats._started = True
                    if frame.pts is not None and None not in stats._early:
                        stats._first = frame.pts
                        stats._earlier = sum(p < frame.pts for p in stats._early)
                if frame.is_corrupt:
                    stats.corrupt.append(stats.frames)
                    tainted = True
                elif key:
                    tainted = False
                stats.tainted += tainted
                stats.frames += 1
                yield frame
    if not stats._key_packet:  # no packet is flagged key: the flags say nothing
        stats.leading_packets = 0


def _index_keys(stream) -> set[int]:
    """Times of the key frames the container's index lists (mkv's cues, mp4's sync samples,
    AVI's key flags): what a packet was muxed as where the H.264 parser re-flags it."""
    return {e.timestamp for e in stream.index_entries if e.is_keyframe}


def _key_packet(packet: av.Packet, codec: str, stream, index_keys: set[int]) -> bool:
    """Whether a packet holds a key picture by its flag, its headers (:func:`is_key_picture`)
    or the container's index (:func:`_index_keys`: where damage took the headers, and the
    H.264 parser the flag with them)."""
    if packet.is_keyframe or is_key_picture(bytes(packet), codec, stream.codec_context.extradata):
        return True
    return bool({packet.pts, packet.dts} & index_keys)


def scan_packets(container, stream, path) -> tuple[list[int | None], list[bool]]:
    """``(pts, key flags)`` of the stream's packets that hold shown frames, in file order: one
    demux pass, nothing decoded (a few ms for a 10-second video). A truncated file ends where
    its bytes do; packets an edit list hides (``is_discard``) are left out, as the decoder
    drops their frames."""
    pts, keys = [], []
    with ffmpeg_errors(path, "reading the packet index failed"):
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
    return pts, keys


# Bytes between two Matroska packets beyond what block and cluster headers take (measured:
# at most 24 in FFmpeg's files; mkvmerge's are alike): more is a region the demuxer skipped.
_RESYNC_GAP = 1024


def skipped_bytes(path: str | Path, format_name: str | None = None) -> tuple[int, int]:
    """``(bytes, offset of the first)`` a Matroska / WebM file holds between its packets that
    the demuxer skipped: damaged bytes in the middle, after which it resynchronises on the
    next cluster without an error, silently losing the frames in between. ``(0, -1)`` for
    other containers (whose packets come from an index, so a damaged packet is a decode
    error) and for undamaged files. One demux pass over every stream, nothing decoded.
    ``format_name``: the container's ``format.name`` when the caller has it open already
    (another container is then answered without opening the file again)."""
    if format_name is not None and "matroska" not in format_name:
        return 0, -1
    p = check_file(path)
    with open_input(p) as container:
        if "matroska" not in container.format.name:
            return 0, -1
        blocks: dict[int, int] = {}  # block position → bytes (laced frames share a block)
        with ffmpeg_errors(p, "demuxing failed"):
            for pk in container.demux():
                if pk.size and pk.pos >= 0:
                    blocks[pk.pos] = blocks.get(pk.pos, 0) + pk.size
    total, first = 0, -1
    for (a, size), (b, _) in itertools.pairwise(sorted(blocks.items())):
        gap = b - (a + size)
        if gap > _RESYNC_GAP:
            total += gap
            first = a + size if first < 0 else first
    return total, first


def listed_frames(stream) -> int:
    """Frames the header says the stream shows (0: it does not say): its frame count less the
    samples an edit list hides. An mp4 cut with ``ffmpeg -ss … -c copy`` keeps the frames from
    the key frame before the cut, flagged discard: no player shows them, and neither does the
    decoder, so they are not missing frames."""
    n = max(stream.frames, 0)
    if n:
        n -= sum(1 for entry in stream.index_entries if entry.is_discard)
    return max(n, 0)


class FrameClock:
    """Presentation times of decoded frames as libavcodec's best-effort timestamp takes them
    (``guess_correct_pts``, what the ffmpeg CLI uses): a frame's pts, unless pts have gone
    backwards more often than the dts of the packets behind the frames. AVI stores no pts: with
    B-frames FFmpeg gives each frame the made-up pts of another packet, out of order, and a
    resampler trusting them drops and repeats frames.

    :meth:`observe` every frame in decode order; :meth:`time` gives a frame's time by the
    faults counted so far. Observing a few frames before timing them (as ``reencode`` does,
    and ``probe`` for all) decides before the first fault rather than after it, where the
    ffmpeg CLI's frames up to the first fault keep their wrong times.
    """

    def __init__(self) -> None:
        self.pts_faults = self.dts_faults = 0
        self.last_pts: int | None = None
        self.last_dts: int | None = None
        self._last: int | None = None  # the last time given, and the interval before it
        self._step = 1

    def observe(self, frame: av.VideoFrame) -> None:
        pts, dts = frame.pts, frame.dts
        if dts is not None:
            self.dts_faults += self.last_dts is not None and dts <= self.last_dts
            self.last_dts = dts
        elif pts is not None:
            self.last_dts = pts
        if pts is not None:
            self.pts_faults += self.last_pts is not None and pts <= self.last_pts
            self.last_pts = pts
        elif dts is not None:
            self.last_pts = dts

    def time(self, frame: av.VideoFrame) -> int | None:
        """The frame's time; call it in output order. Frames drained from the decoder at the
        end carry no dts: where pts are not trusted, they follow on at the last interval."""
        pts, dts = frame.pts, frame.dts
        if self.pts_faults > self.dts_faults and dts is None and self._last is not None:
            t = self._last + self._step
        elif (self.pts_faults <= self.dts_faults or dts is None) and pts is not None:
            t = pts
        else:
            t = dts
        if t is not None:
            if self._last is not None and t > self._last:
                self._step = t - self._last
            self._last = t
        return t


def on_rate_grid(pts: Sequence[int], time_base: Fraction, rate: Fraction) -> bool:
    """True when frame ``k`` of these presentation times (any order) is at ``k / rate`` from
    the first, to the nearest frame: a constant frame rate, which resampling at ``rate``
    leaves as it is. Timestamps rounded to the time base (mkv's milliseconds) still pass,
    also where a tick is longer than half a frame (mkv at 1200 fps: several frames share a
    millisecond): then frame ``k`` is on the grid within one tick of ``k / rate``."""
    if len(pts) < 2:
        return True
    t = sorted(int(p) for p in pts)
    step = Fraction(time_base) * Fraction(rate)  # frames per pts unit
    if coarse_time_base(time_base, rate):  # (integers: exact at any length)
        n, d = step.numerator, step.denominator
        return all(abs((p - t[0]) * n - k * d) <= n for k, p in enumerate(t))
    num, den = 2 * step.numerator, 2 * step.denominator
    # slot of each frame, rounded to the nearest (integers: exact at any length)
    return all(((p - t[0]) * num + step.denominator) // den == k for k, p in enumerate(t))


def coarse_time_base(time_base: Fraction | None, rate: Fraction) -> bool:
    """True when a tick of ``time_base`` is longer than half a frame at ``rate``: frame times
    rounded to it cannot tell the frames apart (mkv's milliseconds at 1200 fps), so frames of
    a constant-rate stream are numbered by count, not placed by their times."""
    return bool(time_base) and Fraction(time_base) * Fraction(rate) > Fraction(1, 2)


def timestamp_breaks(
    pts: Sequence[int | None], depth: int = 0, *, equal: bool = True
) -> tuple[list[int], list[int]]:
    """``(restarts, outliers)``: indices of frames whose time is not after the frames before
    them (``equal``: a time equal to one before counts too). A restart begins a new run of
    times (recordings joined with ``cat``, a muxer's reset); an outlier is one frame out of
    place (a swapped or repeated timestamp) after which the times go on past the run's latest.

    ``pts`` in decode order with ``depth`` > 0: a frame is compared with the frames more than
    ``depth`` before it only, so B-frame reordering (no frame shown before one decoded more
    than ``depth`` earlier) is no break. In output order, ``depth=0``."""
    known = [(i, p) for i, p in enumerate(pts) if p is not None]
    restarts, outliers = [], []
    old = top = None  # the run's latest time: of frames more than `depth` back, of all
    recent: list[int] = []
    for n, (i, p) in enumerate(known):
        if old is not None and (p <= old if equal else p < old):
            if any(q > top for _, q in known[n + 1 : n + 2 + depth]):
                outliers.append(i)
                continue
            restarts.append(i)
            old = top = None
            recent = []
        recent.append(p)
        top = p if top is None else max(top, p)
        if len(recent) > depth:
            q = recent.pop(0)
            old = q if old is None else max(old, q)
    return restarts, outliers


def reorder_window(stream) -> int:
    """Packets a B-frame can be decoded after a frame shown later (for
    :func:`timestamp_breaks` in decode order): none without B-frames, else twice the decoder's
    delay and one (a B-pyramid's frames sit one further back than the delay)."""
    cc = stream.codec_context
    delay = int(getattr(cc, "reorder_depth", 0) or 0) or int(bool(cc.has_b_frames))
    return 2 * delay + 1 if delay else 0


def timestamp_runs(pts: Sequence[int | None], depth: int = 0) -> list[list[int]]:
    """The known times of ``pts`` split where they restart (:func:`timestamp_breaks`): one
    list when they do not. Restarts at more than a tenth of the frames are reordering the
    window missed, not restarts: one list then too."""
    known = [p for p in pts if p is not None]
    restarts, _ = timestamp_breaks(pts, depth, equal=False)
    if not restarts or len(restarts) > len(known) // 10:
        return [[int(p) for p in known]]
    cuts = [0, *(sum(q is not None for q in pts[:i]) for i in restarts), len(known)]
    return [[int(p) for p in known[a:b]] for a, b in itertools.pairwise(cuts)]


def frame_timing(stream, pts: Sequence[int | None], depth: int = 0) -> tuple[Fraction, bool]:
    """``(rate, constant)`` of a stream whose frames have presentation times ``pts`` (in
    output order, or decode order with the reorder ``depth`` of :func:`reorder_window`).

    Constant: the first rate whose grid every frame sits on, of FFmpeg's guessed rate
    (``r_frame_rate``, what the ffmpeg CLI gives its constant-rate outputs), the header's
    average rate (:func:`stream_fps`), each tried first as the standard rate it is near, and
    the rate of the timestamps themselves (frames over span, snapped to a standard rate), for
    headers that name a rate the frames do not have. Times that restart (two recordings
    joined: :func:`timestamp_runs`) are taken run by run: two interleaved timelines are not
    one finer grid. A repeated time is no frame slot of its own (the resampler reports it).
    Variable: the typical rate of the frames (median interval, snapped), so that most frames
    keep a slot of their own and a stall repeats one. Frames without a pts count as on the grid.
    """
    rate = stream_fps(stream)
    tb = rational(stream.time_base)
    runs = [r for r in timestamp_runs(pts, depth) if r]
    if not tb or sum(map(len, runs)) < 2:
        return rate, True
    header = [Fraction(r) for r in (stream.guessed_rate,) if r and MIN_FPS <= r <= MAX_FPS]
    # each as the standard rate it is near first (an mp4's average 7200/241 for 30 fps, whose
    # last frame is shorter): on the grid too, it is the exact one
    candidates = [r for h in (*header, rate) for r in (_snap_rate(h), h)]
    longest = max(runs, key=len)
    t = sorted(set(longest))
    if len(t) == len(longest) and len(t) > 1:
        span = int(t[-1] - t[0])  # ± 1 tick of rounding
        candidates.append(_snap_rate(Fraction(len(t) - 1) / (span * tb), Fraction(1, span)))
    for r in candidates:
        # repeated times: several frames to a tick where ticks are coarse, else one frame
        if all(on_rate_grid(x if coarse_time_base(tb, r) else set(x), tb, r) for x in runs):
            return r, True
    # the typical interval: the mean of those near the median (mkv rounds 1/30 s to 33 or 34 ms)
    steps = [b - a for x in runs for a, b in itertools.pairwise(sorted(set(x)))] or [1]
    median = statistics.median(steps)
    near = [s for s in steps if abs(s - median) <= 0.1 * median]
    typical = Fraction(sum(near) / len(near))
    return _snap_rate(1 / (typical * tb), Fraction(1, int(2 * median))), False


# Frame rates cameras, phones and broadcast use; a measured rate within 0.5% is taken as one.
_STANDARD_RATES = tuple(
    Fraction(r)
    for r in (
        "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60",
        "90", "100", "120", "240", "5", "10", "12", "12.5", "15", "20",
    )
)  # fmt: skip


def _snap_rate(rate: Fraction, uncertainty: Fraction = Fraction(0)) -> Fraction:
    """``rate`` as the nearest standard rate within 0.5% plus its relative ``uncertainty``
    (timestamp rounding), else to 1/1001 (below 1 fps: its period to 1/1001 s). Not capped: a
    source timed faster than :data:`MAX_FPS` or slower than :data:`MIN_FPS` keeps its rate,
    for ``reencode`` to refuse rather than drop or repeat frames (capped at 1000 fps, a 2000
    fps source lost every second frame; at 1/1000, a frame every 2000 s was written twice)."""
    if rate <= 0:
        return DEFAULT_FPS
    near = min(_STANDARD_RATES, key=lambda r: abs(rate / r - 1))
    if abs(rate / near - 1) <= Fraction(1, 200) + uncertainty:
        return near
    if rate < 1:
        return 1 / (1 / rate).limit_denominator(1001)
    return rate.limit_denominator(1001)


def stream_fps(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's frame rate, falling back to 30 when the container reports none or nonsense
    (outside :data:`MIN_FPS` .. :data:`MAX_FPS`)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        rate = rational(rate)
        if rate and MIN_FPS <= rate <= MAX_FPS:
            return rate
    return DEFAULT_FPS


def is_video_file(path: Path) -> bool:
    """True for names that look like videos (by extension), skipping hidden and temp files."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _short(e: BaseException) -> str:
    """FFmpeg's own words without the errno and the file name we already print."""
    text = (getattr(e, "strerror", None) or str(e)).strip() or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."
