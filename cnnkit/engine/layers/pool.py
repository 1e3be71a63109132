"""Max, average and global average pooling over NHWC arrays."""

from __future__ import annotations

import numpy

from .base import Layer, Scratch
from .windows import Window


class MaxPool(Layer):
    """Max over each window; padding counts as -inf, so it is never the maximum.

    The gradient goes to the first maximum of each window in scan order (as in PyTorch),
    found in backward from the kept input and output.  (Masks are multiplied, not passed to
    ``where``: NumPy's ``where`` is several times slower.)  Non-overlapping windows without
    padding (2x2 stride 2 and the like) are a reshape of the input, and take that path.
    """

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        self.window = Window(node.attrs, node.name, in_shapes[0], node.out)
        w = self.window
        self.tiles = w.stride == w.kernel and w.dilation == (1, 1) and not any(w.pad)
        self.scratch = Scratch(xp)

    def forward(self, xs, train):
        window = self.window
        self._padded = padded = window.pad_input(xs[0], self.scratch, -numpy.inf)
        if self.tiles:
            (ho, wo), (kh, kw) = window.out_hw, window.kernel
            n, _, _, c = padded.shape
            tiles = padded[:, :ho * kh, :wo * kw].reshape(n, ho, kh, wo, kw, c)
            self._y = tiles.max(axis=(2, 4))
        else:
            offsets = window.offsets
            self._y = window.at(padded, *offsets[0]).copy()
            for i, j in offsets[1:]:
                self.xp.maximum(self._y, window.at(padded, i, j), out=self._y)
        return self._y

    def backward(self, dy):
        xp, window, padded, y = self.xp, self.window, self._padded, self._y
        claimed = xp.zeros(y.shape, bool)
        d_padded = xp.zeros(padded.shape, dy.dtype)
        for i, j in window.offsets:  # in scan order, so a tie goes to its first pixel
            takes = xp.greater(window.at(padded, i, j) == y, claimed)  # a maximum, unclaimed
            window.at(d_padded, i, j)[...] += dy * takes
            claimed |= takes
        return [window.unpad(d_padded)]


class AvgPool(Layer):
    """Mean over each window, padding included: the divisor is always kh*kw."""

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        self.window = Window(node.attrs, node.name, in_shapes[0], node.out)
        self.scratch = Scratch(xp)

    def forward(self, xs, train):
        window = self.window
        padded = window.pad_input(xs[0], self.scratch, 0)
        self._padded_shape = padded.shape
        offsets = window.offsets
        y = window.at(padded, *offsets[0]).copy()
        for i, j in offsets[1:]:
            y += window.at(padded, i, j)
        y *= 1.0 / len(offsets)
        return y

    def backward(self, dy):
        window = self.window
        share = dy * (1.0 / len(window.offsets))
        d_padded = self.xp.zeros(self._padded_shape, dy.dtype)
        for i, j in window.offsets:
            window.at(d_padded, i, j)[...] += share
        return [window.unpad(d_padded)]


class GlobalAvgPool(Layer):
    """Mean over H and W: (N, H, W, C) -> (N, 1, 1, C), or (N, C) if the graph calls it flat."""

    def forward(self, xs, train):
        self._in_shape = xs[0].shape
        return xs[0].mean(axis=(1, 2), keepdims=not self.node.out.flat)

    def backward(self, dy):
        n, h, w, c = self._in_shape
        dx = self.xp.empty(self._in_shape, dy.dtype)
        dx[...] = dy.reshape(n, 1, 1, c) * (1.0 / (h * w))
        return [dx]


def pool(node, in_shapes, xp, dtype, seed=0) -> Layer:
    """The pooling layer for ``node.attrs['mode']``."""
    kinds = {"max": MaxPool, "avg": AvgPool}
    return kinds[node.attrs["mode"]](node, in_shapes, xp, dtype, seed)
