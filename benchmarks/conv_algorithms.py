"""Time one stride-1 convolution layer by im2col and by Winograd (F(4x4, 3x3), F(4x4, 5x5)).

    PYTHONPATH=. python3 -m benchmarks.conv_algorithms
    PYTHONPATH=. python3 -m benchmarks.conv_algorithms 56x56x128:128:8 14x14x32:64:128:5

Each case is HxWxC:K:batch, or HxWxC:K:batch:5 for a 5x5 kernel (3x3 otherwise).  Forward
and backward (weight, bias and input gradient) of the same layer with the same weights and
data, the two algorithms interleaved in one process (``common.interleaved``), median ms;
and the algorithm the calculator picks for the layer
(``cnnkit.calculator.convolution.algorithm``), whose band these figures are the reason for.
"""

from __future__ import annotations

import argparse

import numpy

import cnnkit
from cnnkit.calculator import convolution
from cnnkit.engine import parallel
from cnnkit.engine.layers import Conv

from . import common

CASES = ["32x32x16:32:64", "32x32x32:32:32", "32x32x64:64:16", "16x16x32:64:64",
         "56x56x64:64:8", "16x16x128:128:32", "56x56x128:128:8", "28x28x256:256:16",
         "8x8x256:256:64", "7x7x256:256:32", "14x14x512:512:16", "28x28x512:512:4",
         "14x14x16:32:128:5", "14x14x32:64:128:5", "28x28x32:32:32:5", "14x14x64:64:64:5",
         "28x28x64:64:16:5", "14x14x128:128:32:5", "7x7x64:64:64:5", "8x8x256:256:32:5",
         "14x14x256:256:16:5", "14x14x512:512:8:5"]


def layer(case: str, method: str):
    """(conv layer computing by ``method``, its input batch, the output gradient)."""
    shape, k, batch, kernel = (case.split(":") + ["3"])[:4]
    network = cnnkit.parse(f"INPUT {shape} -> CONV{kernel}-{k}")
    with common.conv_algorithm(method):
        conv = Conv(network.nodes[1], [network.nodes[0].out], numpy, "float32")
    rng = numpy.random.default_rng(0)
    for array in conv.params.values():
        array[...] = rng.standard_normal(array.shape) * 0.05
    s = network.input_shape
    x = rng.standard_normal((int(batch), s.h, s.w, s.c)).astype("float32")
    dy = rng.standard_normal((int(batch),) + conv.window.out_hw + (int(k),)).astype("float32")
    return conv, x, dy


def run(case: str, steps: int) -> dict:
    layers = {method: layer(case, method) for method in ("im2col", "winograd")}
    conv, x, _ = layers["im2col"]
    chosen = convolution.algorithm(conv.node.attrs, x.shape[-1], conv.window.out_hw)
    with parallel.single_threaded_blas(numpy):  # as the Model runs its layers
        forward = common.interleaved({m: (lambda c=c, x=x: c.forward([x], True))
                                      for m, (c, x, _) in layers.items()}, steps, 2)
        backward = common.interleaved({m: (lambda c=c, dy=dy: c.backward(dy))
                                       for m, (c, _, dy) in layers.items()}, steps, 2)
    result = {"case": case, "chosen": chosen}
    for method in layers:
        result[method] = (common.median_ms(forward[method]), common.median_ms(backward[method]))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=CASES, help="HxWxC:K:batch[:5]")
    parser.add_argument("--steps", type=int, default=7, help="timed calls per algorithm")
    args = parser.parse_args(argv)
    common.print_header(common.machine())
    common.warn_if_loaded()
    print(f"{'layer':<20}{'im2col fwd/bwd ms':>19}{'winograd fwd/bwd ms':>21}"
          f"{'winograd/im2col':>17}  chosen")
    for case in args.cases:
        r = run(case, args.steps)
        (fi, bi), (fw, bw) = r["im2col"], r["winograd"]
        print(f"{case:<20}{fi:9.1f} /{bi:7.1f}{fw:11.1f} /{bw:7.1f}"
              f"{(fw + bw) / (fi + bi):16.2f}x  {r['chosen']}")
    print(f"# load average at the end {common.load_average()}")


if __name__ == "__main__":
    main()
