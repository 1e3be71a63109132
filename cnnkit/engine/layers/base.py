"""What every layer shares: the forward/backward contract and its parameter bookkeeping."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy

from ...graph.network import Node, Shape


class Layer:
    """The computation of one graph node, on a batch, with its gradients.

    ``params`` are trained and ``grads`` holds their gradients under the same keys, filled in
    place by ``backward`` (so an optimizer can keep references); ``state`` is what is not
    trained but must be saved (BN running statistics).  A layer remembers what its backward
    needs from the last forward, so calls alternate: forward, then backward.
    """

    # False when nothing needs the gradient w.r.t. the inputs (the Model sets it for layers
    # reading the input batch): layers whose input gradient is costly then return None for it
    input_grad: bool = True

    def __init__(self, node: Node, in_shapes: Sequence[Shape], xp=numpy, dtype="float32",
                 seed: int = 0):
        self.node = node
        self.xp = xp
        self.dtype = numpy.dtype(dtype)
        self.params: dict = {}
        self.grads: dict = {}
        self.state: dict = {}

    def add_param(self, key: str, shape: tuple[int, ...], value: float = 0.0) -> None:
        self.params[key] = self.xp.full(shape, value, dtype=self.dtype)
        self.grads[key] = self.xp.zeros(shape, dtype=self.dtype)

    def reseed(self, key: tuple[int, ...]) -> None:
        """Restarts the layer's random generator from ``key``; only random layers have one."""

    def forward(self, xs: list, train: bool):
        raise NotImplementedError

    def backward(self, dy) -> list:
        """One gradient per input of the last forward, given the gradient of its output
        (None for an input whose gradient is not wanted, see ``input_grad``)."""
        raise NotImplementedError


class Scratch:
    """Work arrays a layer reuses from step to step while the batch shape stays the same.

    Only memory that never leaves the layer belongs here; outputs and input gradients are
    fresh arrays, because callers may keep them.
    """

    def __init__(self, xp):
        self.xp = xp
        self._arrays: dict = {}

    def view(self, key: str, shape: tuple[int, ...], dtype, reserve: int = 0):
        """An array of ``shape`` with undefined contents, viewing the flat buffer under ``key``,
        which grows when too small (to at least ``reserve`` bytes, so that a caller knowing
        its largest request grows it once) and is never shrunk: layers that run one after
        another can share it whatever their shapes (the Model gives its convolutions one)."""
        size = math.prod(shape) * numpy.dtype(dtype).itemsize  # (numpy.prod: 5 us a call)
        buffer = self._arrays.get(key)
        if buffer is None or buffer.size < size:
            buffer = self._arrays[key] = self.xp.empty(max(size, reserve), numpy.uint8)
        return buffer[:size].view(dtype).reshape(shape)

    def get(self, key: str, shape: tuple[int, ...], dtype, fill: float | None = None):
        """The array under ``key``; a new one (set to ``fill`` if given) when shapes differ."""
        array = self._arrays.get(key)
        if array is None or array.shape != shape or array.dtype != dtype:
            xp = self.xp
            array = xp.empty(shape, dtype) if fill is None else xp.full(shape, fill, dtype)
            self._arrays[key] = array
        return array
