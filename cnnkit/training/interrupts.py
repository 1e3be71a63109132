"""Ctrl-C and `kill` while training: honoured between steps, never inside one.

A KeyboardInterrupt raised in the middle of a step could leave batch norm's running
statistics or half of the parameters updated while the progress record says the step is
not done; the resumed run would repeat it and differ from an uninterrupted one.  So during
the loop SIGINT and SIGTERM only raise a flag, which the loop checks at each step boundary,
where it saves a checkpoint and stops.  A second signal stops at once, without a checkpoint
(the previous one stays intact), for a step that takes too long to wait for.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredInterrupts:
    """A context in which the first SIGINT/SIGTERM sets ``requested`` instead of raising.

    Outside the main thread Python cannot install signal handlers, and there is nothing to
    defer: signals reach only the main thread, so the context then does nothing.
    """

    def __init__(self):
        self.requested: int | None = None  # the signal received, if any
        self.forced = False
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> DeferredInterrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
