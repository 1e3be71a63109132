"""A cnnkit network with weights as a standard ONNX model, built with the ``onnx`` package.

The model takes ``input``, NCHW images, and gives ``logits``: what ``Model.forward``
returns (the output before a trailing SOFTMAX; (N, classes) for a flat output, NCHW for a
spatial one), and, when the spec ends with SOFTMAX, also ``probabilities``.  Each node's
operators come from the kinds table (kinds.py); dropout is left out (inference), BN is
its inference form with the running statistics.  Opset 17, IR version 8, so that runtimes
of 2022 on read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import __version__
from ..graph.network import Network, Node
from .arrays import export_arrays
from .kinds import kind_of
from .layout import Layout
from .names import module_path

OPSET = 17
IR_VERSION = 8
INPUT, LOGITS, PROBABILITIES = "input", "logits", "probabilities"
BATCH = "batch"  # the name of a dynamic batch dimension
DTYPES = ("float32", "float64")


class OnnxGraph:
    """The operators and initializers of the model being built; the kinds table's ONNX
    translations call ``op``, ``param``, ``ints`` and ``scalar`` while ``node`` is being translated."""

    def __init__(self, layout: Layout, arrays: dict[str, np.ndarray], dtype: str):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.layout, self.arrays, self.dtype = layout, arrays, np.dtype(dtype)
        self.nodes: list = []
        self.initializers = [numpy_helper.from_array(array, name)
                             for name, array in arrays.items()]
        self.node: Node | None = None
        self._names: set[str] = set()

    def _fresh(self, name: str) -> str:
        base, count = name, 1
        while name in self._names:
            count += 1
            name = f"{base}_{count}"
        self._names.add(name)
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        """Adds one operator of the current node; returns its output's name."""
        name = self._fresh(f"{module_path(self.node)}/{op_type}")
        self.nodes.append(self.helper.make_node(op_type, inputs, [name], name=name,
                                                doc_string=self.node.name, **attrs))
        return name

    def param(self, node: Node, name: str) -> str:
        """The initializer holding ``node``'s array ``name`` (e.g. ``weight``)."""
        key = f"{module_path(node)}.{name}"
        if key not in self.arrays:
            raise KeyError(f"no array {key}")
        return key

    def ints(self, values: list[int]) -> str:
        """A constant int64 vector (pads, axes, indices)."""
        name = self._fresh(f"{module_path(self.node)}/ints")
        self.initializers.append(self.numpy_helper.from_array(np.asarray(values, np.int64), name))
        return name

    def scalar(self, value: float) -> str:
        """A constant number in the model's dtype."""
        name = self._fresh(f"{module_path(self.node)}/scalar")
        array = np.asarray(value, self.dtype)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def rename(self, value: str, name: str) -> None:
        """Gives the value ``value`` the name ``name`` (a graph output's); through an
        Identity when it is the graph's input."""
        if value == INPUT:
            self.nodes.append(self.helper.make_node("Identity", [value], [name], name=name))
            return
        for node in self.nodes:
            node.input[:] = [name if v == value else v for v in node.input]
            node.output[:] = [name if v == value else v for v in node.output]
        self._names.add(name)


def _value_info(helper, name: str, elem_type: int, shape, batch, doc: str):
    h, w, c = shape.h, shape.w, shape.c
    dims = [batch, c] if shape.flat else [batch, c, h, w]
    return helper.make_tensor_value_info(name, elem_type, dims, doc_string=doc)


def to_onnx(network: Network, weights, path=None, *, dtype: str = "float32",
            batch: int | None = None, description: str = ""):
    """The ONNX model (an ``onnx.ModelProto``) of ``network`` with ``weights`` (a cnnkit
    state dict: ``Model.state_dict()`` or a run's npz), written to ``path`` when given.

    ``batch``: a fixed batch size, or None for a dynamic one; ``description`` goes into
    the model's doc string (e.g. how inputs were normalized in training).  Raises
    ``ExportError`` for a layer ONNX cannot express exactly, ``KeyError`` for missing weights.
    """
    import onnx
    from onnx import helper

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
    for node in network.nodes:
        kind_of(node, "ONNX")  # refuses unknown kinds before any work
    layout = Layout(network)
    graph = OnnxGraph(layout, export_arrays(network, weights, layout, dtype), dtype)
    values: list[str] = []
    for node in network.nodes:
        graph.node = node
        inputs = [values[i] for i in node.inputs] or [INPUT]
        values.append(kind_of(node, "ONNX").onnx(graph, node, inputs))

    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    dim = batch if batch is not None else BATCH
    nodes = network.nodes
    trailing_softmax = nodes[-1].kind == "softmax" and len(nodes) > 1
    logits_node = nodes[nodes[-1].inputs[0]] if trailing_softmax else nodes[-1]
    shape = network.input_shape
    inputs = [_value_info(helper, INPUT, elem, shape, dim,
                          f"images, NCHW ({dim}, {shape.c}, {shape.h}, {shape.w}), {dtype}: "
                          "what cnnkit's engine takes in NHWC, transposed")]
    outputs = [(LOGITS, values[logits_node.index], logits_node,
                "the output before a trailing SOFTMAX (cnnkit's Model.forward)")]
    if trailing_softmax:
        outputs.append((PROBABILITIES, values[-1], nodes[-1], "softmax of the logits"))
    for name, value, _, _ in outputs:
        graph.rename(value, name)
    output_infos = [_value_info(helper, name, elem, node.out, dim, doc)
                    for name, _, node, doc in outputs]

    doc = (f"{Path(network.filename).name}, exported by cnnkit {__version__}. "
           f"Input `{INPUT}`: {inputs[0].doc_string}. Output `{LOGITS}`: {outputs[0][3]}"
           + (f"; `{PROBABILITIES}`: its softmax" if trailing_softmax else "") + ".")
    if description:
        doc += " " + description
    model = helper.make_model(
        helper.make_graph(graph.nodes, Path(network.filename).stem or "cnnkit", inputs,
                          output_infos, graph.initializers, doc_string=doc),
        opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name="cnnkit", producer_version=__version__, doc_string=doc)
    helper.set_model_props(model, {"cnnkit.spec": network.source})
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save_model(model, str(path))
    return model
