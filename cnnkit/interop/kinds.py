"""What each layer kind becomes outside cnnkit: ONNX operators and PyTorch source, side by side.

``KINDS`` maps every node kind of ``cnnkit.graph.network.KINDS`` to a ``Kind``:

* ``params``: the node's arrays and how each is reordered to channels-first (see layout.py);
* ``constants``: arrays the translation needs beyond cnnkit's (an average pool's divisors);
* ``onnx(graph, node, inputs)``: adds the node's operators to an ``onnx_export.OnnxGraph``
  and returns the name of its output;
* ``torch(node, layout)``: a ``TorchLayer``, the submodule to declare (source text, or None)
  and the expression that computes the output in ``forward``.

Both translations compute exactly what the engine computes; what cannot be written so is
refused (``ExportError``) by the caller before any of this runs.  A new layer kind is added
here, once, for both targets; what it is read back from (ONNX operators) is in
onnx_readers.py's ``READERS``, keyed by the same kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..graph.network import Node, Shape
from .layout import Layout, Param


@dataclass(frozen=True)
class TorchLayer:
    """``module``: constructor source (e.g. ``nn.Conv2d(3, 64, kernel_size=3, padding=1)``),
    attribute ``{m}`` of the model; ``call``: the forward expression, with ``{m}``, ``{x}``
    (the first input), ``{xs}`` (all inputs, comma-separated) and ``{sum}`` (all inputs,
    added) to fill in; ``buffers``: the shapes of the constants registered on the module."""

    call: str
    module: str | None = None
    buffers: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    onnx: Callable
    torch: Callable[[Node, Layout], TorchLayer]
    params: Callable[[Node], tuple[Param, ...]] = lambda node: ()
    constants: Callable[[Node, Layout], dict[str, np.ndarray]] = lambda node, layout: {}


# -- shared geometry ------------------------------------------------------------------------


def in_shape(node: Node, layout: Layout) -> Shape:
    return layout.network.nodes[node.inputs[0]].out


def onnx_pads(pad: tuple[int, int, int, int]) -> list[int]:
    """cnnkit's (top, bottom, left, right) as ONNX's (top, left, bottom, right)."""
    top, bottom, left, right = pad
    return [top, left, bottom, right]


def torch_pad(pad: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """cnnkit's (top, bottom, left, right) as F.pad's (left, right, top, bottom)."""
    top, bottom, left, right = pad
    return (left, right, top, bottom)


def symmetric(pad, kernel=None) -> tuple[int, int] | None:
    """(rows, cols) when ``pad`` is the same on both sides (and, given ``kernel``, at most
    half of it, as torch pooling requires); else None."""
    top, bottom, left, right = pad
    if top != bottom or left != right:
        return None
    if kernel is not None and (2 * top > kernel[0] or 2 * left > kernel[1]):
        return None
    return (top, left)


def pair(values) -> str:
    """torch's argument style: ``3`` for (3, 3), ``(3, 5)`` otherwise."""
    a, b = values
    return str(a) if a == b else f"({a}, {b})"


def window_args(a: dict, padding: tuple[int, int] | None) -> list[str]:
    """kernel_size, stride, padding and dilation arguments of a torch conv or pool (whose
    stride defaults to 1 and to the kernel size)."""
    args = [f"kernel_size={pair(a['kernel'])}"]
    if a["stride"] != ((1, 1) if "groups" in a else a["kernel"]):
        args.append(f"stride={pair(a['stride'])}")
    if padding and any(padding):
        args.append(f"padding={pair(padding)}")
    if a.get("dilation", (1, 1)) != (1, 1):
        args.append(f"dilation={pair(a['dilation'])}")
    return args


def padded_call(pad, native: tuple[int, int] | None, fill: str = "") -> str:
    """``{m}({x})``, through an explicit F.pad when the module cannot pad by itself."""
    if native is not None or not any(pad):
        return "{m}({x})"
    value = f", value={fill}" if fill else ""
    return f"{{m}}(F.pad({{x}}, {torch_pad(pad)}{value}))"


# -- convolution and pooling ---------------------------------------------------------------


def conv_params(node: Node) -> tuple[Param, ...]:
    weight = Param("W", "weight", node.kind)
    return (weight, Param("b", "bias", "same")) if node.attrs["bias"] else (weight,)


def conv_onnx(g, node: Node, xs: list[str]) -> str:
    a = node.attrs
    inputs = [xs[0]] + [g.param(node, p.name) for p in conv_params(node)]
    return g.op("Conv", inputs, kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                dilations=list(a["dilation"]), pads=onnx_pads(a["pad"]), group=a["groups"])


def conv_torch(node: Node, layout: Layout) -> TorchLayer:
    a = node.attrs
    native = symmetric(a["pad"])
    args = [str(in_shape(node, layout).c), str(a["out_channels"]), *window_args(a, native)]
    if a["groups"] != 1:
        args.append(f"groups={a['groups']}")
    if not a["bias"]:
        args.append("bias=False")
    return TorchLayer(padded_call(a["pad"], native), f"nn.Conv2d({', '.join(args)})")


