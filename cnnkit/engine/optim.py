"""Optimizers that update a model's parameters in place.

They work on ``model.parameters()`` triples (name, param, grad).  Weight decay is L2 added to
the gradient, and only for weight matrices (names ending in "/W"): decaying biases and BN's
gamma/beta only fights the normalization.  ``state_dict`` holds the moment estimates as host
arrays, so a run can be saved with ``numpy.savez`` and resumed exactly.
"""

from __future__ import annotations

import numpy

from .backend import get_array_module, to_numpy

BLOCK = 2**18  # values updated at once on the CPU (temporaries of at most 1 MiB in float32)


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
        """One update of every parameter from its current gradient, at ``self.lr``.

        On the CPU a large parameter is updated in blocks of ``BLOCK`` values, so that the
        temporaries of the arithmetic stay small (the same numbers, element by element)."""
        self.steps += 1
        for name, param, grad in self.parameters:
            size = param.size
            block = BLOCK if get_array_module(param) is numpy else size
            flat = [param.reshape(-1), grad.reshape(-1)]
            slots = [self.state[name, slot].reshape(-1) for slot in self.slots]
            for start in range(0, size, block):
                part = slice(start, min(start + block, size))
                p, g = flat[0][part], flat[1][part]
                if self.weight_decay and name.endswith("/W"):
                    g = g + self.weight_decay * p
                self.update(p, g, {slot: array[part] for slot, array in zip(self.slots, slots)})

    def update(self, param, grad, state: dict) -> None:
        """Updates ``param`` in place from ``grad``; ``state`` maps slot names to the
        parameter's slot arrays (all four are flat views of the same elements)."""
        raise NotImplementedError

    def state_dict(self, copy: bool = True) -> dict[str, numpy.ndarray]:
        """The slots and the step count as host arrays (``copy=False``: see Model's)."""
        arrays = {f"{name}/{slot}": to_numpy(value).copy() if copy else to_numpy(value)
                  for (name, slot), value in self.state.items()}
        arrays["steps"] = numpy.array(self.steps)
        return arrays

    def check_state_dict(self, arrays) -> None:
        """Raises ValueError unless ``arrays`` holds this optimizer's slots and step count."""
        for (name, slot), value in self.state.items():
            key = f"{name}/{slot}"
            if key not in arrays or arrays[key].shape != value.shape \
                    or arrays[key].dtype.kind not in "fiu":
                raise ValueError(f"optimizer state does not fit these parameters: {key}")
        steps = arrays.get("steps")
        if steps is None or steps.shape != () or steps.dtype.kind not in "iu" or steps < 0:
            raise ValueError("optimizer state has no valid step count")

    def load_state_dict(self, arrays) -> None:
        arrays = dict(arrays)
        self.check_state_dict(arrays)
        for (name, slot), value in self.state.items():
            value[...] = get_array_module(value).asarray(arrays[f"{name}/{slot}"], value.dtype)
        self.steps = int(arrays["steps"])


class SGD(Optimizer):
    """param -= lr * grad."""

    def update(self, param, grad, state):
        param -= self.lr * grad


class Momentum(Optimizer):
    """Classic (heavy-ball) momentum in PyTorch's form: v = mu*v + grad; param -= lr*v."""

    slots = ("v",)

    def __init__(self, parameters, lr: float, momentum: float = 0.9, weight_decay: float = 0.0):
        super().__init__(parameters, lr, weight_decay)
        self.momentum = momentum

    def update(self, param, grad, state):
        v = state["v"]
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

    def update(self, param, grad, state):
        (b1, b2), t = self.betas, self.steps
        m, v = state["m"], state["v"]
        m *= b1
        m += (1 - b1) * grad
        v *= b2
        v += (1 - b2) * grad * grad
        denom = v ** 0.5
        denom *= 1 / (1 - b2 ** t) ** 0.5
        denom += self.eps
        param -= (self.lr / (1 - b1 ** t)) * m / denom

