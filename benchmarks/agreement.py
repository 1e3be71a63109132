"""Check that cnnkit's engine and PyTorch compute the same thing on the same weights.

For a spec, builds the cnnkit ``Model`` and the torch module of the product's translator
(``cnnkit.interop.torch_export``) in float64, copies cnnkit's weights (and BN gamma, beta and
running statistics) into torch through it, feeds both one random batch (NHWC to cnnkit, NCHW to
torch) and compares, in eval mode and then in train mode:

- the logits (the output before a trailing SOFTMAX),
- the loss (cnnkit's softmax cross-entropy against ``F.cross_entropy``),
- the gradient of the loss w.r.t. every parameter (torch's mapped back to cnnkit's layout),
- the gradient w.r.t. the input batch,
- (train mode) the BN running statistics after the step.

Train mode uses the dropout masks cnnkit drew: each torch ``Dropout`` is replaced by a
module multiplying by the same (already 1/(1-p)-scaled) mask, so networks with dropout are
compared in train mode too.

Every error is relative: ``max|cnnkit - torch| / max|torch|`` over one tensor, torch being
the reference.  A parameter gradient whose reference is at round-off level (a conv bias
right before a train-mode BN gets an exactly-zero gradient in exact arithmetic) is measured
against ``1e-4`` times the largest gradient of the network instead, so round-off on a zero
is not reported as a 100% error.  The "param grad" column is the worst parameter.

Run it from the repository root with a Python that has torch::

    PYTHONPATH=. python3 -m benchmarks.agreement                 # every spec in specs/
    PYTHONPATH=. python3 -m benchmarks.agreement specs/lenet5.txt --batch 8

Big networks (224x224 input) run at their real input size with batch 1 by default (2 if
a BN sees one value per channel and image, which torch cannot train on a batch of one).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import cnnkit
from cnnkit.engine.convert import nchw_to_nhwc, nhwc_to_nchw
from cnnkit.engine.layers import Dropout
from cnnkit.engine.losses import softmax_cross_entropy
from cnnkit.engine.model import Model
from cnnkit.graph.network import Network
from cnnkit.interop import torch_export
from cnnkit.interop.arrays import cnnkit_arrays
from cnnkit.interop.layout import Layout
from cnnkit.interop.names import module_path

from .common import randomize

ROOT = Path(__file__).resolve().parent.parent
BIG_INPUT = 100 * 100  # input pixels from which a network defaults to batch 1
GRAD_FLOOR = 1e-4  # a parameter gradient is measured against at least this x the largest one
MODES = ("eval", "train")


# -- torch side -------------------------------------------------------------------------


class FixedDropout(nn.Module):
    """Dropout with a given mask (already scaled by 1/(1-p)), or the identity without one."""

    def __init__(self):
        super().__init__()
        self.mask = None

    def forward(self, x):
        return x if self.mask is None else x * self.mask


def _to_torch_layout(array: np.ndarray) -> torch.Tensor:
    """An NHWC (or N, D) cnnkit array as a torch tensor in NCHW (or N, D)."""
    if array.ndim == 4:
        array = nhwc_to_nchw(array)
    return torch.from_numpy(np.ascontiguousarray(array))


def _to_cnnkit_layout(tensor: torch.Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """A torch activation (NCHW or N, D) as a cnnkit array of ``shape`` (NHWC or N, D)."""
    array = tensor.detach().numpy()
    if array.ndim == 4:
        array = nchw_to_nhwc(array)
    return np.ascontiguousarray(array).reshape(shape)


def build_torch(network: Network, model: Model) -> nn.Module:
    """The product's torch translation of ``network`` in float64 holding ``model``'s weights
    and BN running statistics, its dropouts replaced by ``FixedDropout``."""
    net = torch_export.build_module(network).double()
    torch_export.load_weights(net, network, model.state_dict())
    for node in network.nodes:
        if node.kind == "dropout":
            parent, _, name = module_path(node).rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, name, FixedDropout())
    return net


def torch_grads(network: Network, net: nn.Module) -> dict[str, np.ndarray]:
    """torch's parameter gradients in cnnkit's layout, under cnnkit's state-dict names."""
    grads = {name: p.grad.numpy() for name, p in net.named_parameters()}
    return cnnkit_arrays(network, grads, Layout(network))


