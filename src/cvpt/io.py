"""Atomic file output: a reader never sees a half-written file under its final name.

Temp files are hidden siblings named after the host and process that write them
(:func:`temp_path_for`), so that another process can tell a live writer's temp from one a
killed run left behind (:func:`stale_temps_for`); :func:`output_lock` lets processes that may
write the same output (two ``cvpt prepare`` runs into one folder) take turns.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
from collections.abc import Iterator
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


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def disk_trouble(folder: str | Path, error: BaseException | None = None) -> tuple[str, bool]:
    """Why files cannot be written in ``folder``: ``(reason, lasting)``, or ``("", False)``
    when nothing is wrong with it that can be seen. ``lasting``: every other file written there
    would fail the same way now (read-only, not writable, or full even for a small file).

    Read from ``error``'s errno (``ENOSPC``, ``EDQUOT``, ``EROFS``, ``EACCES``), and, since an
    encoder may report a full disk as something else (``EINVAL`` from a muxer whose writes
    failed), from the folder itself: its file system's read-only flag, its free space, and a
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
    space = f" ({_size(free)} free)" if free is not None else ""
    if probe in _FULL:
        quota = probe != errno.ENOSPC
        what = "the disk quota is used up" if quota else "no space left on its device"
        return f"cannot write in {folder}: {what}{space}", True
    if codes & _FULL:  # this file did not fit; a small one still does
        now = f" ({_size(free)} free now)" if free is not None else ""
        if codes & {errno.ENOSPC}:
            return f"no space left on the device of {folder} while writing this file{now}", False
        return f"the disk quota ran out while writing this file in {folder}{now}", False
    return "", False


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
