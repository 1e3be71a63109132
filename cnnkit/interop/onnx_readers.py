"""What each layer kind is read from: the ONNX operators that make it, the import half of
kinds.py, keyed the same way (``READERS[kind]``).

A reader sees one operator (``Reading.node``) and writes the layer it means in cnnkit's
language (``CONV3-64(stride=2)``); cnnkit's own parser then works out the layer's shape,
so every size is cnnkit's arithmetic, and a reader checks that it agrees with the ONNX
operator's.  Operators that are part of a layer rather than one (``PARTS``: a Pad before a
convolution, a Transpose before a Flatten, constants) become pending values that only the
operators able to absorb them accept.  An attribute a reader does not list is refused by
name; so is a value cnnkit cannot express.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from ..graph.build import parse
from ..graph.network import Network, Node, Shape
from ..language.errors import SpecError
from .kinds import avg_divisor_correction
from .layout import Layout
from .onnx_load import Constant, OnnxGraph, OnnxImportError

# -- what the readers produce ------------------------------------------------------------


@dataclass(frozen=True)
class Array:
    """One of a layer's arrays, channels-first (kinds.py's ``Param.name``): a constant of
    the model, transposed where the model stores a (d_in, units) matrix."""

    constant: Constant
    transposed: bool = False

    def value(self) -> np.ndarray:
        array = self.constant.value()
        return array.T if self.transposed else array


@dataclass
class Layer:
    """One cnnkit layer read from the model; ``inputs`` are indices into the layer list
    (0 is the INPUT)."""

    kind: str
    word: str  # in cnnkit's language; "" for RES sums and CAT joins
    inputs: tuple[int, ...]
    out: Shape
    attrs: dict
    source: str  # the operator it was read from, for messages
    arrays: dict[str, Array] = field(default_factory=dict)
    channels_last: bool = False  # a FLATTEN of an NHWC transpose


@dataclass(frozen=True)
class Pending:
    """An operator's output that only some consumers take: ``what`` is 'pad' (``pads`` as
    ONNX's (top, left, bottom, right), ``fill`` its value), 'nhwc' (a Transpose to
    channels-last) or 'flatten' (an NCHW Flatten that the FC after it does itself)."""

    what: str
    layer: int
    source: str
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    fill: float = 0.0


def number(value, dtype="float32") -> str:
    """The shortest decimal that gives ``value`` back in ``dtype`` (attributes are float32:
    9.99999975e-06 is written 1e-05)."""
    return repr(float(str(np.asarray(value, dtype)[()])))


def pair(a: int, b: int) -> str:
    return str(a) if a == b else f"{a}x{b}"


def sides(top: int, left: int, bottom: int, right: int) -> str:
    """ONNX's pads as the value of cnnkit's ``pad=``: ``1``, ``1x2``, ``0x1:2``."""
    height, width = (str(a) if a == b else f"{a}:{b}" for a, b in ((top, bottom), (left, right)))
    return height if height == width else f"{height}x{width}"


def word(stem: str, *options: str | None) -> str:
    given = [o for o in options if o]
    return f"{stem}({', '.join(given)})" if given else stem


def onnx_size(n: int, k: int, stride: int, before: int, after: int, ceil: bool) -> int | None:
    """ONNX's (and PyTorch's) output size; with ceil, a last window that would start in the
    end padding is dropped.  None: the window does not fit."""
    span = n + before + after - k
    if span < 0:
        return None
    out = (span + (stride - 1 if ceil else 0)) // stride + 1
    return out - 1 if ceil and (out - 1) * stride >= n + before else out


# -- reading one operator ----------------------------------------------------------------


class Reading:
    """The walk over a model's operators: the layers so far, what each ONNX value is (a
    layer's index, a ``Constant`` or a ``Pending``), and the operator being read."""

    def __init__(self, graph: OnnxGraph):
        self.graph = graph
        shape = graph.input_shape
        self.layers = [Layer("input", f"INPUT {shape.h}x{shape.w}x{shape.c}", (), shape, {},
                             f"input `{graph.input_name}`")]
        self.values: dict[str, object] = {**graph.constants, graph.input_name: 0}
        self.absorbed: set[int] = set()  # id() of operators read as part of another
        self.floor_used = False
        self.node = None

    # the operator being read
    @property
    def source(self) -> str:
        node = self.node
        return f"{node.op_type} '{node.name or node.output[0]}'"

    def fail(self, message: str) -> OnnxImportError:
        return OnnxImportError(f"{self.source}: {message}")

    def attributes(self, **defaults) -> dict:
        """The operator's attributes over ``defaults``; one not listed is refused by name."""
        from onnx import helper

        values = dict(defaults)
        for attribute in self.node.attribute:
            if attribute.name not in defaults:
                raise self.fail(f"attribute `{attribute.name}` is not supported by cnnkit")
            values[attribute.name] = helper.get_attribute_value(attribute)
        for key, value in values.items():
            if isinstance(value, bytes):
                values[key] = value.decode()
        return values

    def refuse(self, attribute: str, value, why: str = "") -> OnnxImportError:
        return self.fail(f"attribute {attribute}={value} is not supported by cnnkit"
                         + (f" ({why})" if why else ""))

    def value(self, i: int):
        """The value of input ``i``; None when the input is left out."""
        inputs = self.node.input
        if i >= len(inputs) or not inputs[i]:
            return None
        if inputs[i] not in self.values:
            raise self.fail(f"input `{inputs[i]}` comes from no operator cnnkit read")
        return self.values[inputs[i]]

    def tensor(self, i: int = 0, accept: tuple[str, ...] = ()) -> int | Pending:
        """A layer's output (its index), or a ``Pending`` of a kind in ``accept``."""
        value = self.value(i)
        if isinstance(value, int):
            return value
        if isinstance(value, Pending) and value.what in accept:
            return value
        if isinstance(value, Pending):
            raise OnnxImportError(f"{value.source} feeds {self.source}, which cannot absorb it "
                                  f"({PENDING_USE[value.what]})")
        raise self.fail(f"input {i} is a constant; cnnkit layers compute on the image")

    def constant(self, i: int) -> Constant | None:
        value = self.value(i)
        if value is not None and not isinstance(value, Constant):
            raise self.fail(f"input {i} must be a constant (weights, sizes)")
        return value

    def shape(self, layer: int) -> Shape:
        return self.layers[layer].out

    def set_output(self, value, output: int = 0) -> None:
        self.values[self.node.output[output]] = value

    def extra_outputs_unused(self) -> None:
        for name in self.node.output[1:]:
            if name and (self.graph.consumers(name) or name in self.graph.outputs):
                raise self.fail(f"its output `{name}` is used; cnnkit reads the first only")

    def sole_consumer(self, op_types: tuple[str, ...]):
        """The one operator reading this one's output, if it is of ``op_types``."""
        output = self.node.output[0]
        readers = self.graph.consumers(output)
        if len(readers) == 1 and readers[0].op_type in op_types and \
                output not in self.graph.outputs:
            return readers[0]
        return None

    # layers
    def build(self, text: str, layer: int, rounding: str = "strict") -> Node | None:
        """``text`` as cnnkit builds it on the output of ``layer``; None if it does not fit."""
        shape = self.shape(layer)
        prefix = f"INPUT {shape.h}x{shape.w}x{shape.c} -> " + ("FLATTEN -> " if shape.flat else "")
        try:
            return parse(prefix + text, rounding=rounding).nodes[-1]
        except SpecError:
            return None

    def add(self, layer: Layer) -> int:
        self.layers.append(layer)
        self.set_output(len(self.layers) - 1)
        return len(self.layers) - 1

    def emit(self, text: str, x: int, arrays: dict[str, Array] | None = None,
             channels_last: bool = False) -> int:
        node = self.build(text, x)
        if node is None:
            raise self.fail(f"cnnkit cannot build `{text}` on its input {self.shape(x)}")
        return self.add(Layer(node.kind, text, (x,), node.out, node.attrs, self.source,
                              arrays or {}, channels_last))

    def emit_window(self, stem: str, options: list[str], x: int | Pending, kernel, stride,
                    dilation, pads, ceil: bool, default_pad=(0, 0), fits=None,
                    arrays=None, variants=(None,)) -> int:
        """A convolution or pooling whose windows are the operator's: the first way of
        writing its padding and rounding (as few options as possible; ``variants``: one
        more option to try, e.g. an average's count_pad) with which cnnkit builds the same
        output size and the same top/left padding, and (``fits``) the same divisors."""
        if isinstance(x, Pending):  # a Pad before: its padding adds to the operator's
            pads = tuple(a + b for a, b in zip(pads, x.pads))
            x = x.layer
        shape = self.shape(x)
        if shape.flat:
            raise self.fail("its input is a flat vector; cnnkit convolves and pools images")
        top, left, bottom, right = pads
        eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        target = (onnx_size(shape.h, eff[0], stride[0], top, bottom, ceil),
                  onnx_size(shape.w, eff[1], stride[1], left, right, ceil))
        if None in target:
            raise self.fail(f"its {kernel[0]}x{kernel[1]} window does not fit the input {shape}")
        pad = None if (top, left) == tuple(default_pad) else f"pad={pair(top, left)}"
        exact = f"pad={sides(*pads)}"
        attempts = [(pad_option, round_option, variant)
                    for pad_option in dict.fromkeys((pad, "pad=same", exact))
                    for round_option in (None, "round=ceil") for variant in variants]
        for pad_option, round_option, variant in attempts:
            text = word(stem, *options, pad_option, round_option, variant)
            node, floor = self.build(text, x), False
            if node is None and round_option is None:
                node, floor = self.build(text, x, "floor"), True
            if node is None or (node.out.h, node.out.w) != target:
                continue
            if (node.attrs["pad"][0], node.attrs["pad"][2]) != (top, left):
                continue
            if fits is not None and not fits(node, x):
                continue
            self.floor_used |= floor
            return self.add(Layer(node.kind, text, (x,), node.out, node.attrs,
                                  self.source, arrays or {}))
        raise self.fail(f"padding {list(pads)} (top, left, bottom, right) with "
                        f"ceil_mode={int(ceil)} on a {shape} input cannot be written in "
                        "cnnkit's language (pad= per side, pad=same, or the overhang of "
                        "round=ceil)")


