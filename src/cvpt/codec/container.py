"""Opening videos with PyAV and turning FFmpeg failures into :class:`cvpt.VideoError`.

Every reader and writer in cvpt opens files through :func:`open_video`, so that "missing",
"not a video", "audio only" and "corrupt" are told apart in one place, and so that every one of
them reads the same video stream of a file with several (:func:`footage_stream`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

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
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.FFmpegError as e:
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
        counts = _count_packets(container, path, footage)
    return max(
        footage,
        key=lambda s: (counts[s.index], s.codec_context.width * s.codec_context.height, -s.index),
    )


def _count_packets(container, path, streams) -> dict[int, int]:
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
    """One dict per video stream: index, codec, size, frames (the header's count, else the
    packets counted by :func:`footage_stream`; 0: unknown), picture dispositions."""
    streams = list(container.streams.video)
    counts = {s.index: s.frames for s in streams}
    if len(streams) > 1 and not all(counts.values()):
        counts = _count_packets(container, path, streams)
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


def decode_tolerant(container, stream, path, max_errors: int = 50):
    """Yield decoded frames, and an Exception in place of each damaged packet.

    Like the ffmpeg CLI, a transcode goes on past a damaged packet; after ``max_errors`` of them
    the file is declared corrupt.
    """
    errors = 0
    with ffmpeg_errors(path, "demuxing failed"):
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                errors += 1
                if errors > max_errors:
                    raise
                yield e
                continue
            yield from frames


def scan_packets(container, stream, path) -> tuple[list[int | None], list[bool]]:
    """``(pts, key flags)`` of the stream's packets that hold data, in file order: one demux pass,
    nothing decoded (a few ms for a 10-second video). A truncated file ends where its bytes do."""
    pts, keys = [], []
    with ffmpeg_errors(path, "reading the packet index failed"):
        for packet in container.demux(stream):
            if packet.size:
                pts.append(packet.pts)
                keys.append(packet.is_keyframe)
    return pts, keys


def on_rate_grid(pts: Sequence[int], time_base: Fraction, rate: Fraction) -> bool:
    """True when frame ``k`` of these presentation times (any order) is at ``k / rate`` from
    the first, to the nearest frame: a constant frame rate, which resampling at ``rate``
    leaves as it is. Timestamps rounded to the time base (mkv's milliseconds) still pass."""
    if len(pts) < 2:
        return True
    t = np.sort(np.asarray(pts, np.int64))
    t -= t[0]
    step = Fraction(time_base) * Fraction(rate)  # frames per pts unit
    slots = (t * step.numerator * 2 + step.denominator) // (2 * step.denominator)  # round
    return bool(np.array_equal(slots, np.arange(len(t))))


def frame_timing(stream, pts: Sequence[int | None]) -> tuple[Fraction, bool]:
    """``(rate, constant)`` of a stream whose frames have presentation times ``pts``: the
    header's rate (:func:`stream_fps`) when every frame sits on its grid, else FFmpeg's guessed
    rate (``r_frame_rate``, which the ffmpeg CLI gives its constant-rate outputs), and whether
    the frames sit on that grid. Frames without a pts count as on the grid."""
    rate = stream_fps(stream)
    known = [p for p in pts if p is not None]
    tb = stream.time_base
    if not tb or len(known) < 2 or on_rate_grid(known, tb, rate):
        return rate, True
    guessed = stream.guessed_rate
    if guessed and 0 < float(guessed) <= 1000:
        return Fraction(guessed), on_rate_grid(known, tb, Fraction(guessed))
    return rate, False


def stream_fps(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's frame rate, falling back to 30 when the container reports none or nonsense."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < float(rate) <= 1000:
            return Fraction(rate)
    return DEFAULT_FPS


def is_video_file(path: Path) -> bool:
    """True for names that look like videos (by extension), skipping hidden and temp files."""
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def _short(e: BaseException) -> str:
    """FFmpeg's own words without the errno and the file name we already print."""
    text = (getattr(e, "strerror", None) or str(e)).strip() or type(e).__name__
    return text if len(text) < 200 else text[:197] + "..."
