"""What each layer keyword means: its options and how it transforms a shape.

Each rule takes the input shape and the parsed options and returns the node's kind, its
resolved attributes and its output shape.  Costs (weights, MACs) are the calculator's job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..language.ast import Arg, Call
from ..language.errors import Span, SpecError
from ..language.lexer import whole_number
from .network import Shape
from .sizes import ROUNDINGS, axis_size, same_padding


@dataclass
class Built:
    kind: str
    attrs: dict
    out: Shape
    explain: tuple[str, ...] = ()


class Options:
    """The options of one layer call, validated against what the layer accepts."""

    def __init__(self, call: Call, layer: str, accepted: dict[str, str], positional: str | None):
        self.layer, self.call = layer, call
        self.values: dict[str, Arg] = {}
        for arg in call.args:
            key = arg.key if arg.key is not None else positional
            if key is None:
                raise SpecError(
                    f"{layer} takes no positional option; found `{arg.value}`",
                    arg.span, _accepted_hint(layer, accepted),
                )
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = (f"did you mean `{close[0]}`? " if close else "") + _accepted_hint(layer, accepted)
                raise SpecError(f"{layer} has no option `{key}`", arg.span, hint)
            if key in self.values:
                raise SpecError(f"option `{key}` is given twice", arg.span)
            self.values[key] = arg

    def _fail(self, arg: Arg, expected: str) -> SpecError:
        return SpecError(f"{self.layer}: option `{arg.key or 'value'}={arg.value}` must be {expected}",
                         arg.span)

    def integer(self, key: str, default: int, minimum: int = 1) -> int:
        arg = self.values.get(key)
        if arg is None:
            return default
        value = whole_number(arg.value, arg.span) if re.fullmatch(r"[0-9]+", arg.value) else None
        if value is None or value < minimum:
            raise self._fail(arg, f"a whole number >= {minimum}")
        return value

    def pair(self, key: str, default: tuple[int, int], minimum: int = 1) -> tuple[int, int]:
        """``stride=2`` or ``stride=2x1`` (height x width)."""
        arg = self.values.get(key)
        if arg is None:
            return default
        match = re.fullmatch(r"([0-9]+)(?:[xX]([0-9]+))?", arg.value)
        if not match:
            raise self._fail(arg, f"a whole number >= {minimum}, or HxW like 2x1")
        h = whole_number(match.group(1), arg.span)
        w = whole_number(match.group(2), arg.span) if match.group(2) else h
        if min(h, w) < minimum:
            raise self._fail(arg, f"a whole number >= {minimum}")
        return h, w

    def sides(self, key: str) -> tuple[int, int, int, int]:
        """``pad=1``, ``pad=1x2`` (height x width), each axis maybe ``before:after``
        (``pad=0x1:2``: no rows, one column on the left and two on the right), as
        (top, bottom, left, right)."""
        arg = self.values[key]
        axis = r"([0-9]+)(?::([0-9]+))?"
        match = re.fullmatch(rf"{axis}(?:[xX]{axis})?", arg.value)
        if not match:
            raise self._fail(arg, "P, HxW like 1x2, or before:after per axis like 0x1:2")
        top, bottom, left, right = (whole_number(g, arg.span) if g is not None else None
                                    for g in match.groups())
        height = (top, top if bottom is None else bottom)
        width = height if left is None else (left, left if right is None else right)
        return height + width

    def number(self, key: str, default: float, low: float, high: float, closed_high=False) -> float:
        arg = self.values.get(key)
        if arg is None:
            return default
        try:
            value = float(arg.value.encode("ascii"))  # as bytes: float("٠.٥") would be 0.5
        except ValueError:
            raise self._fail(arg, "a number") from None
        if not (low <= value and (value <= high if closed_high else value < high)):
            raise self._fail(arg, f"in [{low}, {high}{']' if closed_high else ')'}")
        return value

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        arg = self.values.get(key)
        if arg is None:
            return default
        if arg.value.lower() not in choices:
            raise self._fail(arg, "one of " + ", ".join(choices))
        return arg.value.lower()

    def flag(self, key: str, default: bool) -> bool:
        return self.choice(key, "true" if default else "false", ("true", "false")) == "true"

    def raw(self, key: str) -> Arg | None:
        return self.values.get(key)


def _accepted_hint(layer: str, accepted: dict[str, str]) -> str:
    if not accepted:
        return f"{layer} takes no options"
    return f"{layer} takes: " + ", ".join(f"{k} ({v})" for k, v in accepted.items())


# -- rules -----------------------------------------------------------------------------

def _spatial(shape: Shape, layer: str, span: Span) -> None:
    if shape.flat:
        raise SpecError(
            f"{layer} needs an image-shaped input (HxWxC), but its input is a flat vector "
            f"of {shape.c}",
            span,
            "put convolution and pooling layers before FC/FLATTEN",
        )


def _window(
    shape: Shape, opts: Options, layer: str, span: Span, rounding: str, *,
    kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    pad_default: tuple[int, int],
) -> tuple[tuple[int, int, int, int], int, int, list[str], tuple[int, int]]:
    """Padding, output size, explanation and ceil overhang (rows, columns) of a sliding
    window (CONV and POOL share this).  The padding's bottom and right include the overhang,
    the padding ceil rounding adds for a last window that runs past the padded input."""
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    pad_arg = opts.raw("pad")
    if pad_arg is None:
        (top, left) = pad_default
        bottom, right = top, left
    elif pad_arg.value.lower() == "same":
        top, bottom = same_padding(shape.h, eff[0], stride[0])
        left, right = same_padding(shape.w, eff[1], stride[1])
    elif pad_arg.value.lower() == "valid":
        top = bottom = left = right = 0
    else:
        top, bottom, left, right = opts.sides("pad")
    round_arg = opts.choice("round", rounding, ROUNDINGS)
    h = axis_size(shape.h, eff[0], stride[0], top, bottom, round_arg,
                  axis="height", layer=layer, span=span)
    w = axis_size(shape.w, eff[1], stride[1], left, right, round_arg,
                  axis="width", layer=layer, span=span)
    same = h.formula == w.formula
    explain = [f"size {h.formula}"] if same else [f"height {h.formula}", f"width {w.formula}"]
    if eff != kernel:
        explain.append(f"effective kernel {dilation[0]}*({kernel[0]}-1)+1 = {eff[0]}")
    overhang = (h.pad_after - bottom, w.pad_after - right)
    return (top, h.pad_after, left, w.pad_after), h.out, w.out, explain, overhang


PAD_FORMS = "P, PxQ, before:after per axis (0x1:2)"
CONV_OPTIONS = {"stride": "S or SxT", "pad": f"{PAD_FORMS}, same or valid", "dilation": "D",
                "groups": "G", "bias": "true/false", "round": "strict/floor/ceil"}
POOL_OPTIONS = {"stride": "S", "pad": PAD_FORMS, "round": "strict/floor/ceil",
                "count_pad": "true/false (average pooling)"}


def _one_dimensional(shape: Shape, kernel: tuple[int, int], square: bool, layer: str,
                     span: Span) -> None:
    """A square window written as one number (CONV3, POOL2) on a one-row (or one-column)
    input: all but one of its rows would only see padding, or not fit.  The 1-D window is
    written with both sizes: CONV1x3, POOL1x2."""
    if not square or kernel[0] == 1 or (shape.h == 1) == (shape.w == 1):
        return
    k, lines = kernel[0], "row" if shape.h == 1 else "column"
    one_d = re.sub(r"^([A-Z]+)[0-9]+", rf"\g<1>{'1x' if shape.h == 1 else ''}{k}"
                   f"{'' if shape.h == 1 else 'x1'}", layer, count=1)
    raise SpecError(
        f"{layer}: a {k}x{k} window on a one-{lines} input ({shape}): its {k - 1} other "
        f"{lines}{'s' if k > 2 else ''} would only see padding, or not fit",
        span, f"a 1-D window is written with both sizes: `{one_d}`",
    )


def conv(shape, opts: Options, match, span, rounding) -> Built:
    layer = opts.layer
    _spatial(shape, layer, span)
    kh, kw = _kernel(match.group(1), match.group(2), span)
    _one_dimensional(shape, (kh, kw), match.group(2) is None, layer, span)
    out_channels = whole_number(match.group(3), span)
    if min(kh, kw, out_channels) < 1:
        raise SpecError(f"{layer}: kernel size and filter count must be at least 1", span)
    stride = opts.pair("stride", (1, 1))
    dilation = opts.pair("dilation", (1, 1))
    groups = opts.integer("groups", 1)
    if shape.c % groups or out_channels % groups:
        raise SpecError(
            f"{layer}: groups={groups} must divide both the input channels ({shape.c}) and "
            f"the filters ({out_channels})",
            span, f"depthwise convolution is groups={shape.c} with a multiple of {shape.c} filters",
        )
    eff = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    pad, oh, ow, explain, _ = _window(
        shape, opts, layer, span, rounding, kernel=(kh, kw), stride=stride, dilation=dilation,
        pad_default=((eff[0] - 1) // 2, (eff[1] - 1) // 2),
    )
    attrs = dict(kernel=(kh, kw), stride=stride, dilation=dilation, pad=pad, groups=groups,
                 out_channels=out_channels, bias=opts.flag("bias", True))
    return Built("conv", attrs, Shape(oh, ow, out_channels), tuple(explain))


def pool(shape, opts: Options, match, span, rounding) -> Built:
    _spatial(shape, opts.layer, span)
    mode = "avg" if match.group(1).upper() == "AVGPOOL" else "max"
    kh, kw = _kernel(match.group(2), match.group(3), span)
    if min(kh, kw) < 1:
        raise SpecError(f"{opts.layer}: the window size must be at least 1", span)
    _one_dimensional(shape, (kh, kw), match.group(3) is None, opts.layer, span)
    stride = opts.pair("stride", (kh, kw))
    pad, oh, ow, explain, overhang = _window(
        shape, opts, opts.layer, span, rounding, kernel=(kh, kw), stride=stride,
        dilation=(1, 1), pad_default=(0, 0),
    )
    if max(pad[0], pad[1]) >= kh or max(pad[2], pad[3]) >= kw:
        raise SpecError(f"{opts.layer}: padding must be smaller than the window", span)
    attrs = dict(mode=mode, kernel=(kh, kw), stride=stride, dilation=(1, 1), pad=pad)
    count_pad = _count_pad(opts, mode)
    if not count_pad:  # windows at the border shrink: they average the image pixels only
        attrs["count_pad"] = False
        explain.append("the average divides by the image pixels in each window, not the "
                       "padding (PyTorch's count_include_pad=False)")
    elif mode == "avg" and any(overhang):  # left out of the averages' divisors
        attrs["overhang"] = overhang
        explain.append(f"the average leaves out the {overhang[0]} row(s) and {overhang[1]} "
                       "column(s) of ceil overhang, as PyTorch and Caffe do")
    return Built("pool", attrs, Shape(oh, ow, shape.c), tuple(explain))


def _count_pad(opts: Options, mode: str) -> bool:
    """Whether an average counts written padding in its divisor (the default, PyTorch's
    count_include_pad); a max pool never sees its padding, so the option is not its."""
    count_pad = opts.flag("count_pad", True)
    if mode == "max" and opts.raw("count_pad") is not None:
        raise SpecError(f"{opts.layer}: count_pad applies to average pooling only; a max "
                        "pool never takes its padding (-inf) as the maximum",
                        opts.raw("count_pad").span, "write AVGPOOL to average")
    return count_pad


def _kernel(height: str, width: str | None, span: Span) -> tuple[int, int]:
    """``3`` (3x3) or ``3x5`` as written in CONV3x5-8 or POOL3x5."""
    kh = whole_number(height, span)
    return kh, whole_number(width, span) if width else kh


def fc(shape, opts: Options, match, span, rounding) -> Built:
    units = whole_number(match.group(1), span)
    if units < 1:
        raise SpecError(f"{opts.layer}: needs at least one unit", span)
    explain = () if shape.flat else (f"flattens {shape} = {shape.size:,} inputs",)
    return Built("fc", dict(units=units, bias=opts.flag("bias", True)), Shape(1, 1, units, True),
                 explain)


def gap(shape, opts, match, span, rounding) -> Built:
    _spatial(shape, opts.layer, span)
    return Built("gap", {}, Shape(1, 1, shape.c), (f"averages each {shape.h}x{shape.w} map",))


def gmp(shape, opts, match, span, rounding) -> Built:
    _spatial(shape, opts.layer, span)
    return Built("gmp", {}, Shape(1, 1, shape.c),
                 (f"keeps the largest value of each {shape.h}x{shape.w} map",))


def flatten(shape, opts, match, span, rounding) -> Built:
    return Built("flatten", {}, Shape(1, 1, shape.size, True))


def same_shape(kind: str, **option_defaults) -> Callable:
    """Layers that keep their input's shape (activations, dropout, BN, LRN, ID)."""

    def rule(shape, opts: Options, match, span, rounding) -> Built:
        attrs = {}
        for key, (default, low, high) in option_defaults.items():
            if key == "size":
                attrs[key] = opts.integer("size", default)
            else:
                attrs[key] = opts.number(key, default, low, high)
        return Built(kind, attrs, shape)

    return rule


