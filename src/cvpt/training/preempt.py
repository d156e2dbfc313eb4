"""Stop at the next step boundary on SIGTERM / SIGINT (how SLURM, Kubernetes and spot
instances end a job, and Ctrl-C): the run writes a checkpoint there and exits cleanly."""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """``with StopRequest() as stop: ... if stop.signum: <checkpoint, exit>``.

    The handlers only record the signal; the training loop looks at it between optimiser
    steps. A second SIGINT while waiting raises ``KeyboardInterrupt`` at once (an impatient
    Ctrl-C). The previous handlers come back on exit. Outside the main thread (where Python
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
            signal.signal(s, handler)
        self._previous.clear()
