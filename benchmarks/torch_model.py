"""Cross-check cnnkit's calculator against PyTorch.

Builds a ``torch.nn.Module`` from a parsed cnnkit ``Network`` and counts what PyTorch sees:
parameters (split into conv/FC weights, conv/FC biases and BN gamma+beta), BN buffers,
multiply-accumulates (forward hooks on Conv2d and Linear) and every layer's output shape.

This is a benchmark tool only; cnnkit never imports it.  It needs torch, which cnnkit
does not depend on.  Run it from the repository root with a Python that has torch::

    PYTHONPATH=. python3 benchmarks/torch_model.py            # every spec in specs/
    PYTHONPATH=. python3 benchmarks/torch_model.py specs/vgg16.txt --forward

Without ``--forward`` only parameters are compared (no tensor is allocated beyond the
weights); with it a batch-1 forward pass also checks every layer's output shape and the
hook-counted MACs.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import cnnkit
from cnnkit.graph.network import Network, Node, Shape

# -- layers that need more than a torch.nn module ---------------------------------------


class Pad(nn.Module):
    """Padding (top, bottom, left, right), possibly asymmetric, with a fill value."""

    def __init__(self, pad: tuple[int, int, int, int], value: float = 0.0):
        super().__init__()
        top, bottom, left, right = pad
        self.pad = (left, right, top, bottom)  # F.pad: last dim first
        self.value = value

    def forward(self, x):
        return F.pad(x, self.pad, value=self.value)

    def extra_repr(self) -> str:
        return f"pad={self.pad}, value={self.value}"


class Window(nn.Sequential):
    """A convolution or pooling preceded by its explicit padding (when it has any).

    cnnkit resolves padding to (top, bottom, left, right) with the overhang of ceil rounding
    already added to bottom/right, and rows that floor rounding drops are simply never
    read; padding explicitly and running the window unpadded with floor rounding (torch's
    default) reproduces both exactly.
    """


class Flatten(nn.Module):
    def forward(self, x):
        return torch.flatten(x, 1)


class Softmax(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=1)


class Add(nn.Module):
    def forward(self, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    def forward(self, *xs):
        return torch.cat(xs, dim=1)


# -- the translation --------------------------------------------------------------------


def _window(core: nn.Module, pad: tuple[int, int, int, int], value: float) -> nn.Module:
    if not any(pad):
        return core
    return Window(Pad(pad, value), core)


def _average_pool(a: dict) -> nn.Module:
    """Written padding counts in the average as zeros (count_include_pad, AvgPool2d's
    default); ceil overhang does not, which only ceil_mode=True reproduces, and it needs the
    padding as AvgPool2d's own (symmetric, at most half the window)."""
    (top, bottom, left, right), (over_h, over_w) = a["pad"], a.get("overhang", (0, 0))
    if not (over_h or over_w):
        return _window(nn.AvgPool2d(a["kernel"], a["stride"]), a["pad"], 0.0)
    written = (top, bottom - over_h, left, right - over_w)
    if written[0] != written[1] or written[2] != written[3] or \
            2 * top > a["kernel"][0] or 2 * left > a["kernel"][1]:
        raise ValueError(f"no PyTorch pooling averages like this: padding {written} with "
                         "ceil overhang")
    return nn.AvgPool2d(a["kernel"], a["stride"], padding=(top, left), ceil_mode=True)


def layer_module(node: Node, inputs: list[Shape]) -> nn.Module:
    """The torch module computing one cnnkit node (inputs: its input shapes)."""
    a = node.attrs
    kind = node.kind
    if kind == "conv":
        core = nn.Conv2d(inputs[0].c, a["out_channels"], a["kernel"], stride=a["stride"],
                         padding=0, dilation=a["dilation"], groups=a["groups"], bias=a["bias"])
        return _window(core, a["pad"], 0.0)
    if kind == "pool":
        if a["mode"] == "max":
            return _window(nn.MaxPool2d(a["kernel"], a["stride"]), a["pad"], -math.inf)
        return _average_pool(a)
    if kind == "fc":
        return nn.Sequential(Flatten(), nn.Linear(inputs[0].size, a["units"], bias=a["bias"]))
    if kind == "gap":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "flatten":
        return Flatten()
    if kind == "bn":
        if node.out.flat:
            return nn.BatchNorm1d(node.out.c, eps=a["eps"], momentum=a["momentum"])
        return nn.BatchNorm2d(node.out.c, eps=a["eps"], momentum=a["momentum"])
    if kind == "lrn":
        return nn.LocalResponseNorm(a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])
    simple = {
        "id": nn.Identity, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "softmax": Softmax, "add": Add, "concat": Concat,
    }
    if kind in simple:
        return simple[kind]()
    if kind == "lrelu":
        return nn.LeakyReLU(a["alpha"])
    if kind == "dropout":
        return nn.Dropout(a["p"])
    raise ValueError(f"no torch translation for layer kind `{kind}` ({node.name})")


