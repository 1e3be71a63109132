"""Fully connected layers and flattening; a spatial input is read in (h, w, c) order."""

from __future__ import annotations

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
        x = xs[0]
        self._in_shape = x.shape
        self._x = x.reshape(x.shape[0], -1)
        y = self._x @ self.params["W"]
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, dy):
        self.xp.matmul(self._x.T, dy, out=self.grads["W"])
        if "b" in self.grads:
            self.grads["b"][...] = dy.sum(axis=0)
        return [(dy @ self.params["W"].T).reshape(self._in_shape)]


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C); free for a contiguous NHWC array."""

    def forward(self, xs, train):
        self._in_shape = xs[0].shape
        return xs[0].reshape(xs[0].shape[0], -1)

    def backward(self, dy):
        return [dy.reshape(self._in_shape)]
