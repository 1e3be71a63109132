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
    """Exactly rounded to 4 decimals, or to as many more as it takes not to look like a whole
    number: (221 - 11)/10**12 + 1 is 1.0000000002, not 1.0000."""
    if value.denominator == 1:
        return str(value.numerator)
    places = 4
    while round(value * 10**places) % 10**places == 0:
        places += 1
    whole, decimals = divmod(abs(round(value * 10**places)), 10**places)
    return f"{'-' if value < 0 else ''}{whole}.{decimals:0{places}d}".rstrip("0")


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
    """Working alternatives for a size that does not divide: pad, input size, rounding.
    Worked out directly, not searched for: strides and kernels may be huge."""
    options = []
    pad = _closest_pad(n, k, stride, before)
    if pad is not None:
        options.append(f"pad={pad} (output {(n + 2 * pad - k) // stride + 1})")
    overshoot = (n + before + after - k) % stride  # > 0: the size does not divide
    grown = after + stride - overshoot  # the padding after that makes it divide
    if grown < k:  # a window wholly in the padding would see nothing
        options.append(f"{before}:{grown} padding on the {axis} (pad= takes before:after "
                       f"per axis; output {(n + before + grown - k) // stride + 1})")
    # the nearest input sizes that divide; the smaller one still fits the window, as n does
    sizes = [m for m in (n - overshoot, n + stride - overshoot) if m >= 1]
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


def _closest_pad(n: int, k: int, stride: int, before: int) -> int | None:
    """The padding p (the same on both sides) nearest ``before`` for which n + 2p - k is a
    multiple of the stride, with room for the window (n + 2p >= k) and smaller than it (a
    window wholly in the padding sees nothing; pooling refuses it); None if there is none.

    2p = k - n (mod stride) has solutions when gcd(2, stride) divides k - n, and they repeat
    every stride/gcd(2, stride)."""
    common = math.gcd(2, stride)
    residue = (k - n) % stride
    if residue % common:
        return None
    period = stride // common
    first = (residue // common) * pow(2 // common, -1, period) % period
    low, high = max(0, -((n - k) // 2)), k - 1
    target = min(max(before, low), high)
    at_or_below = target - (target - first) % period
    candidates = [p for p in (at_or_below, at_or_below + period) if low <= p <= high]
    return min(candidates, key=lambda p: (abs(p - before), p), default=None)
