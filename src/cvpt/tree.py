"""Walking a folder tree of videos: the one walk every command uses.

``Path.rglob`` (and ``os.walk`` by default) does not descend into a linked folder, so a class
folder that is a symbolic link (``src/jump -> ../elsewhere/jump``, how datasets are often
assembled) vanished from ``cvpt prepare``, ``cvpt predict FOLDER`` and the folder datasets
without a word. :func:`walk_files` follows links to folders and to files, as a player or
``cp -rL`` would, and never loops: a link to a folder that is already on the way down (itself
or one above it) is not followed, and is named in :attr:`Walk.not_followed`, as is a link to
nothing and a folder that cannot be read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Walk:
    """What :func:`walk_files` found under ``root``.

    ``files``: the files selected, as paths under ``root`` (through the links, not resolved:
    ``root/jump/a.avi`` for a linked ``jump``), sorted by their parts relative to ``root``;
    ``not_followed``: ``(path, reason)`` of every link not followed and every folder that could
    not be read, sorted; ``broken``: of those, the links to nothing whose names ``select``
    takes (a listed video that cannot be read)."""

    root: Path
    files: list[Path] = field(default_factory=list)
    not_followed: list[tuple[Path, str]] = field(default_factory=list)
    broken: list[Path] = field(default_factory=list)


def walk_files(
    root: str | Path,
    select: Callable[[Path], bool] | None = None,
    *,
    exclude: str | Path | None = None,
) -> Walk:
    """Every file under ``root`` (recursively, through linked folders) whose path ``select``
    takes (default: all). A folder whose real path lies in ``exclude`` (an output folder inside
    the source tree, or linked from it) is not entered, nor is a link to a file in it kept."""
    root = Path(root)
    select = select or (lambda p: True)
    skip = Path(exclude).resolve() if exclude is not None else None
    out = Walk(root)
    try:
        top = os.stat(root)
    except OSError as e:
        out.not_followed.append((root, _why(e)))
        return out
    # (folder, (device, inode) of the folders on the way down to it, itself included)
    stack: list[tuple[Path, frozenset]] = [(root, frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        folder, above = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            out.not_followed.append((folder, f"cannot be read ({_why(e)})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                link = entry.is_symlink()
                st = entry.stat(follow_symlinks=True)
            except OSError as e:  # a link to nothing, or to itself
                if link:
                    target = _target(path)
                    out.not_followed.append((path, f"a link to {target}, which {_why(e)}"))
                    if select(path):
                        out.broken.append(path)
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in above:
                    out.not_followed.append(
                        (
                            path,
                            f"a link to {_target(path)}, a folder above it (following it would "
                            "loop); its files are listed once, under that folder",
                        )
                    )
                    continue
                if skip is not None and path.resolve().is_relative_to(skip):
                    continue
                stack.append((path, above | {key}))
            elif stat.S_ISREG(st.st_mode) and select(path):
                if skip is not None and link and path.resolve().is_relative_to(skip):
                    continue
                out.files.append(path)
    out.files.sort(key=lambda p: p.relative_to(root).parts)
    out.not_followed.sort(key=lambda x: x[0].relative_to(root).parts)
    out.broken.sort(key=lambda p: p.relative_to(root).parts)
    return out


def _target(link: Path) -> str:
    try:
        return os.readlink(link)
    except OSError:
        return "?"


def _why(e: OSError) -> str:
    import errno

    if e.errno == errno.ENOENT:
        return "does not exist"
    if e.errno == errno.ELOOP:
        return "leads back to itself (a loop of links)"
    return e.strerror or str(e)
