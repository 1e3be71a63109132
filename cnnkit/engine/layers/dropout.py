"""Inverted dropout: scaled at training time so that evaluation is the identity."""

from __future__ import annotations

import numpy

from .base import Layer


class Dropout(Layer):
    """Zeroes each activation with probability p and scales the rest by 1/(1-p).

    Masks come from ``self.rng``, an ``xp.random.Generator`` seeded from a key and this
    node's index (so two dropout layers draw different masks), which makes runs
    reproducible; assigning it fixes the masks.  Where ranks train together on blocks of
    each batch (``ranks``, set by ``Model.train_in_ranks``), each draws the whole batch's
    mask and keeps its rows, so the masks are those of one process.
    """

    ranks = None  # cnnkit.training.ranks: this rank's rows of the batch, and its total

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        self.p = node.attrs["p"]
        self.reseed((seed,))

    def reseed(self, key):
        stream = numpy.random.SeedSequence([*key, self.node.index]).generate_state(1)[0]
        self.rng = self.xp.random.default_rng(int(stream))

    def forward(self, xs, train):
        x = xs[0]
        if not train or self.p == 0:
            self._mask = None
            return x
        if self.ranks is None:
            keep = self.rng.random(x.shape, dtype=x.dtype) >= self.p
        else:
            whole = (self.ranks.total,) + x.shape[1:]
            keep = (self.rng.random(whole, dtype=x.dtype) >= self.p)[self.ranks.rows]
        self._mask = keep * x.dtype.type(1 / (1 - self.p))
        return x * self._mask

    def backward(self, dy):
        return [dy if self._mask is None else dy * self._mask]