@dataclass(frozen=True)
class LayerType:
    pattern: re.Pattern
    rule: Callable
    options: dict[str, str]
    positional: str | None = None
    example: str = ""
    stems: tuple[str, ...] = ()  # the keywords' letters, e.g. ("CONV",)


def _type(regex, rule, options=None, positional=None, example="", stems=None):
    return LayerType(re.compile(regex, re.IGNORECASE), rule, options or {}, positional, example,
                     stems or (regex,))


LAYER_TYPES = [
    _type(r"CONV([0-9]+)(?:x([0-9]+))?-([0-9]+)", conv, CONV_OPTIONS, example="CONV3-64",
          stems=("CONV",)),
    _type(r"(MAXPOOL|AVGPOOL|POOL)([0-9]+)(?:x([0-9]+))?", pool, POOL_OPTIONS, example="POOL2",
          stems=("MAXPOOL", "AVGPOOL", "POOL")),
    _type(r"FC-?([0-9]+)", fc, {"bias": "true/false"}, example="FC-10", stems=("FC",)),
    _type(r"GAP", gap, example="GAP"),
    _type(r"GMP", gmp, example="GMP"),
    _type(r"FLATTEN", flatten, example="FLATTEN"),
    _type(r"ID", same_shape("id"), example="ID"),
    _type(r"RELU", same_shape("relu"), example="RELU"),
    _type(r"LRELU", same_shape("lrelu", alpha=(0.01, 0.0, 1.0)), {"alpha": "slope"}, "alpha",
          "LRELU(0.1)"),
    _type(r"TANH", same_shape("tanh"), example="TANH"),
    _type(r"SIGMOID", same_shape("sigmoid"), example="SIGMOID"),
    _type(r"SOFTMAX", same_shape("softmax"), example="SOFTMAX"),
    _type(r"DROPOUT", same_shape("dropout", p=(0.5, 0.0, 1.0)), {"p": "drop probability"}, "p",
          "DROPOUT(0.5)"),
    _type(r"BN", same_shape("bn", eps=(1e-5, 0.0, 1.0), momentum=(0.1, 0.0, 1.0)),
          {"eps": "number", "momentum": "number"}, example="BN"),
    _type(r"LRN", same_shape("lrn", size=(5, 1, 0), alpha=(1e-4, 0.0, 10.0),
                             beta=(0.75, 0.0, 10.0), k=(2.0, 0.0, 100.0)),
          {"size": "channels", "alpha": "number", "beta": "number", "k": "number"}, "size",
          "LRN(5)"),
]
KEYWORD_EXAMPLES = [t.example for t in LAYER_TYPES] + ["INPUT", "RES[", "CAT["]
# the layer type of each keyword, by its letters before any digit or dash ("CONV3-64": CONV)
STEM = re.compile(r"[A-Za-z_]+")
BY_STEM = {stem: t for t in LAYER_TYPES for stem in t.stems}


