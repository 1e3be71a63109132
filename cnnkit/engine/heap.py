"""Host memory: keep freed blocks in the process heap instead of handing them to the OS.

A training step allocates the same large arrays every time (outputs, gradients, temporaries
of a few MiB each) and frees them a few milliseconds later.  glibc's malloc serves blocks of
more than 128 KiB (a threshold it raises as it goes, up to 32 MiB) with a fresh ``mmap`` and
returns them, and the free top of its heap, to the kernel at once; the next step then
page-faults every page back in and the kernel zeroes it.  On this project's 2-core machine
that was a tenth of an M1 training step (benchmarks/RESULTS.md).  Raising the mmap threshold
to glibc's maximum and keeping up to ``KEPT_BYTES`` of free heap turns those faults into
reuse.  PyTorch's CPU guide gets the same effect by preloading jemalloc or tcmalloc.

The setting is process-wide and only about speed and resident memory: results cannot change,
and a process that trained keeps up to about a step's peak of freed memory until it exits.
It is made once, by the first NumPy ``Model``; other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's largest mmap threshold on 64-bit machines
KEPT_BYTES = 512 * 2**20  # free memory at the top of the heap that is not given back

_tuned: bool | None = None  # not tried yet


def keep_freed_blocks() -> bool:
    """Tunes glibc's malloc as the module docstring says, once; True if it did (now or
    before), False where the C library is not glibc."""
    global _tuned
    if _tuned is None:
        _tuned = _mallopt({M_MMAP_THRESHOLD: MMAP_THRESHOLD_MAX, M_TRIM_THRESHOLD: KEPT_BYTES})
    return _tuned


def _mallopt(settings: dict[int, int]) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  (glibc only: musl has mallopt as a no-op)
    except (OSError, AttributeError):
        return False
    mallopt.restype, mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    return all(mallopt(key, value) == 1 for key, value in settings.items())