def avg_divisor_correction(node: Node, layout: Layout) -> dict[str, np.ndarray]:
    """For an average pool whose windows do not all divide by kh*kw (ceil overhang, or
    count_pad=False with padding): kh*kw / the engine's divisor per output pixel,
    (1, 1, Ho, Wo), to multiply a count-the-padding average by."""
    if node.attrs["mode"] != "avg":
        return {}
    from ..engine.layers.pool import AvgPool  # the engine's own divisors, not a second copy

    scale = AvgPool(node, [in_shape(node, layout)], np, "float64").scale  # (Ho, Wo, 1)
    if np.ndim(scale) == 0:
        return {}
    kh, kw = node.attrs["kernel"]
    return {"correction": (kh * kw * scale).transpose(2, 0, 1)[None]}


def pool_onnx(g, node: Node, xs: list[str]) -> str:
    """Max: padding counts as -inf (MaxPool's own).  Average: every window lies inside the
    padded input (the ceil overhang is padding in the graph), so count_include_pad divides
    by kh*kw everywhere, and divisors that differ (overhang, count_pad=False) are then
    corrected by a product."""
    a = node.attrs
    window = dict(kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                  pads=onnx_pads(a["pad"]))
    if a["mode"] == "max":
        return g.op("MaxPool", [xs[0]], **window)
    y = g.op("AveragePool", [xs[0]], count_include_pad=1, **window)
    if avg_divisor_correction(node, g.layout):
        y = g.op("Mul", [y, g.param(node, "correction")])
    return y


def pool_torch(node: Node, layout: Layout) -> TorchLayer:
    """Max pools and averages that torch pads itself (symmetric padding up to half the
    window) are one module; other padding is an F.pad before it, and divisors torch cannot
    count so (count_pad=False over F.pad's zeros, the overhang of wide padding) a buffer
    of corrections after it."""
    a = node.attrs
    if a["mode"] == "max":
        native = symmetric(a["pad"], a["kernel"])
        module = f"nn.MaxPool2d({', '.join(window_args(a, native))})"
        return TorchLayer(padded_call(a["pad"], native, 'float("-inf")'), module)
    top, bottom, left, right = a["pad"]
    overhang = a.get("overhang", (0, 0))
    native = symmetric((top, bottom - overhang[0], left, right - overhang[1]), a["kernel"])
    if native is not None:  # ceil_mode leaves the overhang out of the divisors, as cnnkit does
        args = window_args(a, native) + (["ceil_mode=True"] if any(overhang) else []) + (
            [] if a.get("count_pad", True) else ["count_include_pad=False"])
        return TorchLayer("{m}({x})", f"nn.AvgPool2d({', '.join(args)})")
    module = f"nn.AvgPool2d({', '.join(window_args(a, None))})"
    correction = avg_divisor_correction(node, layout).get("correction")
    if correction is None:
        return TorchLayer(padded_call(a["pad"], None), module)
    return TorchLayer(padded_call(a["pad"], None) + " * {m}.correction", module,
                      {"correction": correction.shape})


# -- dense, normalization, activations, routing -------------------------------------------


def fc_onnx(g, node: Node, xs: list[str]) -> str:
    x = xs[0] if in_shape(node, g.layout).flat else g.op("Flatten", [xs[0]], axis=1)
    inputs = [x] + [g.param(node, p.name) for p in conv_params(node)]
    return g.op("Gemm", inputs, transB=1)


def fc_torch(node: Node, layout: Layout) -> TorchLayer:
    shape = in_shape(node, layout)
    bias = "" if node.attrs["bias"] else ", bias=False"
    call = "{m}({x})" if shape.flat else "{m}(torch.flatten({x}, 1))"
    return TorchLayer(call, f"nn.Linear({shape.size}, {node.attrs['units']}{bias})")


def flatten_onnx(g, node: Node, xs: list[str]) -> str:
    if in_shape(node, g.layout).flat:
        return xs[0]
    x = xs[0]
    if node.index in g.layout.channels_last:
        x = g.op("Transpose", [x], perm=[0, 2, 3, 1])
    return g.op("Flatten", [x], axis=1)


def flatten_torch(node: Node, layout: Layout) -> TorchLayer:
    if in_shape(node, layout).flat:
        return TorchLayer("{x}")
    if node.index in layout.channels_last:  # cnnkit's (h, w, c) order, see layout.py
        return TorchLayer("{x}.permute(0, 2, 3, 1).flatten(1)")
    return TorchLayer("torch.flatten({x}, 1)")


