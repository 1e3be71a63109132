"""An ONNX model as a cnnkit spec and weights: ONNX -> layers -> spec text -> cnnkit's parser.

Going through the text means that ``summarize``, ``check``, ``visualize`` and ``import``
all see the network the written spec describes, with every number cnnkit's own: the
readers (onnx_readers.py) write each operator in the language and check that cnnkit's
sizes agree with ONNX's; structure.py recovers the branches and folds the repeats; the
text is parsed once more and checked node by node against what was read.

A model that cnnkit exported carries its spec (``cnnkit.spec``); when that spec describes
the graph just read (the same layers, less what inference leaves out: dropout, ID, the
FLATTEN an FC does itself), it is used as written, with its names, blocks and comments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..graph.build import parse, parse_shape
from ..graph.network import Network
from ..language.errors import SpecError
from .arrays import cnnkit_arrays
from .kinds import KINDS
from .layout import Layout, from_channels_first, state_key
from .onnx_load import OnnxGraph, OnnxImportError, load_onnx
from .onnx_readers import Layer, Reading, read_layers
from .structure import chain_text, expansion, fold, name_blocks, recover


@dataclass
class Imported:
    """``spec``: the text; ``network``: it parsed; ``origin``: 'graph' (read from the
    operators) or 'embedded' (a cnnkit export's own spec); ``weights()``: the cnnkit state
    dict (``Model.load_state_dict``), in the model's dtype, read on demand."""

    spec: str
    network: Network
    origin: str
    read_weights: Callable[[], dict[str, np.ndarray]]

    def weights(self) -> dict[str, np.ndarray]:
        weights = self.read_weights()
        expected = {state_key(node, p.key) for node in self.network.nodes
                    for p in KINDS[node.kind].params(node)}
        missing = sorted(expected - set(weights))
        if missing:
            raise OnnxImportError(f"the model has no weights for {', '.join(missing[:3])}")
        return weights


def _output(reading: Reading, graph: OnnxGraph) -> int:
    """The layer of the graph's output: the last one when there are several (a cnnkit
    export gives the logits and their softmax); the others must lead to it."""
    layers = []
    for name in graph.outputs:
        value = reading.values.get(name)
        if not isinstance(value, int):
            raise OnnxImportError(f"the graph output `{name}` is not computed by a layer "
                                  "cnnkit read (a constant, or a Pad/Transpose alone)")
        layers.append(value)
    return max(layers)


def _spec_text(graph_name: str, reading: Reading, chain: list, blocks: dict[str, str]) -> str:
    layers = reading.layers
    lines = [f"# Imported from {graph_name} by cnnkit {__version__} "
             f"({len(layers) - 1} layers read from {len(reading.graph.nodes)} ONNX operators)."]
    if reading.floor_used:
        lines.append("@rounding floor")
    if blocks:
        lines.append("")
        lines += [f"{name} = {text}" for name, text in blocks.items()]
    lines += ["", layers[0].word] + [f"-> {chain_text([e], layers)}" for e in chain]
    return "\n".join(lines) + "\n"


def _check_parsed(network: Network, layers: list[Layer], order: list[int]) -> None:
    """The parsed text has the layers that were read, node for node (a bug otherwise)."""
    position = {index: i for i, index in enumerate(order)}
    for node, index in zip(network.nodes, order, strict=True):
        layer = layers[index]
        same = (node.kind == layer.kind and node.out == layer.out
                and tuple(position[i] for i in layer.inputs) == node.inputs
                and (not layer.word or node.attrs == layer.attrs))
        if not same:
            raise RuntimeError(f"the imported spec does not give back {layer.source} "
                               f"(node {node.index} {node.name})")


def _graph_weights(network, layers, order, layout) -> Callable[[], dict[str, np.ndarray]]:
    def read() -> dict[str, np.ndarray]:
        weights = {}
        for node, index in zip(network.nodes, order):
            for param in KINDS[node.kind].params(node):
                array = layers[index].arrays[param.name].value()
                weights[state_key(node, param.key)] = np.ascontiguousarray(
                    from_channels_first(array, param, node, layout))
        return weights

    return read


def essentials(network: Network) -> list[tuple]:
    """(kind, attrs, out, inputs) of the layers an inference graph shows: dropout and ID
    left out, and FLATTENs of vectors or read by an FC alone (which flattens itself)."""
    layout, nodes = Layout(network), network.nodes
    readers: dict[int, list[int]] = {}
    for node in nodes:
        for i in node.inputs:
            readers.setdefault(i, []).append(node.index)
    alias: dict[int, int] = {}
    position: dict[int, int] = {}
    rows = []
    for node in nodes:
        inputs = tuple(alias.get(i, i) for i in node.inputs)
        read_by = readers.get(node.index, [])
        by_fc = (len(read_by) == 1 and nodes[read_by[0]].kind == "fc"
                 and node.index not in layout.channels_last)
        if node.kind in ("dropout", "id") or (node.kind == "flatten" and (
                nodes[node.inputs[0]].out.flat or by_fc)):
            alias[node.index] = inputs[0]
            continue
        position[node.index] = len(rows)
        rows.append((node.kind, node.attrs, node.out, tuple(position[i] for i in inputs)))
    return rows


def _embedded(graph: OnnxGraph, read: Network, filename: str):
    """The export's own spec, when it describes the graph that was read; else None."""
    shape = graph.input_shape
    try:
        network = parse(graph.embedded_spec, filename=filename,
                        input_shape=(shape.h, shape.w, shape.c))
    except SpecError:
        return None
    if essentials(network) != essentials(read):
        return None

    def weights() -> dict[str, np.ndarray]:
        arrays = {name: c.value() for name, c in graph.constants.items()}
        return {key: np.ascontiguousarray(array)
                for key, array in cnnkit_arrays(network, arrays, Layout(network)).items()}

    return network, weights


def from_onnx(path, input_shape: str | tuple | None = None, *,
              use_embedded_spec: bool = True) -> Imported:
    """Read the ONNX model at ``path`` (``input_shape`` "HxWxC" for a dynamic input size,
    or to override a fixed one).  Raises ``OnnxImportError`` (one line: the operator or
    attribute at fault), ``FileNotFoundError``; never runs anything from the model."""
    if isinstance(input_shape, str):
        try:
            input_shape = parse_shape(input_shape)
        except ValueError as error:
            raise OnnxImportError(str(error)) from None
    graph = load_onnx(path, input_shape)
    reading = read_layers(graph)
    layers = reading.layers
    chain = fold(recover(layers, _output(reading, graph)), layers)
    chain, blocks = name_blocks(chain, layers)
    filename = Path(path).name
    text = _spec_text(filename, reading, chain, blocks)
    network = parse(text, filename=str(path))
    order = [0] + expansion(chain)
    _check_parsed(network, layers, order)
    nhwc = {i for i, index in enumerate(order) if layers[index].channels_last}
    layout = Layout(network, nhwc)
    if layout.channels_last != nhwc:
        culprit = layers[order[min(layout.channels_last - nhwc)]]
        raise OnnxImportError(f"{culprit.source}: flattens in (c, h, w) order, and that order "
                              "reaches a layer that cannot take it (the output, a sum of "
                              "vectors in other orders, an LRN); cnnkit flattens in (h, w, c)")
    if use_embedded_spec and graph.embedded_spec:
        found = _embedded(graph, network, str(path))
        if found is not None:
            return Imported(graph.embedded_spec, found[0], "embedded", found[1])
    return Imported(text, network, "graph", _graph_weights(network, layers, order, layout))
