"""What every benchmark shares: the machine's description, the GEMM peak, the two models.

Timing rules (the machine may be shared, so absolute times wander): both contenders run in
one process, their steps interleaved (cnnkit, torch, torch, cnnkit, ...), and each reports
the median of many steps after a warm-up.  Ratios are therefore comparable even when the
load changes during a run; the load average is printed with every result so a reader can
judge the absolute figures.  Each timed call starts after an untimed pause (``PAUSE``), so
that it finds the cores idle: PyTorch's OpenMP threads spin-wait after a step and, without
the pause, took a core from the cnnkit step that followed (M1: 68 instead of 61 ms).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy

import cnnkit
from cnnkit.graph.network import Network

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parent / "specs"
PAUSE = 0.05  # seconds between timed calls; OpenMP's spinning threads are asleep by then
DEFAULT_BATCH = {"m3": 64}  # training batch per spec name (others: 128)


def resolve_spec(name: str) -> Path:
    """A spec path: as given, or a name in benchmarks/specs/ or specs/ (".txt" optional)."""
    path = Path(name)
    if path.exists():
        return path
    for folder in (SPECS, ROOT / "specs"):
        for candidate in (folder / name, folder / f"{name}.txt"):
            if candidate.exists():
                return candidate
    raise SystemExit(f"no spec file {name!r} (looked in ., {SPECS}, {ROOT / 'specs'})")


def load(name: str) -> tuple[Path, Network]:
    path = resolve_spec(name)
    return path, cnnkit.load(path)


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def blas_name() -> str:
    """The BLAS NumPy was built against, as NumPy reports it."""
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # older NumPy: no dict mode
        return "unknown"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(torch=None) -> dict:
    """Date, CPU, cores, BLAS and versions: the header of every result."""
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "blas": blas_name(),
        "cnnkit": cnnkit.__version__,
        "load_average": load_average(),
    }
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    return info


def print_header(info: dict, command: str | None = None) -> None:
    print(f"# {info['date']}  {info['cpu']}, {info['cores']} cores, BLAS {info['blas']} "
          f"(kernels {blas_core()})")
    settings = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY",
                                           "CNNKIT_NUM_THREADS") if k in os.environ}
    if settings:
        print("# environment: " + " ".join(f"{k}={v}" for k, v in settings.items()))
    versions = f"python {info['python']}, numpy {info['numpy']}"
    if "torch" in info:
        versions += f", torch {info['torch']} ({info['torch_threads']} threads)"
    print(f"# {versions}; load average {info['load_average']}")
    print(f"# command: {command or ' '.join(['python -m', _module_name()] + sys.argv[1:])}")


def _module_name() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return spec.name if spec is not None else sys.argv[0]


def warn_if_loaded() -> None:
    """A note when other processes keep the cores busy: PyTorch's OpenMP threads spin while
    they wait for work (as OpenBLAS's do), which on a busy machine costs it several times
    its quiet speed; OMP_WAIT_POLICY=PASSIVE (set before Python starts) avoids that."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return
    if load > 0.75 * (os.cpu_count() or 1) and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print(f"# note: load average {load:.1f} on {os.cpu_count()} cores; PyTorch's spinning "
              f"OpenMP threads suffer most: rerun with OMP_WAIT_POLICY=PASSIVE for its fair figure")


@contextlib.contextmanager
def conv_algorithm(method: str):
    """Layers built inside compute every convolution they can by ``method`` ("im2col",
    "winograd"): ``CNNKIT_CONV_ALGORITHM``, read when a layer is built, set meanwhile."""
    previous = os.environ.get("CNNKIT_CONV_ALGORITHM")
    os.environ["CNNKIT_CONV_ALGORITHM"] = method
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CNNKIT_CONV_ALGORITHM"]
        else:
            os.environ["CNNKIT_CONV_ALGORITHM"] = previous


@contextlib.contextmanager
def timed_layers(model, sync: Callable[[], None] = lambda: None):
    """Seconds of every call of each layer's ``forward`` (or ``pooled_forward``, a conv
    that runs the pool after it: ``cnnkit.calculator.memory.pooled_convolutions``) and
    ``backward`` while ``model`` runs its own passes: ``{node index: {"forward": [...],
    "backward": [...]}}``; a layer that a pooled conv runs for has none."""
    times = {i: {"forward": [], "backward": []} for i in range(len(model.layers))}
    wrapped = []
    for index, layer in enumerate(model.layers):
        for method, key in (("forward", "forward"), ("pooled_forward", "forward"),
                            ("backward", "backward")):
            call = getattr(layer, method, None)
            if call is None:
                continue

            def timed(*args, call=call, seconds=times[index][key]):
                start = time.perf_counter()
                result = call(*args)
                sync()
                seconds.append(time.perf_counter() - start)
                return result

            setattr(layer, method, timed)  # an instance attribute over the class's method
            wrapped.append((layer, method))
    try:
        yield times
    finally:
        for layer, method in wrapped:
            delattr(layer, method)


def add_ab_arguments(parser) -> None:
    """The arguments of the benchmarks that time two ways of running cnnkit against each
    other, in inference and training steps (``ab_cases``)."""
    parser.add_argument("specs", nargs="+", help="spec files or names in benchmarks/specs/")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed calls per contender")
    parser.add_argument("--warmup", type=int, default=3)


def ab_cases(args):
    """(spec path, network, training or not, batch) for each spec of ``args``: inference at
    ``--infer-batch``, then training steps at the spec's training batch."""
    for name in args.specs:
        path, network = load(name)
        for train, batch in ((False, args.infer_batch),
                             (True, DEFAULT_BATCH.get(path.stem, 128))):
            yield path, network, train, batch


def ab_line(path: Path, train: bool, batch: int, ms: dict[str, float],
            names: dict[str, str] | None = None) -> str:
    """One line of an A/B result: both contenders' median ms (``ms``, the first over the
    second; ``names`` to print for their keys) and the ratio."""
    (a, b), names = ms, names or {}
    return (f"{path.stem} {'training step' if train else 'inference'}, batch {batch} (load "
            f"{load_average()}): {names.get(a, a)} {ms[a]:.1f} ms, {names.get(b, b)} "
            f"{ms[b]:.1f} ms, ratio {ms[a] / ms[b]:.3f}x")


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def interleaved(contenders: dict[str, Callable[[], object]], steps: int, warmup: int,
                sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per call of every contender: ``warmup`` untimed rounds, then ``steps`` timed
    rounds in which the contenders take turns, the order reversed every other round, each
    call after a ``PAUSE``."""
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    sync()
    times: dict[str, list[float]] = {name: [] for name in names}
    for step in range(steps):
        for name in names if step % 2 == 0 else reversed(names):
            time.sleep(PAUSE)
            start = time.perf_counter()
            contenders[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def gemm_peak(size: int = 2048, repeats: int = 7, xp=numpy, sync=lambda: None) -> float:
    """Best float32 GFLOP/s of a square ``size`` matmul through ``xp``.

    On NumPy the better of two ways to use every core: one product on BLAS's own threads,
    and (with threadpoolctl) one single-threaded product per core in Python threads, which
    is how cnnkit's engine runs and suffers less on a loaded machine."""
    a = xp.asarray(numpy.random.default_rng(0).standard_normal((size, size)), dtype="float32")
    b = xp.asarray(numpy.random.default_rng(1).standard_normal((size, size)), dtype="float32")
    out = xp.empty((size, size), dtype="float32")

    def best_seconds(fn) -> float:
        fn()
        sync()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - start)
        return best

    rate = 2 * size**3 / best_seconds(lambda: xp.matmul(a, b, out=out)) / 1e9
    cores = os.cpu_count() or 1
    if xp is not numpy or cores == 1:
        return rate
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return rate
    from concurrent.futures import ThreadPoolExecutor

    outs = [numpy.empty_like(out) for _ in range(cores)]
    with ThreadPoolExecutor(cores) as pool, threadpool_limits(1, "blas"):
        def each_core():
            list(pool.map(lambda o: numpy.matmul(a, b, out=o), outs))

        return max(rate, 2 * cores * size**3 / best_seconds(each_core) / 1e9)


def blas_core() -> str:
    """The kernel family OpenBLAS chose (threadpoolctl's "architecture"), if known."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    found = [i.get("architecture", "?") for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(str(f) for f in found) or "unknown"


def training_network(network: Network) -> int:
    """The index of the node whose output the loss reads: the logits before a trailing
    SOFTMAX (both frameworks train on logits with a fused softmax cross-entropy)."""
    nodes = network.nodes
    return nodes[-1].inputs[0] if nodes[-1].kind == "softmax" else len(nodes) - 1


def conv_macs(network: Network) -> list[tuple[int, str, int]]:
    """(node index, name, MACs per image) of every conv node."""
    summary = network.summary()
    return [(row.index, row.name, row.macs) for row in summary.rows if row.kind == "conv"]


def randomize(model, seed: int) -> None:
    """Gives biases, BN gamma/beta and running statistics non-trivial values (weights keep
    cnnkit's initialization), so a mix-up between them cannot go unnoticed."""
    rng = numpy.random.default_rng(seed)
    for layer in model.layers:
        p, s = layer.params, layer.state
        if "b" in p:
            p["b"][...] = rng.normal(0, 0.1, p["b"].shape)
        if "gamma" in p:
            p["gamma"][...] = rng.uniform(0.5, 1.5, p["gamma"].shape)
            p["beta"][...] = rng.normal(0, 0.1, p["beta"].shape)
            s["running_mean"][...] = rng.normal(0, 0.1, s["running_mean"].shape)
            s["running_var"][...] = rng.uniform(0.5, 1.5, s["running_var"].shape)