def bn_params(node: Node) -> tuple[Param, ...]:
    return tuple(Param(key, name, "neurons") for key, name in (
        ("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
        ("running_var", "running_var")))


def bn_onnx(g, node: Node, xs: list[str]) -> str:
    a = node.attrs
    inputs = [xs[0]] + [g.param(node, p.name) for p in bn_params(node)]
    # ONNX's momentum weighs the old statistic (PyTorch's the new); inference ignores it
    return g.op("BatchNormalization", inputs, epsilon=a["eps"], momentum=1 - a["momentum"])


def bn_torch(node: Node, layout: Layout) -> TorchLayer:
    a, c = node.attrs, node.out.c
    module = "BatchNorm1d" if node.out.flat else "BatchNorm2d"
    return TorchLayer("{m}({x})", f"nn.{module}({c}, eps={a['eps']!r}, momentum={a['momentum']!r})")


def lrn_onnx(g, node: Node, xs: list[str]) -> str:
    """ONNX's LRN window of channel c reaches (size-1)//2 channels back and size//2 forward,
    cnnkit's (and PyTorch's) the other way round: the same for an odd size.  An even size
    (which onnxruntime's LRN refuses anyway) is written out as PyTorch computes it: the
    window average of x^2 by a 3-D AveragePool over (channels, 1, 1).  A flat input is made
    (N, C, 1, 1) around it."""
    a, flat = node.attrs, node.out.flat
    x = g.op("Unsqueeze", [xs[0], g.ints([2, 3])]) if flat else xs[0]
    size = a["size"]
    if size % 2:
        y = g.op("LRN", [x], size=size, alpha=a["alpha"], beta=a["beta"], bias=a["k"])
    else:
        squares = g.op("Unsqueeze", [g.op("Mul", [x, x]), g.ints([1])])
        mean = g.op("AveragePool", [squares], kernel_shape=[size, 1, 1], count_include_pad=1,
                    pads=[size // 2, 0, 0, (size - 1) // 2, 0, 0])
        mean = g.op("Squeeze", [mean, g.ints([1])])
        d = g.op("Add", [g.op("Mul", [mean, g.scalar(a["alpha"])]), g.scalar(a["k"])])
        y = g.op("Mul", [x, g.op("Pow", [d, g.scalar(-a["beta"])])])
    return g.op("Flatten", [y], axis=1) if flat else y


def lrn_torch(node: Node, layout: Layout) -> TorchLayer:
    a = node.attrs
    module = f"nn.LocalResponseNorm({a['size']}, alpha={a['alpha']!r}, beta={a['beta']!r}, k={a['k']!r})"
    return TorchLayer("{m}({x}[:, :, None, None]).flatten(1)" if node.out.flat else "{m}({x})",
                      module)


def alias_onnx(g, node: Node, xs: list[str]) -> str:
    return xs[0]


def op(op_type: str, **attrs) -> Callable:
    """An ONNX translation that is one operator on the node's inputs."""
    return lambda g, node, xs: g.op(op_type, xs, **attrs)


def call(expression: str) -> Callable[[Node, Layout], TorchLayer]:
    """A PyTorch translation that is one module-free expression."""
    return lambda node, layout: TorchLayer(expression)


class ExportError(Exception):
    """A network, or a part of one, that a target cannot express exactly."""


def kind_of(node: Node, target: str) -> Kind:
    """The translations of ``node``'s kind; a kind without one is refused by name."""
    if node.kind not in KINDS:
        raise ExportError(f"{node.name} (node {node.index}): layer kind `{node.kind}` has no "
                          f"{target} translation")
    return KINDS[node.kind]


KINDS: dict[str, Kind] = {
    "input": Kind(alias_onnx, call("{x}")),
    "conv": Kind(conv_onnx, conv_torch, conv_params),
    "pool": Kind(pool_onnx, pool_torch, constants=avg_divisor_correction),
    "gap": Kind(op("GlobalAveragePool"), call("torch.mean({x}, dim=(2, 3), keepdim=True)")),
    "gmp": Kind(op("GlobalMaxPool"), call("torch.amax({x}, dim=(2, 3), keepdim=True)")),
    "fc": Kind(fc_onnx, fc_torch, conv_params),
    "flatten": Kind(flatten_onnx, flatten_torch),
    "id": Kind(alias_onnx, call("{x}")),
    "relu": Kind(op("Relu"), call("F.relu({x})")),
    "lrelu": Kind(lambda g, node, xs: g.op("LeakyRelu", xs, alpha=node.attrs["alpha"]),
                  lambda node, layout: TorchLayer(f"F.leaky_relu({{x}}, {node.attrs['alpha']!r})")),
    "tanh": Kind(op("Tanh"), call("torch.tanh({x})")),
    "sigmoid": Kind(op("Sigmoid"), call("torch.sigmoid({x})")),
    "softmax": Kind(op("Softmax", axis=1), call("torch.softmax({x}, dim=1)")),
    # dropout is the identity at inference; PyTorch keeps the module for further training
    "dropout": Kind(alias_onnx, lambda node, layout: TorchLayer(
        "{m}({x})", f"nn.Dropout(p={node.attrs['p']!r})")),
    "bn": Kind(bn_onnx, bn_torch, bn_params),
    "lrn": Kind(lrn_onnx, lrn_torch),
    "add": Kind(op("Sum"), call("{sum}")),
    "concat": Kind(op("Concat", axis=1), call("torch.cat([{xs}], dim=1)")),
}

