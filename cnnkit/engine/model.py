"""The executor: runs a Network's layers forward and backward on NumPy or CuPy arrays."""

from __future__ import annotations

import numpy

# the memory model and the engine agree on these
from ..calculator.memory import OVERWRITABLE, masked_layers, pooled_convolutions, pooled_through
from ..graph.network import Network
from . import heap, parallel
from .backend import to_numpy
from .init import fill_initial_weights
from .layers import make_layer, softmax
from .layers.base import Scratch
from .layers.pool import MaxPool


class Model:
    """A Network with weights: one Layer per node, inputs and outputs in NHWC (or N, D).

    A trailing SOFTMAX node is not run by ``forward``: training uses the logits before it
    with the fused, stable softmax cross-entropy, and ``predict_proba`` applies the softmax.
    """

    def __init__(self, network: Network, xp=numpy, dtype="float32", seed: int = 0,
                 init_std: float | None = None):
        self.network, self.xp, self.dtype = network, xp, numpy.dtype(dtype)
        if xp is numpy:
            heap.keep_freed_blocks()  # a step's arrays are reused, not page-faulted in again
        nodes = network.nodes
        self.layers = [
            make_layer(node, [nodes[i].out for i in node.inputs], xp, self.dtype, seed)
            for node in nodes
        ]
        workspace = Scratch(xp)  # layers run one at a time: their im2col tiles can share memory
        for layer in self.layers:
            if hasattr(layer, "workspace"):
                layer.workspace = workspace
        fill_initial_weights(network, self.layers, seed, init_std)
        trailing_softmax = nodes[-1].kind == "softmax"
        self._run = len(nodes) - 1 if trailing_softmax else len(nodes)
        self.output_index = nodes[-1].inputs[0] if trailing_softmax else len(nodes) - 1
        self._in_place = [layer for node, layer in zip(nodes, self.layers)
                          if node.kind == "relu" and self._overwritable(node.inputs[0])]
        for layer in self._in_place:
            layer.in_place = True
        for masking, relu in masked_layers(network).items():
            self.layers[masking].output_mask = self.layers[relu]
            self.layers[relu].mask_deferred = True
        for relu, pool in self._pooled_relus():
            relu.pooled_by, pool.relu = pool, relu
        self._pooled = pooled_convolutions(network)  # conv -> the pool its tiles are pooled by
        self._pooled_through = pooled_through(network)  # those pools and their ReLUs
        self._unpooled = None  # the input of an evaluating forward that pooled convs' tiles
        self._pooled_backward = False  # the last forward was a pooled training one
        self._input_readers = [layer for node, layer in zip(nodes, self.layers) if 0 in node.inputs]
        # forward lets go of an output after its last reader ran: only what layers keep for
        # backward (and the result) stays in memory
        last_reader = {i: node.index for node in nodes[:self._run] for i in node.inputs}
        self._release = [[i for i, last in last_reader.items()
                          if last == node.index and i != self.output_index] for node in nodes]

    def _pooled_relus(self):
        """(ReLU, max pool) pairs where the ReLU is in place and the pool, a tiling one, alone
        reads it: the pool applies the ReLU to its output, a quarter of the ReLU's input for
        2x2 windows (inference of M1 5% faster, M2 3%, steps 2%; RESULTS.md, 2026-12-04).
        ``activations``, which returns the ReLU's own output, turns in-place ReLUs off and
        with them this."""
        nodes = self.network.nodes
        for node, pool in zip(nodes, self.layers):
            if not (isinstance(pool, MaxPool) and pool.tiles):
                continue
            source, relu = node.inputs[0], self.layers[node.inputs[0]]
            if nodes[source].kind == "relu" and relu in self._in_place and self._readers(source) == 1:
                yield relu, pool

    def _readers(self, index: int) -> int:
        """How many nodes read node ``index``'s output."""
        return sum(index in node.inputs for node in self.network.nodes)

    def _overwritable(self, index: int) -> bool:
        """Whether a ReLU reading node ``index`` may overwrite that node's output: a fresh
        array that no other node reads and that its own layer does not keep for backward."""
        return (self._readers(index) == 1 and index != self.output_index
                and self.network.nodes[index].kind in OVERWRITABLE)

    def train_in_ranks(self, ranks):
        """Trains as one of several ranks, each on its block of every batch
        (``cnnkit.training.ranks``): batch normalization sums its statistics over them and
        dropout keeps its rows of the whole batch's mask, so that the ranks together compute
        what one process computes on the whole batch.  Returns the gradients' bucket: every
        layer's ``grads`` become views into this one flat array (so call this before an
        optimizer takes them), which the ranks sum in place, one message a step."""
        for layer in self.layers:
            if hasattr(layer, "ranks"):
                layer.ranks = ranks
        bucket = self.xp.zeros(sum(grad.size for layer in self.layers
                                   for grad in layer.grads.values()), self.dtype)
        start = 0
        for layer in self.layers:
            for key, grad in layer.grads.items():
                layer.grads[key] = bucket[start:start + grad.size].reshape(grad.shape)
                start += grad.size
        return bucket

    def reseed(self, *key: int) -> None:
        """Restarts the random layers (dropout) from ``key``, e.g. (seed, epoch, step): the masks
        then depend only on where training is, so a resumed run draws the same ones."""
        for layer in self.layers:
            layer.reseed(key)

    def forward(self, x, train: bool = True):
        """The output of the last node (the logits when it is a SOFTMAX) for the batch ``x``.

        A conv that only a tiling max pool reads (through a ReLU or not) pools its own
        tiles (``Conv.pooled_forward``); the ReLU and the pool then do not run, forward or
        backward."""
        return self._forward(x, train, pooled=True)

    def _forward(self, x, train: bool, pooled: bool):
        nodes, layers = self.network.nodes, self.layers
        outputs = [self.xp.asarray(x, dtype=self.dtype)]
        pooled = pooled and bool(self._pooled)
        self._pooled_backward = pooled and train
        # an evaluating pooled conv notes no winners: a backward runs this again unpooled
        self._unpooled = outputs[0] if pooled and not train else None
        done = {}  # the pools' outputs, computed by the convs before them
        with parallel.single_threaded_blas(self.xp):
            for node, layer in zip(nodes[1:self._run], layers[1:self._run]):
                inputs = [outputs[i] for i in node.inputs]
                if pooled and node.index in self._pooled:
                    pool = nodes[self._pooled[node.index]]
                    relu = pool.inputs[0] != node.index
                    done[pool.index] = layer.pooled_forward(inputs[0], train,
                                                            tuple(pool.attrs["kernel"]), relu)
                    outputs.append(None)
                elif pooled and node.index in self._pooled_through:
                    outputs.append(done.pop(node.index, None))  # None for the ReLU
                else:
                    outputs.append(layer.forward(inputs, train))
                for i in self._release[node.index]:
                    outputs[i] = None
        return outputs[self.output_index]

    def activations(self, x) -> list:
        """Every node's output for the batch ``x`` in eval mode, indexed by node index
        (what `cnnkit visualize activations` draws)."""
        nodes, layers = self.network.nodes, self.layers
        outputs = [self.xp.asarray(x, dtype=self.dtype)]
        self._pooled_backward, self._unpooled = False, None  # every layer runs: a plain backward
        for layer in self._in_place:  # every output is returned, so none may be overwritten
            layer.in_place = False
        try:
            with parallel.single_threaded_blas(self.xp):
                for node, layer in zip(nodes[1:], layers[1:]):
                    outputs.append(layer.forward([outputs[i] for i in node.inputs], False))
        finally:
            for layer in self._in_place:
                layer.in_place = True
        return outputs

    def backward(self, dy, input_grad: bool = True):
        """Backpropagates ``dy`` (gradient of the loss w.r.t. ``forward``'s result).

        Fills every layer's ``grads`` and returns the gradient w.r.t. the input batch, or
        None with ``input_grad=False`` (training does not need it, and skipping it saves
        the first layer's col2im).  Gradients of nodes read by several others (RES/CAT
        branches) are summed.
        """
        nodes, layers = self.network.nodes, self.layers
        if self._unpooled is not None:  # gradients of an evaluating model (a saliency map)
            self._forward(self._unpooled, False, pooled=False)
        for layer in self._input_readers:
            layer.input_grad = input_grad
        pending = [None] * len(nodes)
        pending[self.output_index] = dy
        with parallel.single_threaded_blas(self.xp):
            for node in reversed(nodes[1:self._run]):
                dy, pending[node.index] = pending[node.index], None
                if dy is None:  # a node the output does not depend on
                    continue
                if self._pooled_backward and node.index in self._pooled_through:
                    pending[node.inputs[0]] = dy  # the pooled conv takes the pool's gradient
                    continue
                for i, dx in zip(node.inputs, layers[node.index].backward(dy)):
                    if dx is not None:
                        pending[i] = dx if pending[i] is None else pending[i] + dx
        return pending[0] if input_grad else None

    def _named(self, group: str):
        for node, layer in zip(self.network.nodes, self.layers):
            for key, array in getattr(layer, group).items():
                yield f"{node.index}:{node.name}/{key}", layer, key, array

    def parameters(self) -> list[tuple[str, object, object]]:
        """``(name, param, grad)`` for every trainable array, named "index:node name/key"."""
        return [(name, array, layer.grads[key])
                for name, layer, key, array in self._named("params")]

    def state_dict(self, copy: bool = True) -> dict[str, numpy.ndarray]:
        """Parameters and BN running statistics as host arrays, ready for ``numpy.savez``.
        ``copy=False`` hands NumPy arrays over as they are, for a caller that saves them
        at once: a checkpoint then holds no second copy of a large model."""
        return {name: to_numpy(array).copy() if copy else to_numpy(array)
                for group in ("params", "state")
                for name, _, _, array in self._named(group)}

    def check_state_dict(self, arrays) -> None:
        """Raises ValueError unless ``arrays`` holds exactly this model's arrays: every name,
        each with its shape, real and finite values (a file from elsewhere, edited or damaged,
        must not be loaded in part or cast silently)."""
        targets = {name: array for group in ("params", "state")
                   for name, _, _, array in self._named(group)}
        missing = sorted(set(targets) - set(arrays))
        unexpected = sorted(set(arrays) - set(targets))
        wrong = [f"{name}: saved {tuple(arrays[name].shape)}, model {tuple(targets[name].shape)}"
                 for name in targets if name in arrays
                 and tuple(arrays[name].shape) != tuple(targets[name].shape)]
        wrong += [f"{name}: {arrays[name].dtype} values, not real numbers" for name in targets
                  if name in arrays and arrays[name].dtype.kind not in "fiu"]
        if not wrong:
            wrong = [f"{name}: NaN or infinite values" for name in targets
                     if name in arrays and not numpy.isfinite(arrays[name]).all()]
        if missing or unexpected or wrong:
            lines = ([f"missing: {', '.join(missing)}"] if missing else []) + (
                [f"unexpected: {', '.join(unexpected)}"] if unexpected else []) + wrong
            raise ValueError("state dict does not fit this network:\n  " + "\n  ".join(lines))

    def load_state_dict(self, arrays) -> None:
        """Copies ``arrays`` (e.g. an ``npz`` file) into the model, after checking them all
        (``check_state_dict``), so a mismatch changes nothing."""
        arrays = dict(arrays)  # reads an npz file once
        self.check_state_dict(arrays)
        for name, _, _, target in (entry for group in ("params", "state")
                                   for entry in self._named(group)):
            target[...] = self.xp.asarray(arrays[name], dtype=target.dtype)

    def count_parameters(self) -> tuple[int, int]:
        """(trainable numbers, non-trainable state numbers)."""
        return tuple(sum(int(array.size) for *_, array in self._named(group))
                     for group in ("params", "state"))

    def predict_proba(self, x, batch_size: int = 256) -> numpy.ndarray:
        """Class probabilities for the images ``x`` (host or device array), in eval mode, on the
        host; a softmax is applied whether or not the network ends with one."""
        batches = []
        for start in range(0, len(x), batch_size):
            logits = self.forward(x[start:start + batch_size], train=False)
            batches.append(to_numpy(softmax(logits)).reshape(len(logits), -1))  # 1x1xK -> K
        return numpy.concatenate(batches)
