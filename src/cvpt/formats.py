"""Versions of the files cvpt saves: each carries ``format_version`` (and the ``cvpt_version``
that wrote it), and each format read back has one ``upgrade()`` beside its reader that holds
every rule for reading its older versions (docs/design.md, "Saved formats").

A file without ``format_version`` is version 0: what cvpt wrote before its formats were
versioned. A file of a version newer than this cvpt reads is refused
(:class:`~cvpt.errors.FormatVersionError`, naming the file, its version and the cvpt that wrote
it), never read as if it were an older one: a field whose meaning changed would be read wrong
without a word.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvpt.errors import FormatVersionError
from cvpt.version import __version__

VERSION_KEY = "format_version"
WRITER_KEY = "cvpt_version"  # the cvpt that wrote the file: the one a newer file needs
FORMAT_KEYS = (VERSION_KEY, WRITER_KEY)  # what stamp() adds to a file


@dataclass(frozen=True)
class Format:
    """One saved format: its ``name`` (e.g. ``cvpt-tuned-model``) and the ``version`` this cvpt
    writes (and reads, with every older one)."""

    name: str
    version: int

    def stamp(self, data: dict) -> dict:
        """``data`` with this format's version and this cvpt's version first (what a writer
        saves)."""
        return {VERSION_KEY: self.version, WRITER_KEY: __version__, **data}

    def version_of(self, data: dict, where) -> int:
        """The version of ``data`` (read from the file ``where``): 0 when it has none. Raises
        :class:`FormatVersionError` for a version newer than :attr:`version`, or one that is
        not a whole number."""
        found = data.get(VERSION_KEY, 0)
        if isinstance(found, str) and found.isdigit():  # a safetensors header's string
            found = int(found)
        if not isinstance(found, int) or isinstance(found, bool) or found < 0:
            raise FormatVersionError(where, f"{VERSION_KEY} {found!r} is not a version number")
        if found > self.version:
            who, fix = _written_by(data.get(WRITER_KEY))
            raise FormatVersionError(
                where,
                f"{self.name} version {found}, written by {who}; this cvpt ({__version__}) "
                f"reads versions up to {self.version}: {fix}",
            )
        return found

    def current(self, data: dict) -> dict:
        """``data`` (upgraded to the current shape) without the version keys: what readers
        read."""
        return {k: v for k, v in data.items() if k not in FORMAT_KEYS}

    def upgrade(self, data: dict, where) -> dict:
        """The ``upgrade()`` of a format with no older shape to read (every version read as
        it is): ``data`` checked (:meth:`version_of`) and without the version keys."""
        self.version_of(data, where)
        return self.current(data)

    def stamp_metadata(self, metadata: dict[str, str]) -> dict[str, str]:
        """:meth:`stamp` for a safetensors header, whose values are strings."""
        return {k: str(v) for k, v in self.stamp(metadata).items()}


def _written_by(writer) -> tuple[str, str]:
    """Who wrote a file of a newer format and what to install to read it: the release that
    wrote it, or, when it carries this cvpt's own version number (a development build of
    another branch or a later commit), that build."""
    if not writer:
        return f"a cvpt newer than {__version__}", "upgrade cvpt"
    if str(writer) == __version__:
        return (
            f"another build of cvpt {writer} (a later development version)",
            "install the build of cvpt that wrote it",
        )
    return f"cvpt {writer}", f"upgrade to cvpt {writer} or later"
