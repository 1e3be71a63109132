"""Fully connected layers and flattening; a spatial input is read in (h, w, c) order."""

from __future__ import annotations

from .. import parallel
from .base import Layer


class FC(Layer):
    """y = x @ W + b with W stored (d_in, units), so neither product needs a transpose copy."""

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        d_in, units = in_shapes[0].size, node.attrs["units"]
        self.add_param("W", (d_in, units))
        if node.attrs.get("bias", True):
            self.add_param("b", (units,))
        self.fans = (d_in, units)

    def forward(self, xs, train):
        x, xp = xs[0], self.xp
        self._in_shape = x.shape
        self._x = x = x.reshape(x.shape[0], -1)
        w, b = self.params["W"], self.params.get("b")
        y = xp.empty((x.shape[0], w.shape[1]), xp.result_type(x, w))

        def work(rows: slice, worker: int) -> None:
            xp.matmul(x[rows], w, out=y[rows])
            if b is not None:
                y[rows] += b

        parallel.map_chunks(work, len(x), xp)
        return y

    def backward(self, dy):
        x, w, xp = self._x, self.params["W"], self.xp
        d_w = self.grads["W"]

        def weight_rows(rows: slice, worker: int) -> None:  # no partial sums to add up
            xp.matmul(x[:, rows].T, dy, out=d_w[rows])

        parallel.map_chunks(weight_rows, len(d_w), xp)
        if "b" in self.grads:
            self.grads["b"][...] = dy.sum(axis=0)
        if not self.input_grad:
            return [None]
        dx = xp.empty(x.shape, xp.result_type(dy, w))

        def input_rows(rows: slice, worker: int) -> None:
            xp.matmul(dy[rows], w.T, out=dx[rows])

        parallel.map_chunks(input_rows, len(dx), xp)
        return [dx.reshape(self._in_shape)]


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C); free for a contiguous NHWC array."""

    def forward(self, xs, train):
        self._in_shape = xs[0].shape
        return xs[0].reshape(xs[0].shape[0], -1)

    def backward(self, dy):
        return [dy.reshape(self._in_shape)]
