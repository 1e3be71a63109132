"""Learning-rate schedules: each returns a function from epoch (0-based) to learning rate."""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int], float]


def constant(base_lr: float) -> Schedule:
    return lambda epoch: base_lr


def step(base_lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """Multiply by ``gamma`` every ``step_size`` epochs."""
    return lambda epoch: base_lr * gamma ** (epoch // step_size)


def cosine(base_lr: float, epochs: int, min_lr: float = 0.0) -> Schedule:
    """Half a cosine from ``base_lr`` at epoch 0 down to ``min_lr`` at epoch ``epochs``."""
    return lambda epoch: min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * epoch / epochs)) / 2