PENDING_USE = {
    "pad": "cnnkit folds a Pad into the Conv, MaxPool or AveragePool after it only",
    "nhwc": "cnnkit reads a Transpose to NHWC only right before a Flatten",
    "flatten": "internal",
}


# -- the readers -------------------------------------------------------------------------


def spatial_pads(r: Reading, a: dict, shape: Shape, kernel, stride, dilation):
    """(top, left, bottom, right) from ``pads`` or ``auto_pad``."""
    auto = a["auto_pad"]
    if auto in ("NOTSET", ""):
        pads = a["pads"] or [0, 0, 0, 0]
        if len(pads) != 4 or min(pads) < 0:
            raise r.refuse("pads", pads, "four non-negative numbers for an image")
        return tuple(pads)
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise r.refuse("auto_pad", auto)
    before, after = [], []
    for n, k, s, d in zip((shape.h, shape.w), kernel, stride, dilation):
        total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
        small, large = total // 2, total - total // 2
        before.append(small if auto == "SAME_UPPER" else large)
        after.append(large if auto == "SAME_UPPER" else small)
    return (before[0], before[1], after[0], after[1])


def pair_attribute(r: Reading, a: dict, key: str, default) -> tuple[int, int]:
    value = a[key] if a[key] is not None else default
    if len(value) != 2:
        raise r.refuse(key, list(value), "cnnkit convolves and pools in 2-D")
    return tuple(value)


