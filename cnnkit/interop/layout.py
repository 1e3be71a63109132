"""From cnnkit's channels-last layout to the channels-first one of ONNX and PyTorch.

Activations: cnnkit's H x W x C volume is (N, C, H, W) there; a flat vector stays (N, D).
The one place where the two layouts disagree on more than an axis order is flattening:
cnnkit reads a volume in (h, w, c) order (as Keras does), ``Flatten``/``torch.flatten`` of
NCHW in (c, h, w) order.  Two exact ways out, chosen per FLATTEN node by ``Layout``:

* channels-first: flatten in (c, h, w) order and reorder, once, what reads the vector
  (the rows of the next FC's weights, BN's per-neuron parameters); the usual way, no
  extra operator.  ``orders`` records where each of cnnkit's neurons then sits.
* channels-last: transpose to NHWC, then flatten, when the reordered vector would reach
  something that cannot absorb the order (the network's output, a RES sum of vectors in
  different orders, an LRN over neurons).

An FC reading a volume directly always flattens channels-first, with its weights reordered.
``to_channels_first`` converts one of a node's cnnkit arrays (a ``Param``, listed per kind
in kinds.py); ``from_channels_first`` is its inverse, for gradients and weights coming back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine.convert import (
    conv_weight_from_oihw,
    conv_weight_to_oihw,
    fc_weight_from_torch,
    fc_weight_to_torch,
)
from ..graph.network import Network, Node

# kinds that apply the same function to every neuron of a flat vector: a reordered vector
# in gives the same values reordered out (BN's parameters are reordered along with it)
ORDER_BLIND = ("id", "relu", "lrelu", "tanh", "sigmoid", "softmax", "dropout", "bn", "flatten")


def _flatten_order(node: Node, network: Network) -> np.ndarray | None:
    """Where cnnkit's neurons land when ``node`` (a FLATTEN) flattens channels-first:
    position t holds cnnkit's neuron ``order[t]`` (None: the same order)."""
    shape = network.nodes[node.inputs[0]].out
    if shape.flat or shape.c == 1 or shape.h * shape.w == 1:
        return None
    return np.arange(shape.size).reshape(shape.h, shape.w, shape.c).transpose(2, 0, 1).ravel()


class Layout:
    """Which FLATTEN nodes flatten channels-last, and the neuron order of every flat output.

    ``channels_last``: FLATTENs known to flatten channels-last (an imported model's
    Transpose + Flatten); the others are added where the order cannot be absorbed."""

    def __init__(self, network: Network, channels_last=()):
        self.network = network
        self.channels_last: set[int] = set(channels_last)  # FLATTENs transposing to NHWC first
        while True:
            self.orders, blocked = self._propagate()
            if not blocked:
                return
            self.channels_last |= blocked

    def _propagate(self) -> tuple[list[np.ndarray | None], set[int]]:
        """Orders of every node, and the FLATTENs whose order reaches a node that cannot
        take it (to flatten channels-last instead)."""
        nodes = self.network.nodes
        orders: list[np.ndarray | None] = []
        sources: list[frozenset[int]] = []  # the FLATTENs each order comes from
        blocked: set[int] = set()
        for node in nodes:
            given = [orders[i] for i in node.inputs]
            came_from = frozenset().union(*(sources[i] for i in node.inputs))
            order = None
            if node.kind == "flatten" and node.index not in self.channels_last:
                order = _flatten_order(node, self.network)
                came_from = came_from | {node.index} if order is not None else came_from
            elif node.kind == "concat" and node.out.flat and any(o is not None for o in given):
                parts, start = [], 0
                for i, o in zip(node.inputs, given):
                    size = nodes[i].out.size
                    parts.append(start + (np.arange(size) if o is None else o))
                    start += size
                order = np.concatenate(parts)
            elif any(o is not None for o in given):
                same = all(o is not None and np.array_equal(o, given[0]) for o in given)
                if node.kind in ORDER_BLIND or (node.kind == "add" and same):
                    order = given[0]
                elif node.kind != "fc":  # an FC absorbs the order into its weights
                    blocked |= came_from
            orders.append(order)
            sources.append(came_from if order is not None else frozenset())
        if orders[-1] is not None:  # the output must come out in cnnkit's order
            blocked |= sources[-1]
        return orders, blocked

    def input_order(self, node: Node) -> np.ndarray | None:
        return self.orders[node.inputs[0]]


# -- parameters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One array of a node: cnnkit's key, the channels-first name, and how it is reordered
    ('same', 'conv': (kh, kw, C/g, O) <-> OIHW, 'fc': (d_in, units) <-> (units, d_in) with
    the inputs in channels-first order, 'neurons': per-neuron vectors in the node's order)."""

    key: str
    name: str
    reorder: str


def state_key(node: Node, key: str) -> str:
    """The name of one of ``node``'s arrays in ``Model.state_dict()``."""
    return f"{node.index}:{node.name}/{key}"


def to_channels_first(array: np.ndarray, param: Param, node: Node, layout: Layout) -> np.ndarray:
    if param.reorder == "conv":
        return conv_weight_to_oihw(array)
    if param.reorder == "fc":
        order, source = layout.input_order(node), layout.network.nodes[node.inputs[0]].out
        return array[order].T if order is not None else fc_weight_to_torch(array, source)
    if param.reorder == "neurons" and layout.orders[node.index] is not None:
        return array[layout.orders[node.index]]
    return array


def from_channels_first(array: np.ndarray, param: Param, node: Node,
                        layout: Layout) -> np.ndarray:
    """The inverse of ``to_channels_first``."""
    if param.reorder == "conv":
        return conv_weight_from_oihw(array)
    if param.reorder == "fc":
        order, source = layout.input_order(node), layout.network.nodes[node.inputs[0]].out
        if order is None:
            return fc_weight_from_torch(array, source)
        out = np.empty(array.T.shape, array.dtype)
        out[order] = array.T
        return out
    if param.reorder == "neurons" and layout.orders[node.index] is not None:
        out = np.empty_like(array)
        out[layout.orders[node.index]] = array
        return out
    return array
