"""A process pool that outlives a killed worker, and workers that do not outlive their parent.

``concurrent.futures.ProcessPoolExecutor`` ends a whole run with ``BrokenProcessPool`` when one
worker dies (the out-of-memory killer picks the process that grew most: one video's worker),
and cannot say which task killed it. Here each worker holds one task at a time, so the parent
knows which one a dead worker had: that task comes back as :class:`WorkerDied`, a new worker
takes its place and the other tasks go on.

Workers are started with ``spawn`` (FFmpeg's and OpenCV's threads do not survive a fork
safely) and exit when their parent dies, even by ``SIGKILL``: on Linux the kernel sends them
``SIGTERM`` (``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread sees the parent change; ``SIGTERM``
raises ``SystemExit`` in a worker, so that the task's ``finally`` blocks run (a temp file is
removed) before it exits. :func:`stop_on_sigterm` is that handler, and the command's own (a job
scheduler's ``SIGTERM`` ends ``cvpt prepare`` as Ctrl-C does).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_ready
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass
class WorkerDied:
    """A task whose worker process died before it answered (``exitcode``: negative for a
    signal, as :attr:`multiprocessing.Process.exitcode`)."""

    pid: int
    exitcode: int | None

    @property
    def reason(self) -> str:
        """What happened, in words, for ``cvpt prepare``'s report."""
        return self.describe("preparing it")

    def describe(self, doing: str) -> str:
        """What happened to the worker ``doing`` the task (e.g. "making it"), in words."""
        code = self.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            why = f"was killed by {name} (signal {-code})"
            if -code == signal.SIGKILL:
                why += " (on Linux usually the out-of-memory killer: `dmesg` names it)"
        else:
            why = f"exited with status {code} without an answer"
        return f"the worker process {doing} (pid {self.pid}) {why}"


_STOPPING = threading.Event()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is (:func:`stop_on_sigterm`), so that a run ends as
    Ctrl-C ends it."""


def stop_on_sigterm(error: Callable[[], BaseException] = lambda: Terminated("SIGTERM")):
    """Handle ``SIGTERM`` in this process: remember it (:func:`stop_requested`), restore the
    default action (a second one ends the process at once) and raise ``error()`` where the
    process is. Returns the handler it replaced.

    The raise can be swallowed: raised while FFmpeg runs inside PyAV, it comes back as an FFmpeg
    error (``EINVAL`` from ``avcodec_send_frame``) that the task reports as its failure; so a
    loop over tasks checks :func:`stop_requested` after each one."""
    _STOPPING.clear()

    def _handler(signum, frame):
        _STOPPING.set()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise error()

    return signal.signal(signal.SIGTERM, _handler)


def stop_requested() -> bool:
    """Whether this process was sent ``SIGTERM`` since :func:`stop_on_sigterm`."""
    return _STOPPING.is_set()


def exit_with_parent(parent: int) -> None:
    """Make this process leave when process ``parent`` dies: ``SIGTERM`` raises
    ``SystemExit(143)`` (``finally`` blocks run), the kernel sends it on the parent's death
    (Linux), and a watchdog thread sends it when this process is handed to another parent
    (every platform, within a second)."""
    stop_on_sigterm(lambda: SystemExit(143))
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # died before the line above
        raise SystemExit(143)

    def _watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=_watch, name="cvpt-parent-watch", daemon=True).start()


def _worker(conn, fn: Callable, parent: int) -> None:
    exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent closed its end
            return
        if task is None:
            return
        key, args = task
        result = fn(*args)
        if stop_requested():  # told to stop while fn ran: its answer is not one
            raise SystemExit(143)
        try:
            conn.send((key, result))
        except OSError:  # the parent is gone (a broken pipe): nobody to answer, nothing to say
            return


class _Proc:
    def __init__(self, ctx, fn: Callable):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, fn, os.getpid()), daemon=True)
        self.proc.start()
        child.close()
        self.task: tuple | None = None  # (key, args) it holds


class WorkerPool:
    """``workers`` processes running ``fn(*args)``, one task each at a time.

    ``run(queue)`` takes ``(key, args)`` tasks from the left of ``queue`` (a ``deque`` the caller
    may append to, or clear, while it runs) and yields ``(key, result)`` as each finishes, in
    the order they finish; ``result`` is a :class:`WorkerDied` when the worker died on it (a new
    worker takes its place). ``fn`` must be importable (``spawn``) and should not raise: an
    exception in it ends the worker, and the task comes back as :class:`WorkerDied`. Leaving
    the ``with`` block stops the workers (``SIGTERM``, then ``SIGKILL`` after ``grace``
    seconds)."""

    def __init__(self, fn: Callable, workers: int, *, grace: float = 10.0):
        self.fn, self.workers, self.grace = fn, max(1, workers), grace
        self._ctx = mp.get_context("spawn")
        self._procs: list[_Proc] = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        """The worker processes alive now."""
        return [p.proc.pid for p in self._procs if p.proc.is_alive()]

    def run(self, queue: deque) -> Iterator[tuple[Any, Any]]:
        while True:
            while queue:
                p = self._idle_worker()
                if p is None:
                    break
                p.task = queue.popleft()
                try:
                    p.conn.send(p.task)
                except OSError:  # it died idle: the task goes to another one
                    queue.appendleft(p.task)
                    self._drop(p)
            busy = [p for p in self._procs if p.task is not None]
            if not busy:
                return
            ready = set(wait_ready([p.conn for p in busy] + [p.proc.sentinel for p in busy]))
            for p in busy:
                if p.conn in ready:
                    try:
                        key, result = p.conn.recv()
                    except (EOFError, OSError):  # died while answering
                        pass
                    else:
                        p.task = None
                        yield key, result
                        continue
                if p.proc.sentinel in ready or p.conn in ready:
                    key = p.task[0]
                    self._drop(p)
                    yield key, WorkerDied(p.proc.pid, p.proc.exitcode)

    def _idle_worker(self) -> _Proc | None:
        """A live worker without a task (started if there are fewer than ``workers``)."""
        for p in list(self._procs):
            if p.task is None:
                if p.proc.is_alive():
                    return p
                self._drop(p)  # killed while idle: it held nothing
        if len(self._procs) < self.workers:
            self._procs.append(_Proc(self._ctx, self.fn))
            return self._procs[-1]
        return None

    def _drop(self, p: _Proc) -> None:
        p.proc.join()
        p.conn.close()
        self._procs.remove(p)

    def close(self) -> None:
        """Stop every worker: a polite ``None``, then ``SIGTERM`` to a busy one, then
        ``SIGKILL`` after ``grace`` seconds."""
        for p in self._procs:
            with contextlib.suppress(OSError):
                if p.task is None:
                    p.conn.send(None)
                else:
                    p.proc.terminate()
        deadline = time.monotonic() + self.grace
        for p in self._procs:
            p.proc.join(max(0.0, deadline - time.monotonic()))
            if p.proc.is_alive():
                p.proc.kill()
                p.proc.join()
            p.conn.close()
        self._procs = []
