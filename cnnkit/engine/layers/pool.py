"""Max, average, global average and global max pooling over NHWC arrays."""

from __future__ import annotations

import numpy

from ...calculator import memory
from .. import parallel
from .base import Layer, Scratch
from .windows import Window, window_gradient, window_maxima


class MaxPool(Layer):
    """Max over each window; padding counts as -inf, so it is never the maximum.

    The gradient goes to the first maximum of each window in scan order (as in PyTorch).
    (Masks are multiplied, not passed to ``where``: NumPy's ``where`` is several times
    slower.)  Non-overlapping windows without padding (2x2 stride 2 and the like) take a
    shorter path: each window pixel is one strided slice of the input, nothing is padded,
    batch chunks run in parallel, and a training forward notes in one byte per output which
    pixel of its window won (``_forward_tiles``), so that backward is one comparison and one
    product per window pixel and neither the input nor the output is kept for it.  Other
    windows find the winners in backward from the kept (padded) input and output.
    """

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        self.window = Window(node.attrs, node.name, in_shapes[0], node.out)
        w = self.window
        self.tiles = w.stride == w.kernel and w.dilation == (1, 1) and not any(w.pad)
        self.scratch = Scratch(xp)
        self._winner = None  # the tiles path's winning pixel of each window (training)
        self.relu = None  # the ReLU before it, if the Model lets this pool apply it
        self._x = None

    def forward(self, xs, train):
        if self.tiles:
            return self._forward_tiles(xs[0], train)
        window = self.window
        self._padded = padded = window.pad_input(xs[0], self.scratch, -numpy.inf)
        offsets = window.offsets
        self._y = window.at(padded, *offsets[0]).copy()
        for i, j in offsets[1:]:
            self.xp.maximum(self._y, window.at(padded, i, j), out=self._y)
        return self._y

    def backward(self, dy):
        if self.tiles:
            return [self._backward_tiles(dy)]
        xp, window, padded, y = self.xp, self.window, self._padded, self._y
        claimed = xp.zeros(y.shape, bool)
        d_padded = xp.zeros(padded.shape, dy.dtype)
        for i, j in window.offsets:  # in scan order, so a tie goes to its first pixel
            takes = xp.greater(window.at(padded, i, j) == y, claimed)  # a maximum, unclaimed
            window.at(d_padded, i, j)[...] += dy * takes
            claimed |= takes
        return [window.unpad(d_padded)]

    def _tile(self, x, i: int, j: int):
        """Input pixel (i, j) of every window, when the windows tile the input."""
        (ho, wo), (kh, kw) = self.window.out_hw, self.window.kernel
        return x[:, i:ho * kh:kh, j:wo * kw:kw]

    def _forward_tiles(self, x, train: bool):
        """The maxima, and in training the index (in scan order) of each window's winning
        pixel: the last pixel larger than all before it, which is the first maximum.  Found
        while the maximum is taken, it costs a comparison and two byte-sized passes per
        pixel; finding it in backward from the input and output instead took four passes
        over float arrays per pixel and made M1's pooling twice as slow."""
        xp, offsets = self.xp, self.window.offsets
        y = xp.empty((x.shape[0],) + self.window.out_hw + x.shape[3:], x.dtype)
        index_type = f"uint{8 * memory.winner_bytes(len(offsets))}"  # as the estimate counts
        winner = xp.empty(y.shape, index_type) if train else None
        apply_relu = self.relu is not None and self.relu.in_place

        def work(rows: slice, worker: int) -> None:
            window_maxima([self._tile(x[rows], i, j) for i, j in offsets], y[rows], xp,
                          None if winner is None else winner[rows])
            if apply_relu:  # the winners are those of the ReLU's output too, or masked by it
                xp.maximum(y[rows], 0, out=y[rows])

        parallel.map_chunks(work, len(x), xp, size=x.size)
        # an evaluating forward keeps its input instead, for the rare backward that follows
        # (gradients of an evaluating model, as for a saliency map)
        self._winner, self._x = winner, None if train else x
        return y

    def _backward_tiles(self, dy):
        if self._winner is None:  # the last forward was an evaluating one: find the winners
            self._forward_tiles(self._x, True)
        xp, winner = self.xp, self._winner
        dx = xp.empty((len(dy),) + self.window.in_hw + dy.shape[3:], dy.dtype)

        def work(rows: slice, worker: int) -> None:
            window_gradient(dy[rows], winner[rows], dx[rows], self.window.kernel, xp)

        parallel.map_chunks(work, len(dy), xp, size=dy.size)
        return dx


class AvgPool(Layer):
    """Mean over each window, written padding counted as zeros (PyTorch's and Caffe's
    count_include_pad): the divisor is kh*kw, except where a window reaches into the
    overhang of ceil rounding, which is left out; with count_pad=False a window divides
    by the image pixels under it alone, so windows shrink at the border (``_scale``)."""

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        self.window = Window(node.attrs, node.name, in_shapes[0], node.out)
        self.scratch = Scratch(xp)
        self.scale = self._scale(node.attrs.get("overhang", (0, 0)),
                                 node.attrs.get("count_pad", True))

    def _scale(self, overhang: tuple[int, int], count_pad: bool):
        """1/divisor: a number, or (Ho, Wo, 1) when windows differ in what they count."""
        window = self.window
        counts = []
        for axis in (0, 1):  # taps of each window inside the counted stretch of the axis
            k, stride, out = window.kernel[axis], window.stride[axis], window.out_hw[axis]
            before = window.pad[2 * axis]
            start, end = ((0, window.padded_hw[axis] - overhang[axis]) if count_pad else
                          (before, before + window.in_hw[axis]))
            first = stride * numpy.arange(out)
            counts.append(numpy.clip(numpy.minimum(first + k, end) - numpy.maximum(first, start),
                                     0, k))
        divisors = numpy.outer(*counts)[:, :, None]
        if (divisors == len(window.offsets)).all():
            return 1.0 / len(window.offsets)
        return self.xp.asarray(1.0 / divisors, dtype=self.dtype)

    def forward(self, xs, train):
        window = self.window
        padded = window.pad_input(xs[0], self.scratch, 0)
        self._padded_shape = padded.shape
        offsets = window.offsets
        y = window.at(padded, *offsets[0]).copy()
        for i, j in offsets[1:]:
            y += window.at(padded, i, j)
        y *= self.scale
        return y

    def backward(self, dy):
        window = self.window
        share = dy * self.scale
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


class GlobalMaxPool(Layer):
    """Max over H and W, 1-max pooling over time for a sentence CNN: (N, H, W, C) ->
    (N, 1, 1, C).  The gradient goes to the first maximum of each map (as in PyTorch)."""

    def forward(self, xs, train):
        x = xs[0]
        n, h, w, c = x.shape
        self._in_shape = x.shape
        self._first_max = x.reshape(n, h * w, c).argmax(axis=1)  # (N, C)
        return x.max(axis=(1, 2), keepdims=True)

    def backward(self, dy):
        n, h, w, c = self._in_shape
        at_max = self.xp.arange(h * w)[None, :, None] == self._first_max[:, None, :]
        return [(at_max * dy.reshape(n, 1, c)).reshape(self._in_shape)]


def pool(node, in_shapes, xp, dtype, seed=0) -> Layer:
    """The pooling layer for ``node.attrs['mode']``."""
    kinds = {"max": MaxPool, "avg": AvgPool}
    return kinds[node.attrs["mode"]](node, in_shapes, xp, dtype, seed)
