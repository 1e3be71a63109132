"""Names of the translated layers, shared by the ONNX and PyTorch exports.

A node named ``layer1.1/block64.1/CONV3-64`` with index 5 becomes the module path
``layer1_1.block64_1.n5_conv3_64``: one submodule per block of its path (every named block
is numbered, ``name.N``, so no block name can shadow an ``nn.Module`` attribute), and an
attribute carrying the node's index, the ``#`` column of ``cnnkit summarize``.  The ONNX
export names its operators and initializers by the same paths.
"""

from __future__ import annotations

import re

from ..graph.network import Node


def identifier(text: str) -> str:
    name = re.sub(r"\W+", "_", text).strip("_")
    return name if name and not name[0].isdigit() else f"_{name}"


def block_path(node: Node) -> tuple[str, ...]:
    """The node's blocks, outermost first, as Python identifiers."""
    return tuple(identifier(part) for part in node.name.split("/")[:-1])


def layer_name(node: Node) -> str:
    return f"n{node.index}_{identifier(node.name.split('/')[-1].lower())}"


def module_path(node: Node) -> str:
    return ".".join((*block_path(node), layer_name(node)))
