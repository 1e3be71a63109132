"""Optimizers that update a model's parameters in place.

They work on ``model.parameters()`` triples (name, param, grad).  Weight decay is L2 added to
the gradient, and only for weight matrices (names ending in "/W"): decaying biases and BN's
gamma/beta only fights the normalization.  ``state_dict`` holds the moment estimates as host
arrays, so a run can be saved with ``numpy.savez`` and resumed exactly.
"""

from __future__ import annotations

import numpy

from .backend import get_array_module, to_numpy


class Optimizer:
    slots: tuple[str, ...] = ()  # per-parameter arrays the method keeps, e.g. ("v",)

    def __init__(self, parameters, lr: float, weight_decay: float = 0.0):
        self.parameters = list(parameters)
        self.lr = lr
        self.weight_decay = weight_decay
        self.steps = 0
        self.state = {(name, slot): get_array_module(param).zeros_like(param)
                      for name, param, _ in self.parameters for slot in self.slots}

    def step(self) -> None:
        """One update of every parameter from its current gradient, at ``self.lr``."""
        self.steps += 1
        for name, param, grad in self.parameters:
            if self.weight_decay and name.endswith("/W"):
                grad = grad + self.weight_decay * param
            self.update(name, param, grad)

    def update(self, name: str, param, grad) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, numpy.ndarray]:
        arrays = {f"{name}/{slot}": to_numpy(value).copy()
                  for (name, slot), value in self.state.items()}
        arrays["steps"] = numpy.array(self.steps)
        return arrays

    def load_state_dict(self, arrays) -> None:
        arrays = dict(arrays)
        for (name, slot), value in self.state.items():
            key = f"{name}/{slot}"
            if key not in arrays or arrays[key].shape != value.shape:
                raise ValueError(f"optimizer state does not fit these parameters: {key}")
        for (name, slot), value in self.state.items():
            value[...] = get_array_module(value).asarray(arrays[f"{name}/{slot}"], value.dtype)
        self.steps = int(arrays["steps"])


class SGD(Optimizer):
    """param -= lr * grad."""

    def update(self, name, param, grad):
        param -= self.lr * grad


class Momentum(Optimizer):
    """Classic (heavy-ball) momentum in PyTorch's form: v = mu*v + grad; param -= lr*v."""

    slots = ("v",)

    def __init__(self, parameters, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(parameters, lr, weight_decay)
        self.momentum = momentum

    def update(self, name, param, grad):
        v = self.state[name, "v"]
        v *= self.momentum
        v += grad
        param -= self.lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, written as PyTorch computes it."""

    slots = ("m", "v")

    def __init__(self, parameters, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(parameters, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, name, param, grad):
        (b1, b2), t = self.betas, self.steps
        m, v = self.state[name, "m"], self.state[name, "v"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        denom = v ** 0.5
        denom *= 1 / (1 - b2 ** t) ** 0.5
        denom += self.eps
        param -= (self.lr / (1 - b1 ** t)) * m / denom

