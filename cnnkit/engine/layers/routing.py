"""Layers that only route data: identity, residual sum, channel concatenation."""

from __future__ import annotations

from .base import Layer


class Identity(Layer):
    """INPUT and ID: the output is the input."""

    def forward(self, xs, train):
        return xs[0]

    def backward(self, dy):
        return [dy]


class Add(Layer):
    """Sum of the inputs; the same gradient flows unchanged to each of them."""

    def forward(self, xs, train):
        self._count = len(xs)
        y = xs[0] + xs[1]
        for x in xs[2:]:
            y += x
        return y

    def backward(self, dy):
        return [dy] * self._count


class Concat(Layer):
    """Concatenation along channels (the last axis); the gradient is cut back into pieces."""

    def forward(self, xs, train):
        self._widths = [x.shape[-1] for x in xs]
        return self.xp.concatenate(xs, axis=-1)

    def backward(self, dy):
        pieces, start = [], 0
        for width in self._widths:
            pieces.append(dy[..., start:start + width])
            start += width
        return pieces
