"""Cross-check cnnkit's calculator against PyTorch.

Builds the ``torch.nn.Module`` of a parsed cnnkit ``Network`` (the product's translator,
``cnnkit.interop.torch_export``) and counts what PyTorch sees: parameters (split into
conv/FC weights, conv/FC biases and BN gamma+beta), BN buffers, multiply-accumulates
(forward hooks on Conv2d and Linear) and the output shape of every conv and FC layer.

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
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import cnnkit
from cnnkit.graph.network import Network
from cnnkit.interop import torch_export

# -- the translation: the product's (cnnkit.interop.torch_export) -------------------------


def build(network: Network) -> nn.Module:
    """The generated PyTorch module of ``network``, NCHW in, logits out."""
    return torch_export.build_module(network)


def example_input(network: Network, batch: int = 1) -> torch.Tensor:
    shape = network.input_shape
    return torch.zeros(batch, shape.c, shape.h, shape.w)


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
    per_module: list = field(default_factory=list)  # (module, macs, shape) in call order
    output: tuple = ()  # the logits' shape per image, cnnkit's (h, w, c) or (1, 1, n)


def _cnnkit_shape(t: torch.Tensor) -> tuple[int, int, int]:
    if t.dim() == 2:
        return (1, 1, t.shape[1])
    _, c, h, w = t.shape
    return (h, w, c)


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
        record.per_module.append((module, macs, _cnnkit_shape(output)))

    return hook


@torch.no_grad()
def forward_count(model: nn.Module, network: Network, batch: int = 1) -> ForwardCount:
    """Runs one forward pass (eval mode): per-image MACs and every conv/FC output shape."""
    record = ForwardCount()
    handles = [m.register_forward_hook(_macs_hook(record))
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        record.output = _cnnkit_shape(model(example_input(network, batch)))
    finally:
        for handle in handles:
            handle.remove()
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
        record = forward_count(model, network)
        logits = network.nodes[-1].inputs[0] if network.nodes[-1].kind == "softmax" else -1
        ours["macs"] = summary.macs
        theirs["macs"] = record.macs
        ours["output"] = tuple(summary.rows[logits].shape)
        theirs["output"] = record.output
    mismatches = [f"{k}: cnnkit {ours[k]} != torch {theirs[k]}" for k in ours if ours[k] != theirs[k]]
    if forward:
        # per-layer MACs and shapes: hooks fire in graph order (one conv/linear per cnnkit node)
        weighted = [r for r in summary.rows if r.kind in ("conv", "fc")]
        for row, (_, macs, shape) in zip(weighted, record.per_module):
            if row.macs != macs:
                mismatches.append(f"row {row.index} {row.name}: MACs cnnkit {row.macs} != torch {macs}")
            if tuple(row.shape) != shape:
                mismatches.append(f"row {row.index} {row.name}: cnnkit {row.shape} != torch {shape}")
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
