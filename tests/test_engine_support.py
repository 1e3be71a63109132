"""Hand-built graphs for the engine tests: the engine reads only Node and Network, so these
tests do not depend on the spec language or the calculator."""

from __future__ import annotations

import numpy as np

from cnnkit.engine import Model, make_layer
from cnnkit.graph.network import Network, Node, Shape

DEFAULTS = {
    "conv": dict(kernel=(3, 3), stride=(1, 1), dilation=(1, 1), pad=(0, 0, 0, 0), groups=1,
                 bias=True),
    "pool": dict(mode="max", kernel=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0), dilation=(1, 1)),
    "fc": dict(bias=True),
    "lrelu": dict(alpha=0.1),
    "dropout": dict(p=0.5),
    "bn": dict(eps=1e-5, momentum=0.1),
    "lrn": dict(size=5, alpha=1e-4, beta=0.75, k=2.0),
}

# (input h, w, c; conv attrs): stride, asymmetric padding, dilation (also per axis), groups
# (also depthwise), no bias, 1x1, and the unread last row of floor rounding (6 rows, kernel 3,
# stride 2)
CONV_CASES = [
    ((5, 5, 3), dict(out_channels=4, pad=(1, 1, 1, 1))),
    ((6, 6, 2), dict(out_channels=3, stride=(2, 2), pad=(0, 1, 0, 1))),
    ((5, 6, 2), dict(out_channels=3, kernel=(2, 3), stride=(2, 1), pad=(1, 0, 2, 1))),
    ((7, 7, 2), dict(out_channels=2, dilation=(2, 2), pad=(2, 2, 2, 2))),
    ((6, 7, 2), dict(out_channels=2, kernel=(2, 3), dilation=(1, 2), pad=(0, 1, 2, 0))),
    ((5, 5, 4), dict(out_channels=6, groups=2, bias=False, pad=(1, 1, 1, 1))),
    ((5, 5, 3), dict(out_channels=6, groups=3, pad=(1, 1, 1, 1))),
    ((6, 6, 3), dict(out_channels=2, stride=(2, 2))),
    ((4, 4, 3), dict(out_channels=5, kernel=(1, 1))),
]

# (input h, w, c; pool attrs): tiling 2x2/2 (even and odd input), overlapping with padding,
# and ceil rounding's overhang (6 rows, kernel 3, stride 2: the bottom pad of 1 is overhang)
POOL_CASES = [
    ((4, 4, 3), dict(kernel=(2, 2), stride=(2, 2))),
    ((5, 5, 2), dict(kernel=(2, 2), stride=(2, 2))),
    ((5, 5, 2), dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1, 1, 1))),
    ((6, 6, 2), dict(kernel=(3, 3), stride=(2, 2), pad=(0, 1, 0, 1), overhang=(1, 1))),
    ((4, 5, 2), dict(kernel=(3, 2), stride=(1, 1), pad=(1, 1, 0, 1))),
]


def out_size(n: int, k: int, stride: int, dilation: int, before: int, after: int) -> int:
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


def out_shape(kind: str, shapes: list[Shape], attrs: dict) -> Shape:
    first = shapes[0]
    if kind in ("conv", "pool"):
        (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs["dilation"]
        top, bottom, left, right = attrs["pad"]
        c = attrs["out_channels"] if kind == "conv" else first.c
        return Shape(out_size(first.h, kh, sh, dh, top, bottom),
                     out_size(first.w, kw, sw, dw, left, right), c)
    if kind == "gap":
        return Shape(1, 1, first.c)  # a 1x1xC volume, as cnnkit.graph builds it
    if kind == "fc":
        return Shape(1, 1, attrs["units"], True)
    if kind == "flatten":
        return Shape(1, 1, first.size, True)
    if kind == "concat":
        return Shape(first.h, first.w, sum(s.c for s in shapes), first.flat)
    return first


class Net:
    """Appends nodes in topological order; each defaults to reading the previous one."""

    def __init__(self, shape: Shape):
        self.nodes = [Node(0, "INPUT", "input", (), shape)]

    def add(self, kind: str, *inputs: int, **attrs) -> int:
        inputs = inputs or (len(self.nodes) - 1,)
        attrs = {**DEFAULTS.get(kind, {}), **attrs}
        shape = out_shape(kind, [self.nodes[i].out for i in inputs], attrs)
        index = len(self.nodes)
        self.nodes.append(Node(index, f"{kind.upper()}{index}", kind, inputs, shape, attrs))
        return index

    def chain(self, *layers: tuple[str, dict], after: int | None = None) -> int:
        """Appends ``layers`` one after the other, the first reading ``after`` (default: the
        last node); returns the index of the last."""
        index = len(self.nodes) - 1 if after is None else after
        for kind, attrs in layers:
            index = self.add(kind, index, **attrs)
        return index

    def network(self) -> Network:
        return Network(list(self.nodes))


def single_layer(kind: str, in_shape: Shape, dtype="float64", **attrs):
    """(layer, node) for one node of ``kind`` reading an input of ``in_shape``."""
    net = Net(in_shape)
    node = net.nodes[net.add(kind, **attrs)]
    return make_layer(node, [in_shape], np, dtype), node


def vgg_like(batch_norm: bool = False) -> Network:
    """INPUT 32x32x3 -> [CONV3-32 -> RELU]*2 -> POOL2 -> [CONV3-64 -> RELU]*2 -> POOL2
    -> FC-256 -> RELU -> FC-10 -> SOFTMAX (optionally BN after each conv)."""
    net = Net(Shape(32, 32, 3))
    for channels in (32, 32, None, 64, 64, None):
        if channels is None:
            net.add("pool")
            continue
        net.add("conv", out_channels=channels, pad=(1, 1, 1, 1))
        if batch_norm:
            net.add("bn")
        net.add("relu")
    net.chain(("fc", dict(units=256)), ("relu", {}), ("fc", dict(units=10)), ("softmax", {}))
    return net.network()


def workspace_after_training_steps(network, batch: int) -> int:
    """Bytes the convolutions' shared workspace holds after two training steps and a
    validation as the trainer runs them (no input gradient; an evaluating forward), for the
    memory model's workspace term."""
    model = Model(network)
    shape = network.input_shape
    x = np.zeros((batch, shape.h, shape.w, shape.c), np.float32)
    for _ in range(2):
        y = model.forward(x, train=True)
        model.backward(np.ones_like(y), input_grad=False)
    model.forward(x, train=False)
    workspace = next(layer.workspace for layer in model.layers if hasattr(layer, "workspace"))
    return sum(array.nbytes for array in workspace._arrays.values())
