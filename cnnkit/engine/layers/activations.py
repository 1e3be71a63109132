"""Element-wise nonlinearities and the softmax."""

from __future__ import annotations

from .. import parallel
from ..backend import get_array_module
from .base import Layer


def softmax(z):
    """Softmax over the last axis, shifted by the maximum so exp never overflows."""
    xp = get_array_module(z)
    e = xp.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


class ReLU(Layer):
    """max(x, 0), in place when the Model says nothing else reads x (``in_place``).

    After a CONV or BN that only it reads, the Model sets ``mask_deferred``: that layer
    applies this one's mask to its output gradient block by block, and ``backward`` passes
    dy on as it is.  Before a tiling max pool that alone reads it, the Model sets
    ``pooled_by``: max(relu(x)) = relu(max(x)), so the pool applies it to its 4x smaller
    output and an in-place forward here leaves x as it is (its mask, x > 0, is the same).
    """

    in_place = False
    mask_deferred = False
    pooled_by = None

    def forward(self, xs, train):
        x, xp = xs[0], self.xp
        if self.pooled_by is not None and self.in_place:
            self._y = x
            return x
        y = x if self.in_place else xp.empty_like(x)

        def work(rows: slice, worker: int) -> None:
            xp.maximum(x[rows], 0, out=y[rows])

        parallel.map_chunks(work, len(x), xp, size=x.size)
        self._y = y
        return y

    def backward(self, dy):
        if self.mask_deferred:
            return [dy]
        xp, y = self.xp, self._y
        dx = xp.empty(dy.shape, xp.result_type(dy, y))

        def work(rows: slice, worker: int) -> None:
            # a mask product: NumPy's where is several times slower
            xp.multiply(dy[rows], y[rows] > 0, out=dx[rows])

        parallel.map_chunks(work, len(dy), xp, size=dy.size)
        return [dx]


class LeakyReLU(Layer):
    def forward(self, xs, train):
        x, alpha = xs[0], self.node.attrs["alpha"]
        self._slope = (x > 0) * x.dtype.type(1 - alpha)
        self._slope += alpha
        return x * self._slope

    def backward(self, dy):
        return [dy * self._slope]


class Tanh(Layer):
    def forward(self, xs, train):
        self._y = self.xp.tanh(xs[0])
        return self._y

    def backward(self, dy):
        return [dy * (1 - self._y * self._y)]


class Sigmoid(Layer):
    """Written through tanh, which cannot overflow for any input."""

    def forward(self, xs, train):
        self._y = 0.5 * (self.xp.tanh(0.5 * xs[0]) + 1)
        return self._y

    def backward(self, dy):
        return [dy * self._y * (1 - self._y)]


class Softmax(Layer):
    """Softmax over channels.  A trailing one is fused into the loss by the Model instead."""

    def forward(self, xs, train):
        self._y = softmax(xs[0])
        return self._y

    def backward(self, dy):
        y = self._y
        return [y * (dy - (dy * y).sum(axis=-1, keepdims=True))]
