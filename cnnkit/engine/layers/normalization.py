"""Batch normalization and AlexNet's local response normalization.

Both act along the last axis, which in NHWC is the channel axis for a spatial input and the
neuron axis for a flat one, so one code path serves both kinds of input.
"""

from __future__ import annotations

from .base import Layer


class BatchNorm(Layer):
    """Per channel (over N, H, W) or per neuron (over N), PyTorch's conventions.

    Training normalizes with the batch statistics and moves the running ones:
    running = (1 - momentum) * running + momentum * batch, with the unbiased batch variance.
    Evaluation normalizes with the running statistics.
    """

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        c = in_shapes[0].c
        self.eps = node.attrs.get("eps", 1e-5)
        self.momentum = node.attrs.get("momentum", 0.1)
        self.add_param("gamma", (c,), 1.0)
        self.add_param("beta", (c,), 0.0)
        self.state["running_mean"] = xp.zeros((c,), dtype=self.dtype)
        self.state["running_var"] = xp.ones((c,), dtype=self.dtype)

    def forward(self, xs, train):
        x = xs[0]
        rows = x.reshape(-1, x.shape[-1])
        if train:
            if len(rows) == 1:
                raise ValueError(
                    f"{self.node.name}: batch normalization in training needs more than one "
                    "value per channel; a batch of one image of a flat or 1x1 input has "
                    "one (its variance would be 0, as PyTorch also refuses)")
            mean = rows.mean(axis=0)
            centred = rows - mean
            var = (centred * centred).mean(axis=0)
            n, m = rows.shape[0], self.momentum
            self.state["running_mean"] *= 1 - m
            self.state["running_mean"] += m * mean
            self.state["running_var"] *= 1 - m
            self.state["running_var"] += (m * n / (n - 1)) * var
        else:
            centred = rows - self.state["running_mean"]
            var = self.state["running_var"]
        self._batch_stats = train
        self._inv_std = 1 / self.xp.sqrt(var + self.eps)
        self._x_hat = centred * self._inv_std
        return (self._x_hat * self.params["gamma"] + self.params["beta"]).reshape(x.shape)

    def backward(self, dy):
        rows = dy.reshape(self._x_hat.shape)
        d_beta = rows.sum(axis=0)
        d_gamma = (rows * self._x_hat).sum(axis=0)
        self.grads["beta"][...] = d_beta
        self.grads["gamma"][...] = d_gamma
        scale = self.params["gamma"] * self._inv_std
        if not self._batch_stats:  # the statistics were constants
            return [(rows * scale).reshape(dy.shape)]
        n = rows.shape[0]
        dx = (rows - (d_beta + self._x_hat * d_gamma) * (1 / n)) * scale
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