class TorchNetwork(nn.Module):
    """A cnnkit graph run by PyTorch: one module per node, walked in topological order.

    Input is NCHW (torch's layout); cnnkit's H x W x C shape ``(h, w, c)`` corresponds to
    torch's ``(N, c, h, w)``, and a flat vector of length c to ``(N, c)``.
    """

    def __init__(self, network: Network):
        super().__init__()
        self.network = network
        self.inputs = [node.inputs for node in network.nodes]
        self.layers = nn.ModuleList([
            nn.Identity() if node.kind == "input"
            else layer_module(node, [network.nodes[i].out for i in node.inputs])
            for node in network.nodes
        ])

    def forward(self, x, keep: bool = False):
        outputs = []
        for layer, inputs in zip(self.layers, self.inputs):
            x = layer(*[outputs[i] for i in inputs]) if inputs else layer(x)
            outputs.append(x)
        return outputs if keep else outputs[-1]

    def example_input(self, batch: int = 1) -> torch.Tensor:
        shape = self.network.input_shape
        return torch.zeros(batch, shape.c, shape.h, shape.w)


def build(network: Network) -> TorchNetwork:
    return TorchNetwork(network)


# -- counting ---------------------------------------------------------------------------


@dataclass
class ParamCount:
    params: int = 0  # all trainable parameters
    weights: int = 0  # Conv2d/Linear weights
    biases: int = 0  # Conv2d/Linear biases
    other: int = 0  # BN gamma + beta
    state: int = 0  # BN running mean + var (num_batches_tracked not counted)


def count_params(model: nn.Module) -> ParamCount:
    count = ParamCount()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            count.weights += module.weight.numel()
            count.biases += module.bias.numel() if module.bias is not None else 0
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            count.other += module.weight.numel() + module.bias.numel()
            count.state += module.running_mean.numel() + module.running_var.numel()
    count.params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count.params != count.weights + count.biases + count.other:
        raise AssertionError("a parameter belongs to no known module type")
    return count


@dataclass
class ForwardCount:
    macs: int = 0
    per_module: list = field(default_factory=list)  # (module, macs) in call order
    shapes: list = field(default_factory=list)  # per cnnkit node: (h, w, c) or (1, 1, n)


def _macs_hook(record: ForwardCount):
    def hook(module, args, output):
        batch = output.shape[0]
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = kh * kw * module.in_channels // module.groups
            macs = output.numel() // batch * per_output
        else:
            macs = output.numel() // batch * module.in_features
        record.macs += macs
        record.per_module.append((module, macs))

    return hook


def _cnnkit_shape(t: torch.Tensor) -> tuple[int, int, int]:
    if t.dim() == 2:
        return (1, 1, t.shape[1])
    _, c, h, w = t.shape
    return (h, w, c)


@torch.no_grad()
def forward_count(model: TorchNetwork, batch: int = 1) -> ForwardCount:
    """Runs one forward pass (eval mode) and returns per-image MACs and every node's shape."""
    record = ForwardCount()
    handles = [m.register_forward_hook(_macs_hook(record))
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        outputs = model(model.example_input(batch), keep=True)
    finally:
        for handle in handles:
            handle.remove()
    record.shapes = [_cnnkit_shape(t) for t in outputs]
    return record


# -- comparing with cnnkit --------------------------------------------------------------


@dataclass
class Comparison:
    name: str
    cnnkit: dict
    torch: dict
    mismatches: list[str]


def compare(network: Network, forward: bool = True, name: str = "") -> Comparison:
    summary = network.summary()
    model = build(network)
    params = count_params(model)
    ours = dict(params=summary.params, weights=summary.weights, biases=summary.biases,
                other=summary.other_params, state=summary.state)
    theirs = dict(params=params.params, weights=params.weights, biases=params.biases,
                  other=params.other, state=params.state)
    if forward:
        record = forward_count(model)
        ours["macs"] = summary.macs
        theirs["macs"] = record.macs
        ours["output"] = summary.output_shape
        theirs["output"] = record.shapes[-1]
    mismatches = [f"{k}: cnnkit {ours[k]} != torch {theirs[k]}" for k in ours if ours[k] != theirs[k]]
    if forward:
        for row, shape in zip(summary.rows, record.shapes):
            if tuple(row.shape) != shape:
                mismatches.append(f"row {row.index} {row.name}: cnnkit {row.shape} != torch {shape}")
        # per-layer MACs: hooks fire in graph order (one conv/linear per cnnkit node)
        weighted = [r for r in summary.rows if r.kind in ("conv", "fc")]
        for row, (_, macs) in zip(weighted, record.per_module):
            if row.macs != macs:
                mismatches.append(f"row {row.index} {row.name}: MACs cnnkit {row.macs} != torch {macs}")
        if len(weighted) != len(record.per_module):
            mismatches.append(f"{len(weighted)} conv/fc rows but {len(record.per_module)} hooks fired")
    return Comparison(name or network.filename, ours, theirs, mismatches)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:,}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path,
                        help="spec files (default: every specs/*.txt)")
    parser.add_argument("--forward", action="store_true",
                        help="also run a batch-1 forward pass to check shapes and MACs")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    paths = args.specs or sorted((root / "specs").glob("*.txt"))
    failed = 0
    print(f"{'spec':<22}{'params':>14}{'torch params':>14}{'MACs':>16}{'torch MACs':>16}  ok")
    for path in paths:
        result = compare(cnnkit.load(path), forward=args.forward, name=path.stem)
        ok = not result.mismatches
        failed += not ok
        macs = result.cnnkit.get("macs")
        tmacs = result.torch.get("macs")
        print(f"{result.name:<22}{result.cnnkit['params']:>14,}{result.torch['params']:>14,}"
              f"{_fmt(macs):>16}{_fmt(tmacs):>16}  {'yes' if ok else 'NO'}")
        for line in result.mismatches:
            print("    " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
