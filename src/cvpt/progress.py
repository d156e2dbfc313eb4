"""Progress output that suits both a terminal and a cluster job's log file.

On a terminal :func:`tqdm` is tqdm's bar. When stderr is not a terminal (a batch job, a pipe,
CI) a bar's carriage returns fill the log with noise, so the same calls print one plain line
every ``CVPT_PROGRESS_SECONDS`` seconds (default 30) and one at the end instead.
"""

from __future__ import annotations

import os
import sys
import time


def interactive() -> bool:
    """Whether progress goes to a terminal."""
    return sys.stderr.isatty()


def tqdm(iterable=None, *, total=None, desc: str = "", disable: bool = False, **kwargs):
    """A tqdm bar on a terminal, :class:`LineProgress` otherwise (same methods)."""
    if interactive():
        from tqdm import tqdm as _tqdm  # here: a batch job's log never needs it

        return _tqdm(iterable, total=total, desc=desc, disable=disable, **kwargs)
    return LineProgress(
        iterable,
        total=total,
        desc=desc,
        disable=disable,
        unit=kwargs.get("unit"),
        initial=kwargs.get("initial", 0),
    )


class LineProgress:
    """The subset of tqdm that cvpt uses, printing ``desc: n/total (p%) elapsed, rate`` lines
    at most every ``interval`` seconds, and once when closed."""

    def __init__(
        self,
        iterable=None,
        *,
        total: int | None = None,
        desc: str = "",
        disable: bool = False,
        unit: str | None = None,
        initial: int = 0,
        interval: float | None = None,
        file=None,
    ):
        self.iterable, self.desc, self.disable = iterable, desc, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.unit, self.n, self.initial = total, unit or "it", initial, initial
        self.interval = (
            float(os.environ.get("CVPT_PROGRESS_SECONDS", 30)) if interval is None else interval
        )
        self.file = file or sys.stderr
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._print()

    def set_postfix(self, **kwargs) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kwargs.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def write(self, text: str) -> None:
        """A message of its own line (tqdm.write's role on a terminal)."""
        print(text, file=self.file, flush=True)

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._print()

    def _print(self) -> None:
        if self.disable:
            return
        elapsed = time.monotonic() - self.start
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        new = self.n - self.initial  # what a resumed job finds done is not part of its rate
        if self.initial and not new and self.total and self.n >= self.total:
            rate = ", all there already"
        elif not new:  # nothing done in this run (yet): no rate to give
            rate = ""
        else:
            rate = f", {new / elapsed:.2f} {self.unit}/s" if elapsed > 0 else ""
        post = f", {self.postfix}" if self.postfix else ""
        print(
            f"{self.desc}: {done} {self.unit}{pct} in {elapsed:.0f} s{rate}{post}",
            file=self.file,
            flush=True,
        )