def read_conv(r: Reading) -> None:
    a = r.attributes(kernel_shape=None, strides=None, pads=None, dilations=None, group=1,
                     auto_pad="NOTSET")
    x = r.tensor(0, accept=("pad",))
    if isinstance(x, Pending) and x.fill != 0:
        raise OnnxImportError(f"{x.source} pads with {x.fill}; a convolution pads with zeros")
    weight, bias = r.constant(1), r.constant(2)
    if weight is None or len(weight.dims) != 4:
        raise r.fail("its weight must be a constant of 4 dimensions (a 2-D convolution)")
    out_channels, per_group, kh, kw = weight.dims
    kernel = pair_attribute(r, a, "kernel_shape", (kh, kw))
    if kernel != (kh, kw):
        raise r.refuse("kernel_shape", list(kernel), f"the weight is {kh}x{kw}")
    stride = pair_attribute(r, a, "strides", (1, 1))
    dilation = pair_attribute(r, a, "dilations", (1, 1))
    shape = r.shape(x.layer if isinstance(x, Pending) else x)
    groups = a["group"]
    if per_group * groups != shape.c:
        raise r.fail(f"its weight takes {per_group * groups} channels in groups of "
                     f"{per_group}, its input has {shape.c}")
    pads = spatial_pads(r, a, shape, kernel, stride, dilation)
    options = [f"stride={pair(*stride)}" if stride != (1, 1) else None,
               f"dilation={pair(*dilation)}" if dilation != (1, 1) else None,
               f"groups={groups}" if groups != 1 else None,
               "bias=false" if bias is None else None]
    arrays = {"weight": Array(weight)} | ({"bias": Array(bias)} if bias is not None else {})
    eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    r.emit_window(f"CONV{pair(kh, kw)}-{out_channels}", options, x, kernel, stride, dilation,
                  pads, False, default_pad=((eff[0] - 1) // 2, (eff[1] - 1) // 2),
                  arrays=arrays)


def read_pool(r: Reading) -> None:
    average = r.node.op_type == "AveragePool"
    extra = dict(count_include_pad=0) if average else dict(storage_order=0)
    a = r.attributes(kernel_shape=None, strides=None, pads=None, dilations=None,
                     auto_pad="NOTSET", ceil_mode=0, **extra)
    r.extra_outputs_unused()
    x = r.tensor(0, accept=("pad",))
    if isinstance(x, Pending) and x.fill != (0.0 if average else -np.inf):
        need = "zeros before an average pool" if average else "-inf before a max pool"
        raise OnnxImportError(f"{x.source} pads with {x.fill}; cnnkit pads with {need}")
    kernel = pair_attribute(r, a, "kernel_shape", None)
    stride = pair_attribute(r, a, "strides", (1, 1))
    if pair_attribute(r, a, "dilations", (1, 1)) != (1, 1):
        raise r.refuse("dilations", a["dilations"], "cnnkit pools without dilation")
    if a.get("storage_order", 0):
        raise r.refuse("storage_order", a["storage_order"])
    shape = r.shape(x.layer if isinstance(x, Pending) else x)
    pads = spatial_pads(r, a, shape, kernel, stride, (1, 1))
    stem = f"{'AVGPOOL' if average else 'MAXPOOL'}{pair(*kernel)}"
    options = [f"stride={pair(*stride)}" if stride != kernel else None]
    fits, variants = None, (None,)
    if average:
        fits = average_divisors(r, pads, shape, bool(a["count_include_pad"]),
                                isinstance(x, Pending))
        variants = (None, "count_pad=false")
    r.emit_window(stem, options, x, kernel, stride, (1, 1), pads, bool(a["ceil_mode"]),
                  fits=fits, variants=variants)


def average_divisors(r: Reading, pads, shape: Shape, include_pad: bool, padded: bool):
    """The check that cnnkit's divisors are the operator's.  cnnkit counts written padding
    and leaves out the overhang of ceil rounding (as PyTorch does, and ONNX with
    count_include_pad=1); count_include_pad=0 counts the image alone, as cnnkit's
    count_pad=false does.  A cnnkit export writes the ceil overhang as padding and
    multiplies by a correction (also for count_pad=false): that Mul is read here, as part
    of the pool."""
    correction = r.sole_consumer(("Mul",))
    if correction is not None:
        factor = next((r.values.get(v) for v in correction.input if v != r.node.output[0]),
                      None)
        correction = correction if isinstance(factor, Constant) else None

    def fits(node: Node, x: int) -> bool:
        if correction is not None:
            return corrected(node, x, factor, correction)
        if not node.attrs.get("count_pad", True):  # a Pad's zeros are the image to ONNX
            return not (include_pad or padded)
        top, bottom, left, right = node.attrs["pad"]
        overhang = node.attrs.get("overhang", (0, 0))
        onnx_top, onnx_left, onnx_bottom, onnx_right = pads
        for n, k, s, out, before, after, written in (
                (shape.h, node.attrs["kernel"][0], node.attrs["stride"][0], node.out.h,
                 top, onnx_bottom, bottom - overhang[0]),
                (shape.w, node.attrs["kernel"][1], node.attrs["stride"][1], node.out.w,
                 left, onnx_right, right - overhang[1])):
            read = (out - 1) * s + k - n - before  # rows (columns) read past the image
            if not (include_pad or padded):
                if before or min(written, read) > 0:
                    return False
            elif min(after, read) != min(written, read):
                return False
        return True

    def corrected(node: Node, x: int, factor: Constant, mul) -> bool:
        alone = Network([Node(0, "INPUT", "input", (), shape), node])  # node reads node 0
        ours = avg_divisor_correction(node, Layout(alone)).get("correction")
        theirs = factor.value()
        if ours is None or theirs.shape != ours.shape or \
                not np.array_equal(ours.astype(theirs.dtype), theirs):
            return False
        r.absorbed.add(id(mul))
        r.values[mul.output[0]] = len(r.layers)  # the pool about to be added
        return True

    return fits


def read_global_pool(r: Reading) -> None:
    r.attributes()
    r.emit("GAP" if r.node.op_type == "GlobalAveragePool" else "GMP", r.tensor(0))


def read_fc(r: Reading) -> None:
    """Gemm (A x B^T + C, as PyTorch exports Linear, or A x B + C), or MatMul, with the Add
    of a bias after it."""
    if r.node.op_type == "Gemm":
        a = r.attributes(alpha=1.0, beta=1.0, transA=0, transB=0)
        for key in ("alpha", "beta"):
            if a[key] != 1.0:
                raise r.refuse(key, a[key], "cnnkit's FC computes x W + b")
        if a["transA"]:
            raise r.refuse("transA", a["transA"])
        transposed, bias = not a["transB"], r.constant(2)
    else:
        r.attributes()
        transposed, bias = True, None
        add = r.sole_consumer(("Add",))
        other = add and next((r.values.get(v) for v in add.input if v != r.node.output[0]),
                             None)
        if isinstance(other, Constant):
            bias = other
            r.absorbed.add(id(add))
    x = r.tensor(0, accept=("flatten",))
    layer = x.layer if isinstance(x, Pending) else x
    shape, weight = r.shape(layer), r.constant(1)
    if not isinstance(x, Pending) and not shape.flat:
        raise r.fail(f"its input is an image volume {shape}; flatten it first")
    if weight is None or len(weight.dims) != 2:
        raise r.fail("its weight must be a constant matrix")
    units, inputs = weight.dims[::-1] if transposed else weight.dims
    if inputs != shape.size:
        raise r.fail(f"its weight takes {inputs} inputs, its input has {shape.size}")
    arrays = {"weight": Array(weight, transposed)}
    if bias is not None:
        if int(np.prod(bias.dims)) != units or max(bias.dims, default=1) != units:
            raise r.fail(f"its bias has dims {list(bias.dims)}, not ({units},)")
        arrays["bias"] = Array(bias)
    layer_index = r.emit(word(f"FC-{units}", None if bias is not None else "bias=false"),
                         layer, arrays)
    if r.node.op_type == "MatMul" and bias is not None:
        r.values[add.output[0]] = layer_index


def read_flatten(r: Reading) -> None:
    """Flatten (axis 1) or a Reshape to (batch, everything).  An NCHW one read only by a
    Gemm/MatMul is left to the FC, which flattens by itself; after a Transpose to NHWC it
    is a FLATTEN in cnnkit's own (h, w, c) order."""
    if r.node.op_type == "Flatten":
        a = r.attributes(axis=1)
        if a["axis"] != 1:
            raise r.refuse("axis", a["axis"], "cnnkit flattens all but the batch")
    else:
        a = r.attributes(allowzero=0)
        target = r.constant(1)
        shape = r.shape(_layer(r.tensor(0, accept=("nhwc",))))
        dims = [int(d) for d in target.value()] if target is not None else None
        batch = r.graph.batch
        if dims is None or len(dims) != 2 or dims[1] not in (-1, shape.size) or \
                dims[0] not in (0, -1, batch) or dims == [-1, -1]:
            raise r.fail(f"reshape to {dims}: cnnkit reads a Reshape that flattens only")
    x = r.tensor(0, accept=("nhwc",))
    if isinstance(x, Pending):
        r.emit("FLATTEN", x.layer, channels_last=True)
    elif r.shape(x).flat:
        r.set_output(x)
    elif r.sole_consumer(("Gemm", "MatMul")) is not None:
        r.set_output(Pending("flatten", x, r.source))
    else:
        r.emit("FLATTEN", x)


def _layer(value) -> int:
    return value.layer if isinstance(value, Pending) else value


def read_bn(r: Reading) -> None:
    a = r.attributes(epsilon=1e-5, momentum=0.9, training_mode=0)
    if a["training_mode"]:
        raise r.refuse("training_mode", a["training_mode"], "cnnkit reads inference graphs")
    r.extra_outputs_unused()
    x = r.tensor(0)
    names = ("weight", "bias", "running_mean", "running_var")
    arrays = {}
    for i, name in enumerate(names, start=1):
        constant = r.constant(i)
        if constant is None or constant.dims != (r.shape(x).c,):
            raise r.fail(f"its {name} must be a constant of {r.shape(x).c} values")
        arrays[name] = Array(constant)
    eps = number(a["epsilon"])
    # ONNX's momentum weighs the old statistic, cnnkit's (PyTorch's) the new one
    momentum = 1 - Decimal(number(a["momentum"]))
    options = [f"eps={eps}" if float(eps) != 1e-5 else None,
               f"momentum={momentum}" if 0 <= momentum < 1 and momentum != Decimal("0.1")
               else None]
    r.emit(word("BN", *options), x, arrays)


def read_lrn(r: Reading) -> None:
    a = r.attributes(size=None, alpha=1e-4, beta=0.75, bias=1.0)
    if a["size"] % 2 == 0:
        raise r.refuse("size", a["size"], "ONNX's window of an even size is one channel off "
                       "cnnkit's")
    options = [f"alpha={number(a['alpha'])}" if number(a["alpha"]) != "0.0001" else None,
               f"beta={number(a['beta'])}" if number(a["beta"]) != "0.75" else None,
               f"k={number(a['bias'])}" if number(a["bias"]) != "2.0" else None]
    r.emit(word("LRN", str(a["size"]), *options), r.tensor(0))


def read_activation(r: Reading) -> None:
    op = r.node.op_type
    if op == "LeakyRelu":
        alpha = number(r.attributes(alpha=0.01)["alpha"])
        r.emit("LRELU" if alpha == "0.01" else f"LRELU({alpha})", r.tensor(0))
        return
    if op == "Softmax":
        x = r.tensor(0)
        shape = r.shape(x)
        axis = r.attributes(axis=-1 if r.graph.opset >= 13 else 1)["axis"]
        rank = 2 if shape.flat else 4
        whole = r.graph.opset < 13 and not shape.flat and shape.h * shape.w > 1
        if axis % rank != 1 or whole:
            raise r.refuse("axis", axis, "cnnkit's SOFTMAX runs over the channels")
        r.emit("SOFTMAX", x)
        return
    r.attributes()
    r.emit(op.upper(), r.tensor(0))  # RELU, TANH, SIGMOID


def read_dropout(r: Reading) -> None:
    r.attributes(seed=0)
    r.extra_outputs_unused()
    training = r.constant(2)
    if training is not None and bool(training.value()):
        raise r.fail("it runs in training mode; cnnkit reads inference graphs")
    ratio = r.constant(1)
    p = number(ratio.value(), ratio.value().dtype) if ratio is not None else "0.5"
    r.emit(f"DROPOUT({p})", r.tensor(0))


def read_identity(r: Reading) -> None:
    r.attributes()
    value = r.value(0)
    r.set_output(value if isinstance(value, Constant) else r.tensor(0))


def read_merge(r: Reading) -> None:
    """Add (two outputs: a RES) or Concat along the channels (a CAT)."""
    concat = r.node.op_type == "Concat"
    if concat:
        axis = r.attributes(axis=None)["axis"]
    else:
        r.attributes()
    if not concat and any(isinstance(r.value(i), Constant) for i in range(len(r.node.input))):
        raise r.fail("it adds a constant, not a branch (cnnkit adds biases in CONV and FC only)")
    inputs = tuple(r.tensor(i) for i in range(len(r.node.input)))
    shapes = [r.shape(i) for i in inputs]
    if concat:
        if axis % (2 if shapes[0].flat else 4) != 1:
            raise r.refuse("axis", axis, "cnnkit joins along the channels")
        if len({(s.h, s.w, s.flat) for s in shapes}) != 1:
            raise r.fail(f"it joins {', '.join(map(str, shapes))}: not one height and width")
        out = Shape(shapes[0].h, shapes[0].w, sum(s.c for s in shapes), shapes[0].flat)
        r.add(Layer("concat", "", inputs, out, {}, r.source))
        return
    if len(inputs) != 2:
        raise r.fail(f"it adds {len(inputs)} tensors; a RES adds two")
    if shapes[0] != shapes[1]:
        raise r.fail(f"it adds {shapes[0]} to {shapes[1]} (cnnkit does not broadcast)")
    r.add(Layer("add", "", inputs, shapes[0], {}, r.source))


# -- parts of layers ---------------------------------------------------------------------


def read_constant(r: Reading) -> None:
    from onnx import helper, numpy_helper

    if len(r.node.attribute) != 1 or r.node.attribute[0].name not in (
            "value", "value_float", "value_floats", "value_int", "value_ints"):
        raise r.fail("cnnkit reads dense constants only")
    value = helper.get_attribute_value(r.node.attribute[0])
    if hasattr(value, "dims"):
        r.set_output(Constant(r.node.output[0], tuple(value.dims), value))
        return
    array = np.asarray(value, np.float32 if "float" in r.node.attribute[0].name else np.int64)
    r.set_output(Constant(r.node.output[0], array.shape, numpy_helper.from_array(array)))


def read_pad(r: Reading) -> None:
    mode = r.attributes(mode="constant")["mode"]
    if mode != "constant":
        raise r.refuse("mode", mode, "cnnkit pads with a constant")
    x, pads, fill = r.tensor(0), r.constant(1), r.constant(2)
    if r.value(3) is not None:
        raise r.fail("Pad with axes is not supported")
    values = [int(v) for v in pads.value()] if pads is not None else []
    if len(values) != 8 or any(values[i] for i in (0, 1, 4, 5)) or min(values) < 0:
        raise r.fail(f"pads {values}: cnnkit pads height and width only, never crops")
    fill_value = float(fill.value()) if fill is not None else 0.0
    r.set_output(Pending("pad", x, r.source, (values[2], values[3], values[6], values[7]),
                         fill_value))


def read_transpose(r: Reading) -> None:
    perm = r.attributes(perm=None)["perm"]
    x = r.tensor(0)
    if list(perm or []) != [0, 2, 3, 1] or r.shape(x).flat:
        raise r.refuse("perm", perm, "cnnkit reads a Transpose to NHWC before a Flatten only")
    r.set_output(Pending("nhwc", x, r.source))


def read_stray_mul(r: Reading) -> None:
    raise r.fail("cnnkit reads a Mul only as the divisor correction after an AveragePool "
                 "(as its own export writes it)")


@dataclass(frozen=True)
class Reader:
    ops: tuple[str, ...]
    read: Callable[[Reading], None]


ACTIVATIONS = {"relu": "Relu", "lrelu": "LeakyRelu", "tanh": "Tanh", "sigmoid": "Sigmoid",
               "softmax": "Softmax"}

READERS: dict[str, Reader] = {
    "conv": Reader(("Conv",), read_conv),
    "pool": Reader(("MaxPool", "AveragePool"), read_pool),
    "gap": Reader(("GlobalAveragePool",), read_global_pool),
    "gmp": Reader(("GlobalMaxPool",), read_global_pool),
    "fc": Reader(("Gemm", "MatMul"), read_fc),
    "flatten": Reader(("Flatten", "Reshape"), read_flatten),
    "id": Reader(("Identity",), read_identity),  # an alias: no layer of its own
    **{kind: Reader((op,), read_activation) for kind, op in ACTIVATIONS.items()},
    "dropout": Reader(("Dropout",), read_dropout),
    "bn": Reader(("BatchNormalization",), read_bn),
    "lrn": Reader(("LRN",), read_lrn),
    "add": Reader(("Add", "Sum"), read_merge),
    "concat": Reader(("Concat",), read_merge),
}
PARTS: dict[str, Callable[[Reading], None]] = {
    "Constant": read_constant, "Pad": read_pad, "Transpose": read_transpose,
    "Mul": read_stray_mul,
}
BY_OP: dict[str, Callable[[Reading], None]] = {
    **{op: reader.read for reader in READERS.values() for op in reader.ops}, **PARTS}


def read_layers(graph: OnnxGraph) -> Reading:
    """Every operator of ``graph`` read into layers; all unknown operators are named in one
    error before anything is read."""
    unknown = [f"'{n.name or n.output[0]}' ({n.op_type})" for n in graph.nodes
               if n.op_type not in BY_OP or n.domain not in ("", "ai.onnx")]
    if unknown:
        shown = ", ".join(unknown[:12]) + (f" and {len(unknown) - 12} more"
                                           if len(unknown) > 12 else "")
        raise OnnxImportError(f"operators cnnkit does not know: {shown}")
    reading = Reading(graph)
    for node in graph.nodes:
        if id(node) in reading.absorbed:
            continue
        reading.node = node
        BY_OP[node.op_type](reading)
    return reading
