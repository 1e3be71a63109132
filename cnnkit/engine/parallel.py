"""Work split over the batch: in threads on the CPU (NumPy), in one piece on a GPU (CuPy).

NumPy uses one core per call.  Its BLAS can use them all, but the rest of a training step
(im2col copies, col2im sums, pooling, ReLU) cannot, and a multi-threaded BLAS wastes time
joining its threads after every small product.  So on the CPU a layer cuts the batch into
contiguous chunks and runs them in threads, one per core, each calling a single-threaded
BLAS (NumPy and BLAS release the GIL).  Element-wise layers cut one chunk per thread.  A
convolution works through tiles of a few images, so that its im2col buffer stays in cache,
and groups the tiles into a few chunks per thread, which the threads take as they come free:
on a shared machine a thread that is held up leaves its work to the others.  On a GPU the
batch is one chunk (CuPy already runs every call on all of the device), in tiles of up to
``memory.GPU_TILE_BYTES``, which bounds the im2col workspace.

Results are deterministic: chunk and tile boundaries depend only on the batch size and the
number of threads (never on which thread runs what), and partial sums are added in chunk
order.  (They can differ in the last bits between machines with different numbers of cores.)

``CNNKIT_NUM_THREADS`` sets the number of threads (default: the cores this process may use);
1 turns them off and leaves BLAS as configured.  Threads also need threadpoolctl, to make
BLAS single-threaded while they run; without it the engine runs on the calling thread.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ctypes
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy

from ..calculator import memory

# convolutions: chunks of tiles per thread, shared out as threads come free (the memory
# estimate counts the chunks' partial weight gradients)
CHUNKS_PER_WORKER = memory.CHUNKS_PER_WORKER
MIN_SPLIT = 2**16  # element-wise jobs on fewer values run in one piece (threads cost ~50 us)
WORKERS = memory.cpu_workers()
# OpenBLAS's thread-count setter that works from any thread, as various builds export it
LOCAL_SETTERS = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_",
                 "scipy_openblas_set_num_threads_local", "openblas_set_num_threads_local64_")

_pool: ThreadPoolExecutor | None = None
_inside = threading.local()  # set in worker threads: a nested split runs inline
_lock = threading.Lock()
_blas = None  # threadpoolctl's view of the BLAS libraries, once looked up
_setters: list | None = None  # functions setting each BLAS library's thread count
_blas_users = 0  # runs in progress, which need BLAS on one thread
_blas_previous: list = []  # BLAS thread counts to restore when the last one ends


def _blas_controller():
    """threadpoolctl's controller, or False when threadpoolctl is missing."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController()
    return _blas


def workers(xp) -> int:
    """How many threads share the work: 1 on CuPy, on one core or without threadpoolctl."""
    if xp is not numpy or WORKERS == 1 or not _blas_controller():
        return 1
    return WORKERS


