"""This checkout's engine against another git revision's, both in one process.

    PYTHONPATH=. python3 -m benchmarks.revisions HEAD~1 m1 m2

The machine's speed moves by up to 2x between minutes, so two engines timed in two runs
cannot be compared; an engine change is measured here instead: the other revision's
``cnnkit`` package is imported next to this one (as ``cnnkit_<commit>``: cnnkit imports
itself only relatively), both build the same network with the same weights and data, and
their calls are interleaved as in the other benchmarks.  Times inference at
``--infer-batch`` and training steps (forward, loss, backward, momentum update) at the
spec's training batch, after checking that both give the same logits; ``--layers`` adds
each layer's forward and backward in the steps, both engines' (``common.timed_layers``).

Two models of the same code differ too: against HEAD itself (2026-12-08) M1's step came out
0.91-1.04x and single layers 0.90-1.10x, as their arrays lie at other addresses.  A change
smaller than that needs repeated runs, or a micro-benchmark on the same arrays.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy

from . import common
from .contenders import CnnkitStep

ROOT = Path(__file__).resolve().parent.parent


def load_revision(revision: str, folder: Path):
    """The commit ``revision`` names, and its cnnkit package, unpacked into ``folder`` (which
    must outlive it: modules may import more of it later) and imported."""
    def git(*args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout

    commit = git("rev-parse", "--short", revision).decode().strip()
    tarfile.open(fileobj=io.BytesIO(git("archive", commit, "cnnkit"))).extractall(
        folder, filter="data")
    name = f"cnnkit_{commit}"
    spec = importlib.util.spec_from_file_location(
        name, folder / "cnnkit" / "__init__.py",
        submodule_search_locations=[str(folder / "cnnkit")])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return commit, package


def pair(path: Path, network, other, batch: int) -> tuple[CnnkitStep, CnnkitStep]:
    """This engine's step and the other's, for one network, with this one's weights."""
    ours = CnnkitStep(network, batch)
    theirs = CnnkitStep(other.parse(path.read_text()), batch,
                        engine=importlib.import_module(f"{other.__name__}.engine"))
    for (name, mine, _), (_, their, _) in zip(ours.model.parameters(),
                                              theirs.model.parameters(), strict=True):
        if mine.shape != their.shape:
            raise SystemExit(f"{path.stem}: {name} is {their.shape} in the other revision, "
                             f"{mine.shape} here")
        their[...] = mine
    return ours, theirs


def print_layers(network, commit: str, ours: dict, theirs: dict) -> None:
    """Median ms of each layer's forward and backward in both engines' steps, and ratios."""
    print(f"  {'layer':<22}{'forward':>9}{commit:>9}{'ratio':>8}"
          f"{'backward':>10}{commit:>9}{'ratio':>8}")
    for index, node in enumerate(network.nodes):
        cells = []
        for key in ("forward", "backward"):
            if not ours[index][key] or not theirs[index][key]:
                cells.append(f"{'':>26}")
                continue
            this, that = (1000 * statistics.median(t[index][key]) for t in (ours, theirs))
            cells.append(f"{this:9.2f}{that:9.2f}{this / that:7.3f}x")
        if any(cell.strip() for cell in cells):
            print(f"  {index:>2} {node.name:<19}{cells[0]} {cells[1]}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", help="the git revision to compare with, e.g. HEAD~1")
    common.add_ab_arguments(parser)
    parser.add_argument("--layers", action="store_true",
                        help="time each layer of the training steps too")
    args = parser.parse_args(argv)
    common.print_header(common.machine())
    common.warn_if_loaded()
    with tempfile.TemporaryDirectory() as folder:
        commit, other = load_revision(args.revision, Path(folder))
        for path, network, train, batch in common.ab_cases(args):
            ours, theirs = pair(path, network, other, batch)
            expected = ours.infer()
            difference = numpy.abs(theirs.infer() - expected).max() / numpy.abs(
                expected).max()
            calls = {"this": ours, commit: theirs} if train else {
                "this": ours.infer, commit: theirs.infer}
            with contextlib.ExitStack() as stack:
                layers = [stack.enter_context(common.timed_layers(step.model))
                          for step in (ours, theirs) if train and args.layers]
                times = common.interleaved(calls, args.steps, args.warmup)
            ms = {who: common.median_ms(t) for who, t in times.items()}
            print(f"{common.ab_line(path, train, batch, ms)} (logits differ by "
                  f"{difference:.1e} relative)")
            if layers:
                print_layers(network, commit, *layers)


if __name__ == "__main__":
    main()