def running_stats(network: Network, net: nn.Module) -> dict[str, np.ndarray]:
    """torch's BN running statistics in cnnkit's order, under cnnkit's state-dict names."""
    buffers = {name: b.numpy() for name, b in net.named_buffers() if "running_" in name}
    return cnnkit_arrays(network, buffers, Layout(network))


# -- comparing --------------------------------------------------------------------------


def relative_error(ours, reference, floor: float = 0.0) -> float:
    """``max|ours - reference| / max(max|reference|, floor)`` (0 for two all-zero tensors)."""
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if ours.shape != reference.shape:
        raise ValueError(f"shapes differ: cnnkit {ours.shape}, torch {reference.shape}")
    diff = float(np.max(np.abs(ours - reference), initial=0.0))
    scale = max(float(np.max(np.abs(reference), initial=0.0)), floor)
    if scale == 0.0:
        return diff
    return diff / scale


@dataclass
class ModeResult:
    """Errors of one mode (eval or train); ``worst_param`` names the worst gradient."""

    forward: float
    loss: float
    param_grad: float
    input_grad: float
    worst_param: str = ""
    state: float = 0.0  # BN running statistics after the step (train mode)


@dataclass
class Agreement:
    name: str
    batch: int
    modes: dict[str, ModeResult] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def worst(self, quantity: str) -> float:
        return max(getattr(m, quantity) for m in self.modes.values())

    @property
    def max_error(self) -> float:
        return max(self.worst(q) for q in ("forward", "loss", "param_grad", "input_grad", "state"))


def _notes(network: Network) -> list[str]:
    """Where the translation differs from a plain reading of the spec."""
    notes = []
    orders = Layout(network).orders
    for node in network.nodes:
        if node.kind == "flatten" and orders[node.index] is not None:
            notes.append(f"{node.name}: cnnkit flattens in (h, w, c) order, torch.flatten in "
                         "(c, h, w); the weights of the FC after it are permuted to match")
    return notes


def _run_mode(network: Network, model: Model, net: nn.Module, x: np.ndarray,
              labels: np.ndarray, train: bool) -> ModeResult:
    # cnnkit first: train mode draws the dropout masks that torch then reuses
    logits = model.forward(x, train=train)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    dx = model.backward(dlogits)
    ours = {name: grad for name, _, grad in model.parameters()}

    orders = Layout(network).orders
    for node, layer in zip(network.nodes, model.layers):
        if isinstance(layer, Dropout):
            mask = getattr(layer, "_mask", None)
            if mask is not None and orders[node.index] is not None:
                mask = mask[:, orders[node.index]]
            dropout = net.get_submodule(module_path(node))
            dropout.mask = None if mask is None else _to_torch_layout(mask)
    net.train(train)
    tx = _to_torch_layout(x).clone().requires_grad_(True)
    tlogits = net(tx)
    tloss = F.cross_entropy(tlogits.reshape(len(x), -1), torch.from_numpy(labels))
    net.zero_grad(set_to_none=True)
    tloss.backward()
    theirs = torch_grads(network, net)

    if set(ours) != set(theirs):
        raise ValueError(f"parameter names differ: {sorted(set(ours) ^ set(theirs))}")
    floor = GRAD_FLOOR * max((float(np.abs(g).max()) for g in theirs.values()), default=0.0)
    errors = {name: relative_error(ours[name], theirs[name], floor) for name in ours}
    worst = max(errors, key=errors.get, default="")
    result = ModeResult(
        forward=relative_error(logits, _to_cnnkit_layout(tlogits, logits.shape)),
        loss=relative_error(loss, tloss.detach().numpy()),
        param_grad=errors.get(worst, 0.0),
        input_grad=relative_error(dx, _to_cnnkit_layout(tx.grad, dx.shape)),
        worst_param=worst,
    )
    if train:
        ours_state = model.state_dict()
        result.state = max((relative_error(ours_state[name], stat)
                            for name, stat in running_stats(network, net).items()), default=0.0)
    return result


