"""cvpt's own exceptions: one base class, :class:`CvptError`, for everything a user can fix.

Every error names the file (or key) and the reason, so a user with 10,000 videos can tell which
one failed and why without reading a traceback from inside FFmpeg. The ``cvpt`` command prints a
:class:`CvptError` as one line and exits with status 2; anything else is a bug and keeps its
traceback. Classes that replace a built-in error also derive from it (``ConfigError`` is a
``ValueError``, ``VideoNotFoundError`` a ``FileNotFoundError``), so ``except ValueError`` code
keeps working.
"""

from __future__ import annotations

from pathlib import Path


class CvptError(Exception):
    """Base class of every error cvpt raises on purpose: bad input, not a bug."""


class ConfigError(CvptError, ValueError):
    """An option, config key or value that cvpt cannot use; the message lists what is valid."""


class DataError(CvptError, ValueError):
    """Annotations or a dataset folder that cannot be read (names the file and the line)."""


class RunError(CvptError, ValueError):
    """A run folder that does not hold what the command needs (no checkpoint, another model's)."""


class RunExistsError(CvptError, FileExistsError):
    """``cvpt train --out`` names a folder that holds a run already (and no ``--resume``)."""


class MissingFileError(CvptError, FileNotFoundError):
    """A file or folder that the command needs does not exist."""


class CheckpointError(CvptError, ValueError):
    """A checkpoint or saved model could not be read or does not fit the backbone; names the
    file."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")


class FormatVersionError(CvptError):
    """A file saved by a newer cvpt, in a version of its format this cvpt cannot read: names
    the file, its format and version, and the cvpt that wrote it."""

    def __init__(self, path, reason: str):
        super().__init__(f"{path}: {reason}")


class MissingDependencyError(CvptError, ImportError):
    """An optional package is needed for this feature; the message gives the pip command."""

    def __init__(self, package: str, extra: str, feature: str):
        self.package, self.extra = package, extra
        super().__init__(
            f"{feature} needs the optional package {package!r}: pip install 'cvpt[{extra}]'"
        )


def require(module: str, *, extra: str, feature: str, package: str | None = None):
    """Import and return an optional module, or raise :class:`MissingDependencyError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(package or module, extra, feature) from e


class VideoError(CvptError):
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
