"""Window geometry shared by convolution and pooling, on NHWC arrays.

The (i, j) offset of the kernel, taken at every output pixel at once, is one strided slice
of the padded input.  All offsets together, as one strided view, are im2col; a loop over the
kh*kw offsets, each a whole-batch array operation, gives col2im and pooling.
"""

from __future__ import annotations

from itertools import product

from ...graph.network import Shape
from ..backend import get_array_module
from .base import Scratch


class Window:
    """Kernel, stride, dilation and padding of one conv/pool node, with its sizes."""

    def __init__(self, attrs: dict, name: str, in_shape: Shape, out_shape: Shape):
        self.kernel = tuple(attrs["kernel"])
        self.stride = tuple(attrs["stride"])
        self.dilation = tuple(attrs.get("dilation", (1, 1)))
        self.pad = tuple(attrs.get("pad", (0, 0, 0, 0)))
        self.in_hw = (in_shape.h, in_shape.w)
        self.out_hw = (out_shape.h, out_shape.w)
        top, bottom, left, right = self.pad
        self.padded_hw = (in_shape.h + top + bottom, in_shape.w + left + right)
        for axis in (0, 1):
            reach = self.stride[axis] * (self.out_hw[axis] - 1)
            reach += self.dilation[axis] * (self.kernel[axis] - 1) + 1
            if reach > self.padded_hw[axis]:
                raise ValueError(
                    f"{name}: {self.out_hw[axis]} windows need {reach} input rows/columns but "
                    f"the padded input has {self.padded_hw[axis]}; the graph's sizes or "
                    f"padding are inconsistent"
                )

    @property
    def offsets(self) -> list[tuple[int, int]]:
        return list(product(range(self.kernel[0]), range(self.kernel[1])))

    def pad_input(self, x, scratch: Scratch, fill: float):
        """``x`` inside a border of ``fill`` (``x`` itself when there is no padding).

        The border of the reused buffer is written once, when it is allocated.
        """
        if not any(self.pad):
            return x
        top, _, left, _ = self.pad
        (h, w), (hp, wp) = self.in_hw, self.padded_hw
        padded = scratch.get("padded", (x.shape[0], hp, wp) + x.shape[3:], x.dtype, fill)
        padded[:, top:top + h, left:left + w] = x
        return padded

    def pad_into(self, x, padded, fill: float):
        """Writes ``x`` inside a border of ``fill`` into ``padded`` (N, Hp, Wp, C), border
        included, so the buffer may hold anything before; returns it."""
        top, _, left, _ = self.pad
        h, w = self.in_hw
        padded[:, :top] = fill
        padded[:, top + h:] = fill
        padded[:, top:top + h, :left] = fill
        padded[:, top:top + h, left + w:] = fill
        padded[:, top:top + h, left:left + w] = x
        return padded

    def unpad(self, padded):
        top, _, left, _ = self.pad
        h, w = self.in_hw
        return padded[:, top:top + h, left:left + w]

    def at(self, padded, i: int, j: int):
        """The input pixels under kernel offset (i, j), for every output pixel: (N, Ho, Wo, ...)."""
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out_hw
        return padded[:, i * dh:i * dh + sh * (ho - 1) + 1:sh, j * dw:j * dw + sw * (wo - 1) + 1:sw]

    def clipped(self, i: int, j: int):
        """Where kernel offset (i, j) reads the unpadded input: ``(out_rows, out_cols, in_rows,
        in_cols)`` slices, output pixels whose (i, j) tap falls on padding left out; None when
        every tap of this offset falls on padding."""
        pieces = []
        for axis, offset in ((0, i), (1, j)):
            stride, size, out = self.stride[axis], self.in_hw[axis], self.out_hw[axis]
            first = offset * self.dilation[axis] - self.pad[2 * axis]  # input index of output 0
            lo = max(0, -(first // stride))
            hi = min(out, (size - 1 - first) // stride + 1)
            if hi <= lo:
                return None
            start = lo * stride + first
            pieces.append((slice(lo, hi), slice(start, start + (hi - lo - 1) * stride + 1, stride)))
        (out_rows, in_rows), (out_cols, in_cols) = pieces
        return out_rows, out_cols, in_rows, in_cols

    def taps(self, padded):
        """im2col transposed, as a strided view: (kh, kw, C, N, Ho, Wo), one row per kernel
        tap and channel (runs of Wo pixels, where ``columns`` has runs of C values)."""
        as_strided = get_array_module(padded).lib.stride_tricks.as_strided
        s_n, s_h, s_w, s_c = padded.strides
        (sh, sw), (dh, dw) = self.stride, self.dilation
        shape = self.kernel + padded.shape[3:] + padded.shape[:1] + self.out_hw
        strides = (s_h * dh, s_w * dw, s_c, s_n, s_h * sh, s_w * sw)
        return as_strided(padded, shape=shape, strides=strides)

    def columns(self, padded, groups: int):
        """im2col as a strided view, no copy: (groups, N, Ho, Wo, kh, kw, C/groups)."""
        as_strided = get_array_module(padded).lib.stride_tricks.as_strided
        n, _, _, c = padded.shape
        s_n, s_h, s_w, s_c = padded.strides
        (sh, sw), (dh, dw) = self.stride, self.dilation
        shape = (groups, n) + self.out_hw + self.kernel + (c // groups,)
        strides = (c // groups * s_c, s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c)
        return as_strided(padded, shape=shape, strides=strides)
