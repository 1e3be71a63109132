"""Weight initialization: He for layers that feed a ReLU, Glorot otherwise.

Weights are drawn with NumPy in float64 from one seeded generator, in node order, and only
then cast and moved to the model's device, so a seed gives the same weights everywhere.
"""

from __future__ import annotations

import numpy

from ..graph.network import Network

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


def initial_weights(network: Network, layers, seed: int) -> dict[int, numpy.ndarray]:
    """{node index: float64 W} for every layer with a weight matrix (``layer.fans``)."""
    rng = numpy.random.default_rng(seed)
    weights = {}
    for node, layer in zip(network.nodes, layers):
        if "W" in layer.params:
            shape, (fan_in, fan_out) = layer.params["W"].shape, layer.fans
            if feeds_relu(network, node.index):
                weights[node.index] = he_normal(rng, shape, fan_in)
            else:
                weights[node.index] = glorot_uniform(rng, shape, fan_in, fan_out)
    return weights
