"""Weight initialization: He for layers that feed a ReLU, Glorot otherwise.

Weights are drawn with NumPy in float64 from one seeded generator, in node order (a layer's
values in memory order), and only then cast and moved to the model's device, so a seed gives
the same weights everywhere.
"""

from __future__ import annotations

import numpy

from ..graph.network import Network
from .backend import get_array_module

RELU_FAMILY = ("relu", "lrelu")


def he_normal(rng: numpy.random.Generator, shape, fan_in: int) -> numpy.ndarray:
    """N(0, 2/fan_in): keeps activation variance steady through ReLUs (He et al. 2015)."""
    return rng.normal(0.0, numpy.sqrt(2.0 / fan_in), size=shape)


def glorot_uniform(rng: numpy.random.Generator, shape, fan_in: int, fan_out: int):
    """U(-l, l), l = sqrt(6/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    limit = numpy.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def feeds_relu(network: Network, index: int) -> bool:
    """Whether node ``index`` goes into a ReLU-family node, directly or through BN."""
    for node in network.nodes[index + 1:]:
        if index in node.inputs:
            if node.kind in RELU_FAMILY or (node.kind == "bn" and feeds_relu(network, node.index)):
                return True
    return False


BLOCK = 2**20  # values drawn at once by ``fill_initial_weights``


def fill_initial_weights(network: Network, layers, seed: int, std: float | None = None) -> None:
    """Writes the initial weights into every ``layer.params["W"]``, drawn in float64 and cast
    in blocks, so the float64 draw of a large layer never exists whole (VGG-16's first FC
    layer alone would take 822 MB).  ``std`` replaces He/Glorot by N(0, std^2) for every
    layer, as the textbook's SimpleConvNet does with weight_init_std=0.01."""
    rng = numpy.random.default_rng(seed)
    for node, layer in zip(network.nodes, layers):
        if "W" in layer.params:
            w, (fan_in, fan_out) = layer.params["W"], layer.fans
            relu = feeds_relu(network, node.index)
            flat = w.reshape(-1)
            for start in range(0, flat.size, BLOCK):
                size = min(BLOCK, flat.size - start)
                if std is not None:
                    block = rng.normal(0.0, std, size=size)
                elif relu:
                    block = he_normal(rng, size, fan_in)
                else:
                    block = glorot_uniform(rng, size, fan_in, fan_out)
                flat[start:start + size] = get_array_module(w).asarray(block, dtype=w.dtype)