def split(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices of range(n), sizes differing by at most one (none empty)."""
    parts = max(1, min(parts, n))
    bounds = [n * k // parts for k in range(parts + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(parts)]


def tiled_chunks(n: int, per_image_bytes: int, budget: int, xp) -> list[list[slice]]:
    """range(n) as chunks of whole tiles.  A tile holds as many images as fit ``budget``
    bytes (``memory.tile_bytes``, which the memory estimate counts on), at least one and at
    most a thread's share of the batch (so every thread has work).  On the CPU there are up
    to ``CHUNKS_PER_WORKER`` chunks per thread, so that a thread the machine holds up leaves
    its share to the others; on CuPy, one chunk."""
    count = workers(xp)
    size = min(max(1, budget // max(per_image_bytes, 1)), -(-n // count))  # a tile per thread
    tiles = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    parts = 1 if count == 1 else CHUNKS_PER_WORKER * count
    return [tiles[group] for group in split(len(tiles), parts)]


def map_chunks(fn: Callable[[slice, int], object], n: int, xp, size: int | None = None) -> list:
    """``[fn(chunk, worker) for chunk in split(n, workers)]``, run in parallel (``run``).

    On CuPy, on one core, when called from inside a chunk, or for an element-wise job of
    fewer than ``MIN_SPLIT`` values (``size``), this is one call ``fn(slice(0, n), 0)``.
    """
    if size is not None and size < MIN_SPLIT:
        return [fn(slice(0, n), 0)]
    return run(fn, split(n, workers(xp)), xp)


def run(fn: Callable[[object, int], object], items: list, xp) -> list:
    """``[fn(item, worker) for item in items]``: the items are shared out among the threads
    as they come free, and the results come back in item order.

    ``worker`` (0, 1, ...) numbers the thread running the call; each runs one item at a time,
    so ``fn`` can keep scratch arrays per worker.  On CuPy, on one core, or when called from
    inside an item, the items run one after another on the calling thread.  When the work is
    split on the CPU, BLAS is single-threaded even for a lone item: a product's last bits
    can depend on how many threads BLAS used, and must not depend on what else is running.
    """
    count = min(workers(xp), len(items))
    if workers(xp) == 1 or getattr(_inside, "active", False):
        return [fn(item, 0) for item in items]
    if count == 1:
        with single_threaded_blas(xp):
            return [fn(item, 0) for item in items]
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for k in range(len(items)):
        todo.put(k)
    results: list = [None] * len(items)

    def take_items(worker: int) -> None:
        _inside.active = True
        try:
            while True:
                try:
                    k = todo.get_nowait()
                except queue.Empty:
                    return
                results[k] = fn(items[k], worker)
        finally:
            _inside.active = False

    pool = _thread_pool(count)
    with single_threaded_blas(xp):
        # each thread runs in a copy of the caller's context: NumPy's errstate lives there
        futures = [pool.submit(contextvars.copy_context().run, take_items, worker)
                   for worker in range(1, count)]
        try:
            take_items(0)
        finally:
            concurrent.futures.wait(futures)
    for future in futures:
        future.result()  # raises what the thread raised
    return results


@contextlib.contextmanager
def single_threaded_blas(xp):
    """BLAS on one thread, for the whole process (BLAS has no per-thread setting to speak
    of), while the engine splits work over threads; nothing on CuPy or on one core.

    Every ``run`` holds it, and the model holds it for a whole pass: a BLAS call between
    two runs (a Winograd weight transform, say) would otherwise wake OpenBLAS's own threads,
    which then spin for a while and take cores from the engine's threads (on two cores a
    training step of M3 took 1.3x as long).  Counted, so that overlapping holders (nested,
    or in several user threads) restore the original setting only when the last one ends.
    """
    global _blas_users, _blas_previous
    if workers(xp) == 1:
        yield
        return
    with _lock:
        if _blas_users == 0:
            _blas_previous = [setter(1) for setter in _blas_setters()]
        _blas_users += 1
    try:
        yield
    finally:
        with _lock:
            _blas_users -= 1
            if _blas_users == 0:
                for setter, value in zip(_blas_setters(), _blas_previous):
                    setter(value)


def limit_blas_threads(count: int) -> None:
    """BLAS on at most ``count`` threads from now on, in this process (for processes that
    share a machine's cores, as ranks do); nothing without threadpoolctl."""
    if _blas_controller():
        _blas_controller().limit(limits=count, user_api="blas")


def _blas_setters() -> list:
    """``set(n) -> previous`` for every BLAS library loaded.  For OpenBLAS the one named
    ``..._local``: the plain one is ignored when called from another thread than the main
    one once the main one has called it (OpenBLAS 0.3.31), and cnnkit's runs may start in
    any thread; the ``_local`` one, despite its name, sets the count for every thread."""
    global _setters
    if _setters is None:
        setters = []
        for library in _blas_controller().select(user_api="blas").lib_controllers:
            setters.append(_openblas_setter(library) or _threadpoolctl_setter(library))
        _setters = setters
    return _setters


def _openblas_setter(library):
    if getattr(library, "internal_api", "") != "openblas":
        return None
    try:
        handle = ctypes.CDLL(library.filepath)
    except OSError:
        return None
    for name in LOCAL_SETTERS:
        found = getattr(handle, name, None)
        if found is not None:
            found.restype, found.argtypes = ctypes.c_int, [ctypes.c_int]
            return found
    return None


def _threadpoolctl_setter(library):
    def setter(n: int) -> int:
        previous = library.get_num_threads()
        library.set_num_threads(n)
        return previous

    return setter


def _thread_pool(count: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < count - 1:
            _pool = ThreadPoolExecutor(count - 1, thread_name_prefix="cnnkit")
        return _pool
