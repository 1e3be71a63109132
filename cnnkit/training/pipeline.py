"""The input pipeline: the next batches prepared in a thread while the current step runs.

A batch is a pure function of its step number (which images, how they are augmented), so
preparing it early or late, in a thread or not, gives the same arrays: ``ahead=0`` makes
each batch in the training thread when it is asked for, ``ahead=N`` keeps at most N ready
ones queued plus the one the worker is making.  Only the training thread takes signals
(see interrupts.py); it stops the worker and waits for it whenever it leaves the ``with``
block, by a return, an error or an interrupt, so the worker never outlives the epoch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable

_POLL = 0.05  # seconds between the worker's looks at the stop flag while the queue is full


class _Failed:
    """What the worker hands over instead of a batch when making one raised."""

    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """``next_batch()`` returns ``make(step)`` for each step in turn, and adds the seconds it
    waited for it to ``waited``."""

    def __init__(self, make: Callable[[int], object], steps: Iterable[int], ahead: int = 1):
        self.make, self.steps, self.ahead = make, iter(steps), ahead
        self.waited = 0.0
        self._ready: queue.Queue = queue.Queue(maxsize=max(ahead, 1))
        self._stop = threading.Event()
        self._worker = None

    def next_batch(self):
        started = time.perf_counter()
        try:
            if self._worker is None:
                return self.make(next(self.steps))
            item = self._ready.get()
            if isinstance(item, _Failed):
                raise item.error
            return item
        finally:
            self.waited += time.perf_counter() - started

    def _work(self) -> None:
        try:
            for step in self.steps:
                if not self._hand_over(self.make(step)):
                    return
        except BaseException as error:  # handed to the training thread, which raises it
            self._hand_over(_Failed(error))

    def _hand_over(self, item) -> bool:
        """Queues ``item`` once there is room; False if told to stop first."""
        while not self._stop.is_set():
            try:
                self._ready.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """Stops the worker and waits for it: at most the rest of the batch it is making."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()

    def __enter__(self) -> Prefetcher:
        """Starts the worker (with ``ahead`` > 0): only a ``with`` block, which stops it at
        its end, can."""
        if self.ahead > 0:
            self._worker = threading.Thread(target=self._work, name="cnnkit-batches", daemon=True)
            self._worker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
