"""The output-size rule of convolution and pooling, with its arithmetic spelled out.

    out = (n + pad_before + pad_after - k) / stride + 1

where k is the effective kernel size, dilation*(F-1)+1.  A non-integer result is an error
unless a rounding mode says what to do with it (textbook: strict; PyTorch/Keras: floor;
Caffe pooling and PyTorch ceil_mode: ceil).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from ..language.errors import Span, SpecError

ROUNDINGS = ("strict", "floor", "ceil")


@dataclass(frozen=True)
class AxisSize:
    out: int
    pad_after: int  # bottom/right padding, grown by the overhang of ceil rounding
    formula: str  # "(224 - 3 + 2*1)/1 + 1 = 224"


def same_padding(n: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow/Keras 'same': output ceil(n/stride), the odd pixel of padding after."""
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return total // 2, total - total // 2


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.4f}".rstrip("0")


def arithmetic(n: int, k: int, stride: int, before: int, after: int) -> str:
    pads = f"2*{before}" if before == after else f"{before} + {after}"
    return f"({n} - {k} + {pads})/{stride} + 1"


def axis_size(
    n: int, k: int, stride: int, before: int, after: int, rounding: str,
    *, axis: str, layer: str, span: Span | None,
) -> AxisSize:
    numerator = n + before + after - k
    text = arithmetic(n, k, stride, before, after)
    if numerator < 0:
        raise SpecError(
            f"{layer}: the {axis} shrinks below one: {text} = "
            f"{_fmt(Fraction(numerator, stride) + 1)}; the {k}-wide window does not fit "
            f"in the {n}-wide input (padded to {n + before + after})",
            span,
            "use a smaller kernel, more padding, or remove a downsampling layer before it",
        )
    if numerator % stride == 0:  # the usual case, without Fraction's cost
        out = numerator // stride + 1
        return AxisSize(out, after, f"{text} = {out}")
    exact = Fraction(numerator, stride) + 1
    if rounding == "floor":
        out = math.floor(exact)
        dropped = numerator - (out - 1) * stride
        return AxisSize(out, after, f"floor({text}) = floor({_fmt(exact)}) = {out}"
                        f" (the last {dropped} {'row' if axis == 'height' else 'column'}"
                        f"{'s' if dropped != 1 else ''} of the padded input unused)")
    if rounding == "ceil":
        out = math.ceil(exact)
        if (out - 1) * stride >= n + before:  # a window may not start in the padding alone
            out -= 1
        grown = max(after, (out - 1) * stride + k - n - before)
        return AxisSize(out, grown, f"ceil({text}) = ceil({_fmt(exact)}) = {out}")
    raise SpecError(
        f"{layer}: the output {axis} {text} = {_fmt(exact)} is not an integer",
        span,
        _fixes(n, k, stride, before, after, exact, axis),
    )


def _fixes(n: int, k: int, stride: int, before: int, after: int, exact: Fraction, axis: str) -> str:
    """Working alternatives for a size that does not divide: pad, input size, rounding."""
    options = []
    pads = [p for p in range(0, k + 1) if (n + 2 * p - k) % stride == 0 and n + 2 * p >= k]
    if pads:
        p = min(pads, key=lambda p: (abs(p - before), p))
        options.append(f"pad={p} (output {(n + 2 * p - k) // stride + 1})")
    fits = lambda m: m + before + after >= k and (m + before + after - k) % stride == 0  # noqa: E731
    below = next((m for m in range(n - 1, 0, -1) if fits(m)), None)
    above = next(m for m in range(n + 1, n + stride + 1) if fits(m))
    sizes = [m for m in (below, above) if m is not None]
    options.append(
        f"an input {axis} of " + " or ".join(
            f"{m} (output {(m + before + after - k) // stride + 1})" for m in sizes)
    )
    floor_out = math.floor(exact)
    dropped = n + before + after - k - (floor_out - 1) * stride
    options.append(
        f"`@rounding floor` (output {floor_out}, drops the last {dropped} "
        f"{'row' if axis == 'height' else 'column'}{'s' if dropped != 1 else ''}) or "
        f"`@rounding ceil` (output {math.ceil(exact)}), or the option round=floor on this layer"
    )
    return "use " + "; or ".join(options)