def build_layer(call: Call, shape: Shape, rounding: str) -> Built:
    stem = STEM.match(call.word)
    layer_type = BY_STEM.get(stem.group().upper()) if stem else None
    match = layer_type.pattern.fullmatch(call.word) if layer_type else None
    if match is None:
        raise unknown_word(call, ())
    opts = Options(call, call.word.upper(), layer_type.options, layer_type.positional)
    return layer_type.rule(shape, opts, match, call.span, rounding)


MAX_GUESS_WORK = 100_000  # pairs of characters compared: about 0.03 s; a real spec needs thousands


def unknown_word(call: Call, block_names) -> SpecError:
    word = call.word.upper()
    stem = re.sub(r"[-0-9].*$", "", word)
    candidates = {re.sub(r"[-0-9(\[].*$", "", e): e for e in KEYWORD_EXAMPLES}
    close = difflib.get_close_matches(stem, list(candidates), n=1, cutoff=0.6)
    # difflib's time grows with the product of the lengths it compares: so many or so long
    # block names that a guess would take seconds (no real spec comes near) get no guess
    guessable = len(call.word) * sum(len(name) for name in block_names) <= MAX_GUESS_WORK
    close_blocks = difflib.get_close_matches(call.word, list(block_names), n=1) if guessable else []
    if close_blocks:
        hint = f"did you mean the block `{close_blocks[0]}`?"
    elif close:
        suggestion = call.word.upper().replace(stem, close[0], 1) if stem else candidates[close[0]]
        hint = f"did you mean `{suggestion}`?"
    else:
        hint = "layers: " + ", ".join(KEYWORD_EXAMPLES)
    if re.fullmatch(r"CONV[0-9]+(X[0-9]+)?", word):
        hint = f"a convolution needs its filter count: `{word}-64`"
    return SpecError(f"unknown layer `{call.word}`", call.span, hint)
