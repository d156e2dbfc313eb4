"""Stop at the next step boundary on SIGTERM / SIGINT (how SLURM, Kubernetes and spot
instances end a job, and Ctrl-C): the run writes a checkpoint there and exits cleanly."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """``with StopRequest() as stop: ... if stop.signum: <checkpoint, exit>``.

    The handlers only record the signal; the training loop looks at it between optimiser
    steps. A second SIGINT while waiting raises ``KeyboardInterrupt`` at once (an impatient
    Ctrl-C). The previous handlers come back on exit, except SIGTERM after a SIGTERM stop,
    which stays ignored: the process is on its way out. Outside the main thread (where Python
    cannot install handlers) it does nothing.
    """

    def __init__(self, signals=SIGNALS):
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, _frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            if s == signal.SIGTERM and self.signum == signal.SIGTERM:
                # on its way out after a stop: another SIGTERM (torchrun sends one to the ranks
                # still running when the first leaves; SLURM may repeat it) must not kill the
                # process while it exits with 143
                handler = signal.SIG_IGN
            signal.signal(s, handler)
        self._previous.clear()


@contextmanager
def signals_held(signals=SIGNALS):
    """Block the stop signals in this thread while DataLoader workers start.

    A worker process inherits the mask of the thread that starts it, so a SIGTERM sent to the
    whole process group (SLURM, torchrun) stays pending in a half-started worker until
    :func:`cvpt.data.dataset.worker_init` ignores it, instead of killing the worker and with
    it the epoch (and, under DDP, every rank). This process still records the signal: another
    of its threads takes it now, or this one when the block ends. Outside the main thread it
    does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
