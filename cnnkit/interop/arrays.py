"""A network's weights in the channels-first export, by name, and back.

The names are PyTorch's state-dict keys (``module path.weight``, see names.py); the ONNX
export uses the same names for its initializers.
"""

from __future__ import annotations

import numpy as np

from ..graph.network import Network
from .kinds import KINDS, kind_of
from .layout import Layout, from_channels_first, state_key, to_channels_first
from .names import module_path


def export_arrays(network: Network, weights, layout: Layout, dtype="float32",
                  target: str = "ONNX") -> dict[str, np.ndarray]:
    """Every node's parameters from a cnnkit state dict (``Model.state_dict()`` or a run's
    npz), then its constants, channels-first, as contiguous ``dtype`` arrays."""
    arrays = {}
    for node in network.nodes:
        kind, path = kind_of(node, target), module_path(node)
        for param in kind.params(node):
            key = state_key(node, param.key)
            if key not in weights:
                raise KeyError(f"the weights have no `{key}`")
            arrays[f"{path}.{param.name}"] = to_channels_first(
                np.asarray(weights[key]), param, node, layout)
        for name, array in kind.constants(node, layout).items():
            arrays[f"{path}.{name}"] = array
    return {name: np.ascontiguousarray(array, dtype=dtype) for name, array in arrays.items()}


def cnnkit_arrays(network: Network, arrays, layout: Layout) -> dict[str, np.ndarray]:
    """The inverse of ``export_arrays`` for the parameters in ``arrays`` (constants are left
    out): cnnkit state-dict entries from channels-first arrays (e.g. gradients, or weights
    trained in PyTorch)."""
    weights = {}
    for node in network.nodes:
        path = module_path(node)
        for param in KINDS[node.kind].params(node):
            name = f"{path}.{param.name}"
            if name in arrays:
                weights[state_key(node, param.key)] = from_channels_first(
                    np.asarray(arrays[name]), param, node, layout)
    return weights
