"""Batch normalization and AlexNet's local response normalization.

Both act along the last axis, which in NHWC is the channel axis for a spatial input and the
neuron axis for a flat one, so one code path serves both kinds of input.
"""

from __future__ import annotations

import numpy

from .. import parallel
from .base import Layer


class BatchNorm(Layer):
    """Per channel (over N, H, W) or per neuron (over N), PyTorch's conventions.

    Training normalizes with the batch statistics and moves the running ones:
    running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
    Evaluation normalizes with the running statistics.

    The layer keeps its input, not the normalized values: backward rebuilds those block by
    block (and applies the mask of a ReLU that only it feeds, as ``Conv`` does).  Each pass
    reads the batch once, in threads (``parallel.map_chunks``) and in blocks of
    ``BLOCK_VALUES`` (so the temporaries stay in cache): forward sums for the mean, then
    the squared deviations (the two-pass variance, exact where E[x^2] - E[x]^2 would
    cancel), then writes x * a + b with a = gamma / std and b = beta - mean * a; backward
    sums dy and dy * x_hat together, then writes dx.  Partial sums are added in
    chunk order: the result depends only on the batch size and the number of threads.
    Where ranks train together on blocks of each batch (``ranks``, set by
    ``Model.train_in_ranks``), the sums are summed over them as well (synchronized BN):
    each rank normalizes with the whole batch's statistics.
    """

    BLOCK_VALUES = 2**16
    output_mask = None  # the ReLU whose mask backward applies to dy (set by the Model)
    ranks = None  # cnnkit.training.ranks: sums over the ranks, and the batch's total images

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        c = in_shapes[0].c
        self.eps = node.attrs.get("eps", 1e-5)
        self.momentum = node.attrs.get("momentum", 0.1)
        self.add_param("gamma", (c,), 1.0)
        self.add_param("beta", (c,), 0.0)
        self.state["running_mean"] = xp.zeros((c,), dtype=self.dtype)
        self.state["running_var"] = xp.ones((c,), dtype=self.dtype)

    def _blocks(self, chunk: slice):
        """The rows of ``chunk`` in blocks of about ``BLOCK_VALUES`` values (on a GPU, one)."""
        step = chunk.stop - chunk.start
        if self.xp is numpy:
            step = max(1, self.BLOCK_VALUES // self.params["gamma"].size)
        for start in range(chunk.start, chunk.stop, step):
            yield slice(start, min(start + step, chunk.stop))

    def _each_block(self, fn, n: int) -> list:
        """``fn(block)`` over the blocks of ``n`` rows, in threads, summed per thread's chunk;
        the chunks' sums in order (a list; ``fn`` returns an array, or None for none)."""
        def work(chunk: slice, worker: int):
            total = None
            for block in self._blocks(chunk):
                part = fn(block)
                total = part if total is None else total + part
            return total
        return parallel.map_chunks(work, n, self.xp, size=n * self.params["gamma"].size)

    def _total(self, fn, n: int):
        """The sum of ``fn(block)`` over the rows."""
        parts = self._each_block(fn, n)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def _over_ranks(self, total):
        """``total`` summed over the ranks, if any."""
        return total if self.ranks is None else self.ranks.sum(total)

    def forward(self, xs, train):
        x, xp = xs[0], self.xp
        rows = x.reshape(-1, x.shape[-1])
        n = len(rows)
        if train:
            # values per channel, on every rank together
            n_all = n if self.ranks is None else n // len(x) * self.ranks.total
            if n_all == 1:
                raise ValueError(
                    f"{self.node.name}: batch normalization in training needs more than one "
                    "value per channel; a batch of one image of a flat or 1x1 input has "
                    "one (its variance would be 0, as PyTorch also refuses)")
            mean = self._over_ranks(self._total(lambda b: rows[b].sum(axis=0), n)) / n_all

            def squares(b):
                d = rows[b] - mean
                return xp.multiply(d, d, out=d).sum(axis=0)
            var = self._over_ranks(self._total(squares, n)) / n_all
            m = self.momentum
            self.state["running_mean"] *= 1 - m
            self.state["running_mean"] += m * mean
            self.state["running_var"] *= 1 - m
            self.state["running_var"] += (m * n_all / (n_all - 1)) * var
        else:
            mean, var, n_all = self.state["running_mean"], self.state["running_var"], n
        self._batch_stats, self._rows, self._mean, self._n_all = train, rows, mean, n_all
        self._inv_std = 1 / xp.sqrt(var + self.eps)
        scale = self.params["gamma"] * self._inv_std
        shift = self.params["beta"] - mean * scale
        y = xp.empty(rows.shape, xp.result_type(rows, scale))

        def write(b):
            xp.multiply(rows[b], scale, out=y[b])
            y[b] += shift
        self._each_block(write, n)
        return y.reshape(x.shape)

    def _x_hat(self, b):
        """The normalized input of the rows ``b``, rebuilt (a new block-sized array)."""
        x_hat = self._rows[b] - self._mean
        x_hat *= self._inv_std
        return x_hat

    def backward(self, dy):
        xp = self.xp
        rows = dy.reshape(self._rows.shape)
        n = len(rows)
        relu = None if self.output_mask is None else self.output_mask._y.reshape(rows.shape)
        scale = self.params["gamma"] * self._inv_std
        dx = xp.empty(rows.shape, xp.result_type(rows, scale))
        # the gradient of the rows b, through the ReLU whose mask this layer applies: kept
        # in dx between the two passes
        gradient = (lambda b: rows[b]) if relu is None else (lambda b: dx[b])

        def both_sums(b):
            d = rows[b] if relu is None else xp.multiply(rows[b], relu[b] > 0, out=dx[b])
            return xp.stack([d.sum(axis=0), (d * self._x_hat(b)).sum(axis=0)])
        sums = self._total(both_sums, n)
        # this rank's part of gamma's and beta's gradients (the trainer sums those with the
        # other parameters'); dx needs the whole batch's
        self.grads["beta"][...] = sums[0]
        self.grads["gamma"][...] = sums[1]
        sums = self._over_ranks(sums)
        d_beta, d_gamma = sums[0], sums[1]
        if self._batch_stats:  # the mean and variance depend on x too
            per_x_hat, shift = d_gamma * scale / self._n_all, d_beta * scale / self._n_all
        else:  # they were constants
            per_x_hat = shift = None

        def write(b):
            xp.multiply(gradient(b), scale, out=dx[b])
            if per_x_hat is not None:
                x_hat = self._x_hat(b)
                dx[b] -= xp.multiply(x_hat, per_x_hat, out=x_hat)
                dx[b] -= shift
        self._each_block(write, n)
        return [dx.reshape(dy.shape)]


class LRN(Layer):
    """b = a / (k + alpha/size * sum of a^2 over `size` neighbouring channels)^beta.

    The window of channel c runs from c - size//2 to c + (size-1)//2, clipped at the ends,
    as in PyTorch's LocalResponseNorm.
    """

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        a = node.attrs
        self.size, self.alpha, self.beta, self.k = a["size"], a["alpha"], a["beta"], a["k"]
        self.before, self.after = self.size // 2, (self.size - 1) // 2

    def _window_sum(self, a, before: int, after: int):
        """For every channel c, the sum of a over channels c - before .. c + after."""
        c = a.shape[-1]
        padded = self.xp.zeros(a.shape[:-1] + (c + before + after,), a.dtype)
        padded[..., before:before + c] = a
        total = padded[..., :c].copy()
        for shift in range(1, before + after + 1):
            total += padded[..., shift:shift + c]
        return total

    def forward(self, xs, train):
        x = xs[0]
        self._x = x
        self._d = self.k + (self.alpha / self.size) * self._window_sum(x * x, self.before,
                                                                        self.after)
        self._scale = self._d ** -self.beta
        return x * self._scale

    def backward(self, dy):
        x, d, scale = self._x, self._d, self._scale
        # channel c feeds the windows of c - after .. c + before: the transposed window
        spread = self._window_sum(dy * x * scale / d, self.after, self.before)
        return [dy * scale - (2 * self.beta * self.alpha / self.size) * x * spread]
