"""The two contenders: one cnnkit Model and the same network in PyTorch, with the same weights.

The PyTorch network comes from the product's translator (``cnnkit.interop.torch_export``),
which also copies the cnnkit model's weights into it, so the two compute the same function
and a first-step loss check proves they run the same network.
Both train with momentum SGD (PyTorch's form) on the logits with softmax cross-entropy.
"""

from __future__ import annotations

import numpy

import cnnkit.engine
from cnnkit.engine import Model
from cnnkit.graph.network import Network

from .common import training_network

LR, MOMENTUM = 0.01, 0.9


def batch_data(network: Network, batch: int, classes: int, seed: int = 0):
    """Random NHWC images and labels (host arrays)."""
    shape = network.input_shape
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((batch, shape.h, shape.w, shape.c)).astype("float32")
    y = rng.integers(0, classes, batch)
    return x, y


def classes(network: Network) -> int:
    return network.nodes[training_network(network)].out.size


class CnnkitStep:
    """One training step (forward, loss, backward, momentum update) of a cnnkit Model, of
    this checkout's engine or of another's (``engine``: its ``cnnkit.engine`` package,
    as ``benchmarks.revisions`` loads it)."""

    def __init__(self, network: Network, batch: int, xp=numpy, seed: int = 0, engine=None):
        self.engine = engine or cnnkit.engine
        self.model = self.engine.Model(network, xp=xp, seed=seed)
        self.optimizer = self.engine.Momentum(self.model.parameters(), lr=LR,
                                              momentum=MOMENTUM)
        x, y = batch_data(network, batch, classes(network))
        self.x, self.y = xp.asarray(x), xp.asarray(y)
        self.xp = xp

    def __call__(self) -> float:
        logits = self.model.forward(self.x, train=True)
        loss, dlogits = self.engine.softmax_cross_entropy(logits, self.y)
        self.model.backward(dlogits, input_grad=False)
        self.optimizer.step()
        return loss

    def infer(self):
        return self.model.forward(self.x, train=False)


class TorchStep:
    """The same step in PyTorch eager mode, NCHW, on ``device`` ("cpu" or "cuda")."""

    def __init__(self, network: Network, batch: int, device: str = "cpu",
                 weights_from: Model | None = None):
        import torch
        import torch.nn.functional as F

        from cnnkit.interop import torch_export

        self.torch, self.F = torch, F
        self.net = torch_export.build_module(network)
        if weights_from is not None:
            torch_export.load_weights(self.net, network, weights_from.state_dict())
        self.net = self.net.to(device)
        self.net.train()
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = batch_data(network, batch, classes(network))
        self.x = torch.from_numpy(numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
        self.y = torch.from_numpy(y).to(device)

    def logits(self):
        return self.net(self.x).flatten(1)

    def __call__(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.logits(), self.y)
        loss.backward()
        self.optimizer.step()
        return loss

    def infer(self):
        self.net.eval()
        try:
            with self.torch.inference_mode():
                return self.logits()
        finally:
            self.net.train()