def default_batch(network: Network) -> int:
    """4, or for big inputs 1 (2 when a BN normalizes single values per image, which torch
    refuses to train on a batch of one)."""
    shape = network.input_shape
    if shape.h * shape.w < BIG_INPUT:
        return 4
    return 2 if any(n.kind == "bn" and n.out.h * n.out.w == 1 for n in network.nodes) else 1


def agreement(spec, batch: int | None = None, seed: int = 0, name: str = "",
              modes=MODES) -> Agreement:
    """Compares cnnkit and torch on ``spec`` (a parsed ``Network`` or a spec file's path)."""
    if isinstance(spec, Network):
        network = spec
    else:
        network = cnnkit.load(spec)
        name = name or Path(spec).stem
    name = name or network.filename
    batch = batch or default_batch(network)
    start = time.perf_counter()

    model = Model(network, dtype="float64", seed=seed)
    randomize(model, seed + 1)
    net = build_torch(network, model)
    rng = np.random.default_rng(seed + 2)
    shape = network.input_shape
    x = rng.standard_normal((batch, shape.h, shape.w, shape.c))
    classes = network.nodes[model.output_index].out.size
    labels = rng.integers(0, classes, batch)

    result = Agreement(name, batch, notes=_notes(network))
    for mode in modes:
        result.modes[mode] = _run_mode(network, model, net, x, labels, train=mode == "train")
    result.seconds = time.perf_counter() - start
    return result


# -- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path,
                        help="spec files (default: every specs/*.txt)")
    parser.add_argument("--batch", type=int, default=None,
                        help="batch size (default: 4; 1 for inputs of 100x100 and more)")
    parser.add_argument("--size", choices=("small", "all"), default="all",
                        help="small: only the networks with inputs under 100x100")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="exit status 1 when an error exceeds this (default 1e-9)")
    args = parser.parse_args(argv)
    paths = args.specs or sorted((ROOT / "specs").glob("*.txt"))

    print("max relative error, max|cnnkit - torch| / max|torch| per tensor, float64; "
          "worst of eval and train mode")
    header = (f"{'spec':<16}{'batch':>6}{'forward':>11}{'loss':>11}{'param grad':>12}"
              f"{'input grad':>12}{'BN stats':>11}{'time s':>8}  worst parameter")
    print(header)
    failed = 0
    for path in paths:
        network = cnnkit.load(path)
        shape = network.input_shape
        if args.size == "small" and shape.h * shape.w >= BIG_INPUT:
            continue
        try:
            r = agreement(network, batch=args.batch, seed=args.seed, name=path.stem)
        except Exception as error:  # e.g. torch's BN refusing a batch of one in train mode
            failed += 1
            print(f"{path.stem:<16}  error: {type(error).__name__}: {error}", flush=True)
            continue
        bad = r.max_error > args.tolerance
        failed += bad
        worst = max(r.modes.values(), key=lambda m: m.param_grad).worst_param
        print(f"{r.name:<16}{r.batch:>6}{r.worst('forward'):>11.1e}{r.worst('loss'):>11.1e}"
              f"{r.worst('param_grad'):>12.1e}{r.worst('input_grad'):>12.1e}"
              f"{r.worst('state'):>11.1e}{r.seconds:>8.1f}  {worst}{'  FAIL' if bad else ''}",
              flush=True)
        for note in r.notes:
            print("    note: " + note)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
