"""Softmax cross-entropy on logits: the loss and its gradient in one stable pass."""

from __future__ import annotations

from .backend import get_array_module


def softmax_cross_entropy(logits, labels):
    """``(loss, dlogits)``: mean over the batch of -log softmax(logits)[label].

    Working from logits (log-sum-exp after subtracting the row maximum) never takes the log
    of an underflowed probability; the gradient is simply (softmax - onehot) / N.
    ``loss`` is a 0-d array or scalar of the logits' module (``float(loss)`` reads it).
    """
    xp = get_array_module(logits)
    labels = xp.asarray(labels)
    n = logits.shape[0]
    rows = xp.arange(n)
    flat = logits.reshape(n, -1)  # a 1x1xK volume (after GAP) is K logits
    shifted = flat - flat.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    loss = (xp.log(total[:, 0]) - shifted[rows, labels]).mean()
    grad = exp / total
    grad[rows, labels] -= 1
    grad *= 1.0 / n
    return loss, grad.reshape(logits.shape)
