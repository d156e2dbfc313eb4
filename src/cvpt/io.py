"""Atomic file output: a reader never sees a half-written file under its final name."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_MARK = ".cvpt-tmp-"


def temp_path_for(dst: Path) -> Path:
    """A hidden sibling of ``dst`` unique to this host and process, keeping ``dst``'s suffix.

    Same folder, so the final ``os.replace`` is a rename; the suffix is kept because FFmpeg and
    matplotlib choose the format from it.
    """
    tag = f"{socket.gethostname()}-{os.getpid()}"
    return dst.with_name(f".{dst.stem}{TMP_MARK}{tag}{dst.suffix}")


def stale_temps_for(dst: Path) -> list[Path]:
    """Temp files a killed run left behind for ``dst`` (any host, any process)."""
    if not dst.parent.is_dir():
        return []
    return sorted(dst.parent.glob(f".{dst.stem}{TMP_MARK}*{dst.suffix}"))


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
