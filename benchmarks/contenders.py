"""The two contenders: one cnnkit Model and the same network in PyTorch, with the same weights.

The PyTorch network comes from the translator in ``benchmarks/torch_model.py``; the weights
of the cnnkit model are copied into it (``cnnkit.engine.convert`` knows the layouts), so the
two compute the same function and a first-step loss check proves they run the same network.
Both train with momentum SGD (PyTorch's form) on the logits with softmax cross-entropy.
"""

from __future__ import annotations

import numpy

from cnnkit.engine import Model, Momentum, softmax_cross_entropy
from cnnkit.engine.backend import to_numpy
from cnnkit.engine.convert import conv_weight_to_oihw, fc_weight_to_torch
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
    """One training step (forward, loss, backward, momentum update) of a cnnkit Model."""

    def __init__(self, network: Network, batch: int, xp=numpy, seed: int = 0):
        self.model = Model(network, xp=xp, seed=seed)
        self.optimizer = Momentum(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = batch_data(network, batch, classes(network))
        self.x, self.y = xp.asarray(x), xp.asarray(y)
        self.xp = xp

    def __call__(self) -> float:
        logits = self.model.forward(self.x, train=True)
        loss, dlogits = softmax_cross_entropy(logits, self.y)
        self.model.backward(dlogits, input_grad=False)
        self.optimizer.step()
        return loss

    def infer(self):
        return self.model.forward(self.x, train=False)


def copy_weights(model: Model, torch_net, torch) -> None:
    """cnnkit's weights into the translated PyTorch network (conv, FC, BN)."""
    network = model.network
    with torch.no_grad():
        for node, layer, module in zip(network.nodes, model.layers, torch_net.layers):
            if not layer.params:
                continue
            arrays = {k: to_numpy(v) for k, v in layer.params.items()}
            targets = [m for m in module.modules()
                       if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear,
                                         torch.nn.modules.batchnorm._BatchNorm))]
            (target,) = targets
            if node.kind == "conv":
                target.weight.copy_(torch.from_numpy(numpy.ascontiguousarray(
                    conv_weight_to_oihw(arrays["W"]))))
            elif node.kind == "fc":
                in_shape = _flattened_shape(network, node.inputs[0])
                target.weight.copy_(torch.from_numpy(numpy.ascontiguousarray(
                    fc_weight_to_torch(arrays["W"], in_shape))))
            elif node.kind == "bn":
                target.weight.copy_(torch.from_numpy(arrays["gamma"]))
                target.bias.copy_(torch.from_numpy(arrays["beta"]))
                continue
            if "b" in arrays:
                target.bias.copy_(torch.from_numpy(arrays["b"]))


class TorchStep:
    """The same step in PyTorch eager mode, NCHW, on ``device`` ("cpu" or "cuda")."""

    def __init__(self, network: Network, batch: int, device: str = "cpu",
                 weights_from: Model | None = None):
        import torch
        import torch.nn.functional as F

        from . import torch_model

        self.torch, self.F = torch, F
        self.net = torch_model.build(network).to(device)
        if weights_from is not None:
            copy_weights(weights_from, self.net, torch)
        self.net.train()
        self.output = training_network(network)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=LR, momentum=MOMENTUM)
        x, y = batch_data(network, batch, classes(network))
        self.x = torch.from_numpy(numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
        self.y = torch.from_numpy(y).to(device)

    def logits(self):
        outputs = self.net(self.x, keep=True)
        return outputs[self.output].flatten(1)

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


def _flattened_shape(network, index):
    """The volume an FC's input was flattened from: cnnkit flattens in (h, w, c) order and the
    torch translator in (c, h, w), so an FC after FLATTEN (and flat-preserving layers such as
    DROPOUT or BN) needs the spatial shape before the FLATTEN to reorder its weights."""
    node = network.nodes[index]
    while node.out.flat and node.kind != "fc" and node.inputs:
        node = network.nodes[node.inputs[0]]
    return node.out
