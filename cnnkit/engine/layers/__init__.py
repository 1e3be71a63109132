"""One layer class per graph node kind, and ``make_layer`` to pick it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy

from ...graph.network import Node, Shape
from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh, softmax
from .base import Layer
from .conv import Conv
from .dense import FC, Flatten
from .dropout import Dropout
from .normalization import LRN, BatchNorm
from .pool import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool, pool
from .routing import Add, Concat, Identity

LAYERS = {
    "input": Identity, "id": Identity, "conv": Conv, "pool": pool, "gap": GlobalAvgPool,
    "gmp": GlobalMaxPool, "fc": FC, "flatten": Flatten, "relu": ReLU, "lrelu": LeakyReLU,
    "tanh": Tanh, "sigmoid": Sigmoid, "softmax": Softmax, "dropout": Dropout, "bn": BatchNorm,
    "lrn": LRN, "add": Add, "concat": Concat,
}


def make_layer(node: Node, in_shapes: Sequence[Shape], xp=numpy, dtype="float32",
               seed: int = 0) -> Layer:
    """The layer that computes ``node``; ``in_shapes`` are the shapes of its inputs."""
    if node.kind not in LAYERS:
        raise ValueError(f"{node.name}: the engine has no layer of kind {node.kind!r}")
    return LAYERS[node.kind](node, in_shapes, xp, dtype, seed)


__all__ = [
    "LAYERS", "Add", "AvgPool", "BatchNorm", "Concat", "Conv", "Dropout", "FC", "Flatten",
    "GlobalAvgPool", "GlobalMaxPool", "Identity", "LRN", "Layer", "LeakyReLU", "MaxPool", "ReLU", "Sigmoid",
    "Softmax", "Tanh", "make_layer", "softmax",
]
