"""How much memory there is, and how much a training step really takes."""

from __future__ import annotations

import contextlib
import tracemalloc


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
