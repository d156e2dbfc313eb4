"""Exceptions raised for bad video input.

Every error names the file and the reason, so a user with 10,000 videos can tell which one failed
and why without reading a traceback from inside FFmpeg.
"""

from __future__ import annotations

from pathlib import Path


class VideoError(Exception):
    """Base class: a video could not be used. ``path`` is the file, ``reason`` the human reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist or is not a regular file."""


class NotAVideoError(VideoError):
    """The file opens as no container, or holds no video stream (e.g. audio only)."""


class EmptyVideoError(VideoError):
    """The video stream holds no decodable frame."""


class CorruptVideoError(VideoError):
    """Decoding failed part-way: truncated or damaged bytes."""


class UnpreparedVideoError(VideoError):
    """The video is not in the compressed layout cvpt reads (codec, GOP 12, no B-frames).

    The fix is always the same, so the message says it: run ``cvpt prepare``.
    """

    def __init__(self, path: str | Path, reason: str):
        super().__init__(
            path,
            f"{reason}; re-encode it with `cvpt prepare SRC DST` "
            "(MPEG-4 Part 2, GOP 12, no B-frames) and read the prepared copy",
        )


class EncodeError(VideoError):
    """Re-encoding failed or produced an output that does not verify."""
