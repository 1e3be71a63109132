"""Training-memory estimate, in the terms of the CS231n notes.

    activations   batch * (every new tensor of the forward pass, input included)
    gradients     batch * (the same, input excluded: nothing needs d(loss)/d(input))
    parameters    params * (1 value + 1 gradient + optimizer slots) + BN running stats
    optimizer slots: sgd 0, momentum 1 (velocity), adam 2 (first and second moments)

This is an upper bound of the notes' kind: a framework frees some gradients early.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

DTYPE_BYTES = {"float16": 2, "float32": 4, "float64": 8}
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}


@dataclass(frozen=True)
class MemoryEstimate:
    batch: int
    dtype: str
    optimizer: str
    activation_bytes: int  # forward values kept for backward
    gradient_bytes: int  # gradients of those activations
    parameter_bytes: int  # weights, their gradients, optimizer slots, BN state
    input_bytes: int  # the input batch (part of activation_bytes)

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.gradient_bytes + self.parameter_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes}


def estimate(*, activations: int, input_size: int, params: int, state: int, batch: int,
             dtype: str, optimizer: str) -> MemoryEstimate:
    size = DTYPE_BYTES[dtype]
    copies = 2 + OPTIMIZER_SLOTS[optimizer]
    return MemoryEstimate(
        batch=batch, dtype=dtype, optimizer=optimizer,
        activation_bytes=batch * activations * size,
        gradient_bytes=batch * (activations - input_size) * size,
        parameter_bytes=(params * copies + state) * size,
        input_bytes=batch * input_size * size,
    )


def largest_batch(limit_bytes: int, **kwargs) -> int:
    """The largest batch whose estimate fits ``limit_bytes`` (0 if not even one image)."""
    fixed = estimate(batch=0, **kwargs).total_bytes
    per_image = estimate(batch=1, **kwargs).total_bytes - fixed
    if limit_bytes < fixed + per_image:
        return 0
    return (limit_bytes - fixed) // per_image


UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 2**10, "M": 2**20,
         "G": 2**30}


def parse_bytes(text: str) -> int:
    """``4GB`` (10^9), ``4GiB`` or ``4G`` (2^30), ``512MB``, ``1000000``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise ValueError(f"`{text}` is not a memory size; write e.g. 4GB, 4GiB or 512MB")
    return int(float(match.group(1)) * UNITS[match.group(2).upper()])


def human_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
