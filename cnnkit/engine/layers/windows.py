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

    def _pixels(self, padded, pool: tuple[int, int] | None):
        """Shape and strides of the output pixels' axes in a view of ``padded``: (N, Ho, Wo),
        or with ``pool`` windows (ph, pw) tiling the output, (ph, N, Ho // ph, Wo // pw * pw),
        row i of window row a being output row a*ph + i: each row of the windows is then one
        contiguous block (a max pool's maxima over ph whole blocks, then over pw neighbours),
        and the pixels are runs along a row, as in the plain order; pixels that no window
        reads are left out."""
        s_n, s_h, s_w, _ = padded.strides
        (sh, sw), n = self.stride, padded.shape[0]
        if pool is None:
            return (n,) + self.out_hw, (s_n, s_h * sh, s_w * sw)
        (ph, pw), (ho, wo) = pool, self.out_hw
        return (ph, n, ho // ph, wo // pw * pw), (s_h * sh, s_n, s_h * sh * ph, s_w * sw)

    def taps(self, padded, pool: tuple[int, int] | None = None):
        """im2col transposed, as a strided view: (kh, kw, C, N, Ho, Wo), one row per kernel
        tap and channel (runs of Wo pixels, where ``columns`` has runs of C values); the
        pixels' axes as ``_pixels`` orders them for ``pool``."""
        as_strided = get_array_module(padded).lib.stride_tricks.as_strided
        _, s_h, s_w, s_c = padded.strides
        dh, dw = self.dilation
        pixels, pixel_strides = self._pixels(padded, pool)
        shape = self.kernel + padded.shape[3:] + pixels
        strides = (s_h * dh, s_w * dw, s_c) + pixel_strides
        return as_strided(padded, shape=shape, strides=strides)

    def columns(self, padded, groups: int, pool: tuple[int, int] | None = None):
        """im2col as a strided view, no copy: (groups, N, Ho, Wo, kh, kw, C/groups); the
        pixels' axes as ``_pixels`` orders them for ``pool``."""
        as_strided = get_array_module(padded).lib.stride_tricks.as_strided
        c = padded.shape[3]
        _, s_h, s_w, s_c = padded.strides
        dh, dw = self.dilation
        pixels, pixel_strides = self._pixels(padded, pool)
        shape = (groups,) + pixels + self.kernel + (c // groups,)
        strides = (c // groups * s_c,) + pixel_strides + (s_h * dh, s_w * dw, s_c)
        return as_strided(padded, shape=shape, strides=strides)


def window_maxima(pixels, out, xp, winner=None) -> None:
    """Writes into ``out`` the element-wise maximum of the arrays ``pixels``, each one pixel
    of every max-pool window in scan order (a pool's strided slices, ``Window._pixels``'
    blocks of rows, Winograd's blocks), and into ``winner``, if given, the index of each
    window's first maximum: the last pixel larger than all before it, found while the
    maximum is taken (a comparison and two byte-sized passes per pixel)."""
    if len(pixels) == 1:
        out[...] = pixels[0]
    if winner is not None:
        winner[...] = 0
        larger, index = xp.empty(out.shape, bool), xp.empty(out.shape, winner.dtype)
    for k in range(1, len(pixels)):
        so_far = pixels[0] if k == 1 else out
        if winner is not None:  # strictly larger: a later tie is not the first
            xp.greater(pixels[k], so_far, out=larger)
            xp.multiply(larger, winner.dtype.type(k), out=index)
            xp.maximum(winner, index, out=winner)
        xp.maximum(so_far, pixels[k], out=out)


def window_gradient(dy, winner, dx, kernel: tuple[int, int], xp) -> None:
    """The gradient of ``window_maxima`` for windows of ``kernel`` that tile ``dx`` (N, H, W,
    C) from its top left, as a tiling max pool's do: ``dy`` (N, H // kh, W // kw, C) where
    a pixel won its window (``winner``, in scan order; kh*kw or more gives no pixel
    anything), else 0, and 0 in the rows and columns no window reads (floor rounding)."""
    (kh, kw), (ho, wo) = kernel, dy.shape[1:3]
    dx[:, ho * kh:] = 0
    dx[:, :ho * kh, wo * kw:] = 0
    takes = xp.empty(winner.shape, bool)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        xp.multiply(dy, xp.equal(winner, k, out=takes),
                    out=dx[:, i:ho * kh:kh, j:wo * kw:kw])
