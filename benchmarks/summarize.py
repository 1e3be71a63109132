"""Time ``cnnkit summarize`` against torchinfo on the same networks (VGG-16, ResNet-50).

    PYTHONPATH=. python3 -m benchmarks.summarize
    PYTHONPATH=. python3 -m benchmarks.summarize specs/vgg16.txt --repeats 20

In process, like for like: cnnkit's summary of a parsed network against torchinfo's of the
same network built in PyTorch by ``benchmarks/torch_model.py`` (with a batch-1 forward
pass, as torchinfo always does), and from the spec text: cnnkit's parse + summary against
the model's construction + torchinfo's summary.  The strictest mix, cnnkit's parse +
summary against torchinfo's summary alone, is printed too.  As commands: the wall time
of ``cnnkit summarize SPEC`` in a fresh interpreter (start-up and imports included; the
console script when it is on PATH or beside this Python, else ``python -m cnnkit``) and of a
fresh interpreter that imports torch and torchinfo, builds the model and summarizes it.
Each figure is the median of ``--repeats`` runs; wall times are also given as CPU time (user
+ system), which a loaded machine inflates less.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cnnkit

from . import common

DEFAULT = [common.ROOT / "specs" / "vgg16.txt", common.ROOT / "specs" / "resnet50.txt"]

TORCHINFO_SCRIPT = """
import sys
import cnnkit, torchinfo
from benchmarks import torch_model
network = cnnkit.load(sys.argv[1])
model = torch_model.build(network)
shape = network.input_shape
torchinfo.summary(model, input_size=(1, shape.c, shape.h, shape.w), verbose=0)
"""


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command_seconds(command: list[str], repeats: int, env: dict) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of running ``command``."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def cnnkit_command() -> list[str]:
    beside = Path(sys.executable).with_name("cnnkit")
    found = shutil.which("cnnkit")
    if beside.exists():
        return [str(beside)]
    if found:
        return [found]
    return [sys.executable, "-m", "cnnkit"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cnnkit", help="the cnnkit command to time (default: see above)")
    args = parser.parse_args(argv)

    import torch
    import torchinfo

    from . import torch_model

    torch.set_num_threads(2)
    common.print_header(common.machine(torch))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(common.ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    command = args.cnnkit.split() if args.cnnkit else cnnkit_command()
    print(f"# torchinfo {torchinfo.__version__}; cnnkit command: {' '.join(command)}")
    for path in args.specs:
        text, name = path.read_text(), str(path)
        ours = median_seconds(lambda t=text, n=name: cnnkit.parse(t, filename=n).summary(),
                              args.repeats)
        network = cnnkit.parse(text, filename=name)
        summary = median_seconds(lambda net=network: net.summary(), args.repeats)
        build = median_seconds(lambda net=network: torch_model.build(net), max(3, args.repeats // 2))
        model = torch_model.build(network)
        shape = network.input_shape
        size = (1, shape.c, shape.h, shape.w)
        theirs = median_seconds(
            lambda m=model, s=size: torchinfo.summary(m, input_size=s, verbose=0), args.repeats)
        ours_wall, ours_cpu = command_seconds(command + ["summarize", str(path)], args.repeats, env)
        theirs_wall, theirs_cpu = command_seconds(
            [sys.executable, "-c", TORCHINFO_SCRIPT, str(path)], max(3, args.repeats // 2), env)
        print(f"\n{path.stem}  ({len(network.nodes)} nodes; load {common.load_average()})")
        print(f"  in process: summary {1000 * summary:.2f} ms against torchinfo.summary "
              f"{1000 * theirs:.1f} ms: {theirs / summary:.0f}x faster; parse + summary "
              f"{1000 * ours:.2f} ms against model build + torchinfo.summary "
              f"{1000 * (build + theirs):.1f} ms: {(theirs + build) / ours:.0f}x "
              f"(against torchinfo.summary alone: {theirs / ours:.0f}x)")
        print(f"  command:    cnnkit summarize {ours_wall:6.2f} s wall ({ours_cpu:.2f} s CPU)   "
              f"python + torchinfo {theirs_wall:6.2f} s wall ({theirs_cpu:.2f} s CPU)   "
              f"{theirs_wall / ours_wall:.1f}x faster")


if __name__ == "__main__":
    main()
