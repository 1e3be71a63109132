"""An ONNX file as plain Python, read without running anything from it.

``onnx.load`` parses protobuf and nothing else; external weight files are checked (present,
inside the model's folder, long enough) but only read when a value is asked for, so that
``cnnkit summarize`` of a large model reads its shapes alone.  No shape inference, no
runtime: every size is worked out by cnnkit (onnx_readers.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..graph.network import Shape

MIN_OPSET, MAX_OPSET = 11, 25  # the operator versions whose meaning onnx_readers.py follows
FLOATS = ("float32", "float64")


class OnnxImportError(Exception):
    """A model cnnkit cannot read, or one it cannot express exactly: one line that names the
    operator (node name and type) or the attribute at fault."""


@dataclass
class Constant:
    """An initializer or Constant: its dims, and its values when the model holds them (a
    weight exported as a graph input, ``export_params=False``, has dims only)."""

    name: str
    dims: tuple[int, ...]
    tensor: object = None  # onnx.TensorProto, its external data not yet read
    folder: Path | None = None
    array: np.ndarray | None = None

    def value(self) -> np.ndarray:
        if self.array is None:
            if self.tensor is None:
                raise OnnxImportError(f"the model holds no values for `{self.name}` (exported "
                                      "without its weights?); cnnkit summarize reads it, "
                                      "cnnkit import needs the weights")
            from onnx import external_data_helper, numpy_helper

            if external_data_helper.uses_external_data(self.tensor):
                external_data_helper.load_external_data_for_tensor(self.tensor, str(self.folder))
            self.array = numpy_helper.to_array(self.tensor)
        return self.array


@dataclass
class OnnxGraph:
    """What the readers need: the operators in order, the constants, the image input."""

    nodes: list  # onnx.NodeProto, topologically sorted (the checker requires it)
    constants: dict[str, Constant]
    input_name: str
    input_shape: Shape
    dtype: str
    outputs: list[str]
    opset: int
    batch: int | None  # a fixed batch size, None when dynamic
    embedded_spec: str | None  # the spec a cnnkit export carries (`cnnkit.spec`)
    _consumers: dict[str, list] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for node in self.nodes:
            for value in dict.fromkeys(node.input):
                self._consumers.setdefault(value, []).append(node)

    def consumers(self, value: str) -> list:
        """The operators reading ``value`` (graph outputs are not counted)."""
        return self._consumers.get(value, [])


def _parse(path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as error:
        raise OnnxImportError(f"{path} is not an ONNX model (or is truncated): "
                              f"{str(error).splitlines()[0] if str(error) else 'cannot parse'}"
                              ) from None
    if model.ir_version < 3 or not model.graph.node:
        raise OnnxImportError(f"{path} is not an ONNX model (or is truncated): "
                              "no graph of operators in it")
    return model


def _opset(model, path: Path) -> int:
    versions = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = versions.get("ai.onnx")
    if opset is None:
        raise OnnxImportError(f"{path} imports no version of the standard ONNX operators")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        age = "too old" if opset < MIN_OPSET else "too new"
        raise OnnxImportError(f"{path} uses opset {opset}, {age} for cnnkit, which reads "
                              f"opsets {MIN_OPSET} to {MAX_OPSET}; convert it with "
                              "onnx.version_converter.convert_version(model, 17)")
    return opset


def _check(model, path: Path, external: bool) -> None:
    """onnx's checker (structure and types; it runs nothing), by path when weights lie in
    data files, which it finds beside the model."""
    import onnx

    try:
        onnx.checker.check_model(str(path) if external else model)
    except onnx.checker.ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise OnnxImportError(f"{path} is not a valid ONNX model: {first}") from None


def _external_data(tensor, folder: Path, path: Path) -> None:
    """The tensor's data file must lie in the model's folder and hold its bytes."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or folder.resolve() not in target.parents:
        raise OnnxImportError(f"{path}: weight `{tensor.name}` points outside the model's "
                              f"folder (`{location}`); cnnkit reads data files beside it only")
    if not target.is_file():
        raise OnnxImportError(f"{path}: the data file `{location}` of weight `{tensor.name}` "
                              "is missing; copy it beside the model")
    end = int(info.get("offset", 0)) + int(info.get("length", 0))
    if target.stat().st_size < end:
        raise OnnxImportError(f"{path}: the data file `{location}` is shorter than weight "
                              f"`{tensor.name}` needs (truncated?)")


def _input(model, constants, path: Path, input_shape) -> tuple[str, Shape, str, int | None]:
    from onnx import helper

    images = [v for v in model.graph.input if v.name not in constants]
    if not images:
        raise OnnxImportError(f"{path} has no input")
    image = images[0]
    tensor_type = image.type.tensor_type
    dtype = str(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    if dtype not in FLOATS:
        raise OnnxImportError(f"{path}: input `{image.name}` holds {dtype} values; cnnkit "
                              "reads float32 or float64 models")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if len(dims) != 4:
        raise OnnxImportError(f"{path}: input `{image.name}` has {len(dims)} dimensions; "
                              "cnnkit reads image models with NCHW input (4 dimensions)")
    batch, c, h, w = dims
    if input_shape is not None:
        h, w, given_c = input_shape
        if c not in (None, given_c):
            raise OnnxImportError(f"{path}: --input has {given_c} channels, the model's "
                                  f"input `{image.name}` {c}")
        c = given_c
    if None in (c, h, w) or 0 in (c, h, w):
        shown = "x".join(str(d) if d else "?" for d in (dims[2], dims[3], dims[1]))
        raise OnnxImportError(f"{path}: input `{image.name}` has no fixed size ({shown}, "
                              "symbolic or dynamic); give it with --input HxWxC")
    # weights exported as graph inputs (export_params=False) have dims, no values
    for extra in images[1:]:
        shape = extra.type.tensor_type.shape.dim
        constants[extra.name] = Constant(extra.name, tuple(d.dim_value for d in shape))
    return image.name, Shape(h, w, c), dtype, batch or None


def load_onnx(path, input_shape: tuple[int, int, int] | None = None) -> OnnxGraph:
    """The graph of the ONNX file ``path``.  ``input_shape`` (H, W, C) fills in a dynamic
    input size or overrides a fixed one.  Raises ``OnnxImportError`` with one line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    model = _parse(path)
    opset = _opset(model, path)
    from onnx import external_data_helper

    folder = path.parent
    constants, external = {}, False
    for tensor in model.graph.initializer:
        if external_data_helper.uses_external_data(tensor):
            _external_data(tensor, folder, path)
            external = True
        constants[tensor.name] = Constant(tensor.name, tuple(tensor.dims), tensor, folder)
    _check(model, path, external)
    name, shape, dtype, batch = _input(model, constants, path, input_shape)
    props = {p.key: p.value for p in model.metadata_props}
    embedded = props.get("cnnkit.spec") if model.producer_name == "cnnkit" else None
    return OnnxGraph(list(model.graph.node), constants, name, shape, dtype,
                     [o.name for o in model.graph.output], opset, batch, embedded)
