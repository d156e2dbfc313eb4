"""The file system: outputs written atomically (a reader never sees a half-written file under
its final name), and trees of files walked through linked folders.

Temp files are hidden siblings named after the host and process that write them
(:func:`temp_path_for`), so that another process can tell a live writer's temp from one a
killed run left behind (:func:`stale_temps_for`); :func:`output_lock` lets processes that may
write the same output (two ``cvpt prepare`` runs into one folder) take turns;
:func:`disk_trouble` says why a folder takes no file (full, read-only, a size limit).

``Path.rglob`` (and ``os.walk`` by default) does not descend into a linked folder, so a class
folder that is a symbolic link (``src/jump -> ../elsewhere/jump``, how datasets are often
assembled) vanished from ``cvpt prepare``, ``cvpt predict FOLDER`` and the folder datasets
without a word. :func:`walk_files`, the one walk every command uses, follows links to folders
and to files, as a player or ``cp -rL`` would, and never loops: a link to a folder that is
already on the way down (itself or one above it) is not followed, and is named in
:attr:`Walk.not_followed`, as is a link to nothing and a folder that cannot be read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TMP_MARK = ".cvpt-tmp-"


LOCK_MARK = ".cvpt-lock"


def temp_path_for(dst: Path, pid: int | None = None) -> Path:
    """A hidden sibling of ``dst`` unique to this host and process (or process ``pid`` of this
    host), keeping ``dst``'s suffix.

    Same folder, so the final ``os.replace`` is a rename; the suffix is kept because FFmpeg and
    matplotlib choose the format from it.
    """
    tag = f"{socket.gethostname()}-{os.getpid() if pid is None else pid}"
    return dst.with_name(f".{dst.stem}{TMP_MARK}{tag}{dst.suffix}")


def temp_owner(tmp: Path) -> tuple[str, int] | None:
    """``(host, pid)`` of the process that writes temp file ``tmp`` (None: not one of ours)."""
    name = tmp.name
    if TMP_MARK not in name:
        return None
    tag = name.split(TMP_MARK, 1)[1].removesuffix(tmp.suffix)
    host, _, pid = tag.rpartition("-")
    return (host, int(pid)) if host and pid.isdigit() else None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def stale_temps_for(dst: Path) -> list[Path]:
    """Temp files for ``dst`` that no live process of this host writes: left by a killed run
    or worker, or by another host. A temp whose writer is alive on this host (another run
    writing the same output, or this process) is not stale: removing it broke that run.

    Another host's process cannot be asked: call this while holding :func:`output_lock` for
    ``dst``, which every ``cvpt prepare`` (any host, on a file system with working locks) takes
    before it writes ``dst``."""
    if not dst.parent.is_dir():
        return []
    here = socket.gethostname()
    out = []
    for tmp in sorted(dst.parent.glob(f".{dst.stem}{TMP_MARK}*{dst.suffix}")):
        owner = temp_owner(tmp)
        if owner is None:
            continue
        host, pid = owner
        if host == here and (pid == os.getpid() or process_alive(pid)):
            continue
        out.append(tmp)
    return out


def remove_leftovers(dst: Path, pid: int) -> None:
    """Remove what process ``pid`` of this host, killed while writing ``dst``, left: its temp
    file, and the lock file unless another process holds it now (removing a held lock file
    would let a third process lock a new one beside it)."""
    with contextlib.suppress(OSError):
        temp_path_for(dst, pid).unlink()
    with contextlib.suppress(OutputBusy, OSError), output_lock(dst, wait=False):
        pass  # released at once: the release removes the lock file


def lock_path_for(dst: Path) -> Path:
    """The hidden lock file :func:`output_lock` takes for ``dst``."""
    return dst.with_name(f".{dst.name}{LOCK_MARK}")


class OutputBusy(Exception):
    """:func:`output_lock` with ``wait=False``: another process holds the lock."""


@contextlib.contextmanager
def output_lock(dst: str | Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an advisory lock (``flock``) on ``dst``'s hidden lock file while the block runs:
    two processes that may write ``dst`` (two ``cvpt prepare`` runs into one folder) take
    turns instead of removing each other's temp files or writing it twice. The lock goes with
    the process (a killed holder frees it); the lock file is removed on release. With
    ``wait=False`` raises :class:`OutputBusy` at once when another process holds it. Where the
    file system cannot lock (``ENOLCK``, ``ENOTSUP``), the block runs unlocked."""
    import fcntl

    path = lock_path_for(Path(dst))
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise OutputBusy(str(dst)) from None
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.ENOTSUP, errno.EOPNOTSUPP):
                yield
                return
            raise
        try:  # the holder before us may have removed the file it locked: lock the one there
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # removed while locked: the next one makes its own
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def atomic_output(dst: str | Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it is renamed to ``dst``, on error removed."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dst)
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json(dst: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_output(dst) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


# errno values that say the output's disk, not the input, is the problem
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_READ_ONLY = {errno.EROFS}
_DENIED = {errno.EACCES, errno.EPERM}
PROBE_BYTES = 1 << 16


def _errnos(error: BaseException | None) -> set[int]:
    """The errno of ``error`` and of the exceptions it was raised from."""
    out, seen = set(), set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno:
            out.add(error.errno)
        error = error.__cause__ or error.__context__
    return out


def size_text(n: int) -> str:
    """Bytes in decimal units: ``'6.5 GB'``, ``'31.2 MB'``, ``'101.8 kB'``, ``'512 bytes'``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def disk_trouble(folder: str | Path, error: BaseException | None = None) -> tuple[str, bool]:
    """Why files cannot be written in ``folder``: ``(reason, lasting)``, or ``("", False)``
    when nothing is wrong with it that can be seen. ``lasting``: every other file written there
    would fail the same way now (read-only, not writable, or full even for a small file).

    Read from ``error``'s errno (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``, ``EFBIG``), and,
    since an encoder may report a full disk as something else (``EINVAL`` from a muxer whose
    writes failed), from the folder itself: its file system's read-only flag, its free space, and a
    small file written and removed (``PROBE_BYTES``). A file that did not fit is not lasting
    trouble when a small one still does: the space it took is free again."""
    folder = Path(folder)
    where = folder
    while not where.exists() and where != where.parent:  # the folder may be what failed
        where = where.parent
    codes = _errnos(error)
    try:
        vfs = os.statvfs(where)
        free, read_only = vfs.f_bavail * vfs.f_frsize, bool(vfs.f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        free, read_only = None, False
    if read_only or codes & _READ_ONLY:
        return f"cannot write in {folder}: its file system is read-only", True
    probe = _probe_write(where)
    if probe in _READ_ONLY:
        return f"cannot write in {folder}: its file system is read-only", True
    if probe in _DENIED or (codes & _DENIED and probe is not None):
        return f"cannot write in {folder}: permission denied", True
    if probe == errno.EFBIG or errno.EFBIG in codes:
        return _too_large(folder), probe == errno.EFBIG
    space = f" ({size_text(free)} free)" if free is not None else ""
    if probe in _FULL:
        quota = probe != errno.ENOSPC
        what = "the disk quota is used up" if quota else "no space left on its device"
        return f"cannot write in {folder}: {what}{space}", True
    if codes & _FULL:  # this file did not fit; a small one still does
        now = f" ({size_text(free)} free now)" if free is not None else ""
        if codes & {errno.ENOSPC}:
            return f"no space left on the device of {folder} while writing this file{now}", False
        return f"the disk quota ran out while writing this file in {folder}{now}", False
    return "", False


def _too_large(folder: Path) -> str:
    """Why a file in ``folder`` stopped growing with ``EFBIG``: this process's file size limit
    (``ulimit -f``, set on some cluster nodes) or the file system's largest file (FAT32)."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limited = limit != resource.RLIM_INFINITY
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        limit, limited = 0, False
    if limited:
        return (
            f"cannot write a file over {size_text(limit)} in {folder}: the file size limit of this "
            "process (`ulimit -f`)"
        )
    return f"cannot write a file this large in {folder}: its file system's largest file"


def _probe_write(folder: Path) -> int | None:
    """The errno of writing ``PROBE_BYTES`` to a new hidden file in ``folder`` (and syncing it,
    which is when a network file system reports a full disk or quota); None when it works."""
    path = folder / f".cvpt-write-probe-{socket.gethostname()}-{os.getpid()}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        return e.errno
    try:
        block = memoryview(b"\0" * PROBE_BYTES)
        while block:  # a nearly full disk takes part of a write without an error
            block = block[os.write(fd, block) :]
        os.fsync(fd)
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return None


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
    takes (default: all), except cvpt's own temp files (a prepared tree being written, or
    left by a killed run, holds ``.NAME.cvpt-tmp-HOST-PID.mp4``). A folder whose real path
    lies in ``exclude`` (an output folder inside the source tree, or linked from it) is not
    entered, nor is a link to a file in it kept."""
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
            if TMP_MARK in entry.name:  # a file being written (or left by a killed writer)
                continue
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
    if e.errno == errno.ENOENT:
        return "does not exist"
    if e.errno == errno.ELOOP:
        return "leads back to itself (a loop of links)"
    return e.strerror or str(e)
