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
    common.add_ab_arguments(parser)
    args = parser.parse_args(argv)
    common.print_header(common.machine())
    common.warn_if_loaded()
    for path, network, train, batch in common.ab_cases(args):
        step = CnnkitStep(network, batch)
        times = common.interleaved(contenders(step, train), args.steps, args.warmup)
        ms = {who: common.median_ms(t) for who, t in times.items()}
        print(common.ab_line(path, train, batch, ms, {"layers": "layers in turn"}))


if __name__ == "__main__":
    main()
