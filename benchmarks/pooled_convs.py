"""Convs that pool their own tiles against the same model running its layers in turn.

    PYTHONPATH=. python3 -m benchmarks.pooled_convs m1 m2 m3

A conv that only a tiling max pool reads (``cnnkit.calculator.memory.pooled_convolutions``)
runs the pool itself, forward and backward.  This times one model both ways in one process,
the calls interleaved as in the other benchmarks: inference at ``--infer-batch`` and
training steps (forward, loss, backward, momentum update) at the spec's training batch.
"""

from __future__ import annotations

import argparse

from cnnkit.engine import softmax_cross_entropy

from . import common
from .contenders import CnnkitStep
from .train_step import DEFAULT_BATCH


def contenders(step: CnnkitStep, train: bool) -> dict:
    """The step (or inference) with the model's pooled convs, and with every layer run."""
    model = step.model

    def run(pooled: bool):
        def call():
            logits = model._forward(step.x, train, pooled=pooled)
            if train:
                _, d_logits = softmax_cross_entropy(logits, step.y)
                model.backward(d_logits, input_grad=False)
                step.optimizer.step()
        return call

    return {"pooled": run(True), "layers": run(False)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="spec files or names in benchmarks/specs/")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed calls per contender")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    common.print_header(common.machine())
    common.warn_if_loaded()
    for name in args.specs:
        path, network = common.load(name)
        for train, batch in ((False, args.infer_batch),
                             (True, DEFAULT_BATCH.get(path.stem, 128))):
            step = CnnkitStep(network, batch)
            times = common.interleaved(contenders(step, train), args.steps, args.warmup)
            ms = {who: common.median_ms(t) for who, t in times.items()}
            print(f"{path.stem} {'training step' if train else 'inference'}, batch {batch} "
                  f"(load {common.load_average()}): pooled {ms['pooled']:.1f} ms, layers in "
                  f"turn {ms['layers']:.1f} ms, ratio {ms['pooled'] / ms['layers']:.3f}x")


if __name__ == "__main__":
    main()
