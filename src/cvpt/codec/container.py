"""Opening videos with PyAV and turning FFmpeg failures into :class:`cvpt.VideoError`.

Every reader and writer in cvpt opens files through :func:`open_video`, so that "missing",
"not a video", "audio only" and "corrupt" are told apart in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

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
    """Open ``path`` and return ``(container, first video stream)``.

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
        stream = container.streams.video[0]
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
