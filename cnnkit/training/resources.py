"""How much memory there is, and how much a training step really takes."""

from __future__ import annotations

import contextlib
import tracemalloc
from dataclasses import dataclass


def available_bytes(xp) -> int | None:
    """Free memory on the device that will hold the arrays (None when unknown)."""
    if xp.__name__ == "cupy":
        free, _total = xp.cuda.runtime.memGetInfo()
        return int(free + xp.get_default_memory_pool().free_bytes())
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def peak_memory(xp):
    """Measures the peak bytes allocated inside the block: NumPy allocations through
    tracemalloc, CuPy through its memory pool.  Yields a dict filled in on exit."""
    result = {"peak_bytes": 0}
    if xp.__name__ == "cupy":
        pool = xp.get_default_memory_pool()
        yield result
        xp.cuda.Device().synchronize()
        result["peak_bytes"] = int(pool.total_bytes())
        return
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield result
    finally:
        result["peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
        if not was_tracing:
            tracemalloc.stop()


@dataclass(frozen=True)
class MemoryFit:
    """What a batch of a network needs on a device against what is free there."""

    needed_bytes: int
    free_bytes: int | None  # None: unknown, taken to fit
    largest_batch: int  # 0: not even one image (the parameters alone do not fit)

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes <= self.free_bytes


def memory_fit(network, batch: int, *, dtype: str, optimizer: str, xp,
               sharing: int = 1) -> MemoryFit:
    """The calculator's estimate of cnnkit's engine (a training step with ``optimizer``;
    evaluation holds less, so the estimate bounds it) against the free memory, of which
    this process has a ``sharing``-th (ranks on one machine each need as much)."""
    from ..calculator import largest_batch

    def need(size: int) -> int:
        return network.summary(batch=size, dtype=dtype, optimizer=optimizer) \
            .executor_memory.total_bytes

    needed, free = need(batch), available_bytes(xp)
    free = None if free is None else free // sharing
    fits = free is None or needed <= free
    return MemoryFit(needed, free, batch if fits else largest_batch(free, need))
