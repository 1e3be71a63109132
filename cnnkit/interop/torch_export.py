"""A cnnkit network as readable PyTorch source, with its weights beside it.

``source`` writes one ``nn.Module`` class: a submodule per layer with weights (or options
that modules hold: pooling, dropout, LRN), grouped into one submodule per block of the
spec (names.py), and a ``forward`` with one line per node in the order of the spec, each
commented with its node index, name and output shape.  Each node's module and expression
come from the kinds table (kinds.py).  Input is NCHW; ``forward`` returns the logits (the
output before a trailing SOFTMAX, which ``probabilities`` applies).

``to_pytorch`` writes the source and an ``.npz`` of PyTorch state-dict arrays that the
generated ``load()`` reads with NumPy (``allow_pickle=False``); exporting needs no torch.
``build_module`` and ``load_weights`` make the same module in memory (benchmarks, tests).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import __version__
from ..graph.network import Network, Node
from .arrays import export_arrays
from .kinds import TorchLayer, kind_of
from .layout import Layout
from .names import block_path, identifier, module_path

DTYPES = {"float32": "torch.float32", "float64": "torch.float64"}
COMMENT_COLUMN = 56


def class_name(network: Network) -> str:
    stem = Path(network.filename).stem if network.filename != "<spec>" else "network"
    words = re.split(r"[^0-9A-Za-z]+", stem)
    return identifier("".join(w[:1].upper() + w[1:] for w in words if w) or "Network")


def _logits_node(network: Network) -> Node:
    """The node ``forward`` returns: the last one, or the one before a trailing SOFTMAX."""
    last = network.nodes[-1]
    return network.nodes[last.inputs[0]] if last.kind == "softmax" and last.inputs else last


def _translations(network: Network, layout: Layout) -> list[TorchLayer]:
    return [kind_of(node, "PyTorch").torch(node, layout) for node in network.nodes]


def _init_lines(network: Network, layers: list[TorchLayer]) -> list[str]:
    lines, containers = [], set()
    for node, layer in zip(network.nodes, layers):
        if layer.module is None:
            continue
        blocks = block_path(node)
        for depth in range(1, len(blocks) + 1):
            container = ".".join(blocks[:depth])
            if container not in containers:
                containers.add(container)
                lines.append(f"self.{container} = nn.Module()  # block {container}")
        path = module_path(node)
        lines.append(f"self.{path} = {layer.module}")
        for name, shape in layer.buffers.items():
            lines.append(f'self.{path}.register_buffer("{name}", torch.empty{shape})')
    return lines


def _forward_lines(network: Network, layers: list[TorchLayer]) -> tuple[list[str], str]:
    """The lines of ``forward`` and the variable it returns.

    Nodes whose expression is their input (INPUT, ID, FLATTEN of a vector) get no line.  A
    value that only the next line reads is ``x``; one read later, or by several nodes
    (branches), keeps its own name, ``x<index>``."""
    nodes, end = network.nodes, _logits_node(network).index
    value = list(range(len(nodes)))  # the node whose output each node's output is
    computed = []
    for node, layer in zip(nodes[:end + 1], layers):
        if node.kind == "input" or layer.call == "{x}":
            value[node.index] = value[node.inputs[0]] if node.inputs else node.index
        else:
            computed.append(node.index)
    readers: dict[int, list[int]] = {}
    for i in computed:
        for j in nodes[i].inputs:
            readers.setdefault(value[j], []).append(i)
    following = dict(zip([0] + computed, computed + [None]))

    def short(v: int) -> bool:
        return readers.get(v, []) in ([following[v]], []) and (
            readers.get(v) or v == value[end])

    names = {v: "x" if short(v) else f"x{v}" for v in [0] + computed}
    lines = [] if names[0] == "x" else [f"{names[0]} = x"]
    for i in computed:
        node, layer = nodes[i], layers[i]
        xs = [names[value[j]] for j in node.inputs]
        code = layer.call.format(m=f"self.{module_path(node)}", x=xs[0], xs=", ".join(xs),
                                 sum=" + ".join(xs))
        line = f"{names[i]} = {code}"
        lines.append(f"{line.ljust(COMMENT_COLUMN)}  # {i} {node.name}: {node.out}")
    return lines, names[value[end]]


def source(network: Network, weights_file: str = "", dtype: str = "float32") -> str:
    """The Python source of a module computing ``network``; its ``load()`` reads
    ``weights_file`` (a name beside the source file) when one is given."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype}")
    layout = Layout(network)
    layers = _translations(network, layout)
    name, shape = class_name(network), network.input_shape
    init = _init_lines(network, layers) or ["pass"]
    forward, result = _forward_lines(network, layers)
    logits = _logits_node(network)
    quoted = network.source.strip().replace("\\", "\\\\").replace('"""', '\\"""')
    spec = "\n".join("    " + line if line.strip() else "" for line in quoted.splitlines())
    text = [
        f'"""{Path(network.filename).name}, exported by cnnkit {__version__}.',
        "",
        f"Input: NCHW images (N, {shape.c}, {shape.h}, {shape.w}), what cnnkit's engine takes in "
        "NHWC, transposed.",
        f"forward returns the logits, {logits.out} per image"
        + (" (the spec's trailing SOFTMAX is in `probabilities`)" if logits is not network.nodes[-1]
           else "") + ".",
        "Attribute n<i>_... is node i of `cnnkit summarize`; blocks of the spec are submodules.",
    ]
    if weights_file:
        text.append(f"`load()` returns the model with the weights of {weights_file} "
                    "(PyTorch state-dict keys and layouts), in eval mode.")
    text += ["", "The spec:", "", spec, '"""', "", ""]
    if weights_file:
        text += ["from pathlib import Path", "", "import numpy as np"]
    text += ["import torch", "import torch.nn.functional as F", "from torch import nn", "", ""]
    if weights_file:
        text += [f'WEIGHTS = Path(__file__).with_name("{weights_file}")',
                 f"DTYPE = {DTYPES[dtype]}", "", ""]
    text += [f"class {name}(nn.Module):", "    def __init__(self):",
             "        super().__init__()"]
    text += ["        " + line for line in init]
    text += ["", "    def forward(self, x):"] + ["        " + line for line in forward]
    text += [f"        return {result}"]
    if logits is not network.nodes[-1]:
        text += ["", "    def probabilities(self, x):", "        return torch.softmax(self(x), dim=1)"]
    if weights_file:
        text += ["", "", f"def load(path=WEIGHTS) -> {name}:",
                 f'    """The {name} with the exported weights, in eval mode."""',
                 f"    model = {name}().to(DTYPE)",
                 "    with np.load(path, allow_pickle=False) as arrays:",
                 "        model.load_state_dict({key: torch.from_numpy(arrays[key]) "
                 "for key in arrays.files})",
                 "    return model.eval()"]
    return "\n".join(text) + "\n"


def build_module(network: Network):
    """An instance of the generated module (parameters uninitialised until ``load_weights``)."""
    namespace: dict = {"__name__": "cnnkit_generated"}
    exec(compile(source(network), f"<cnnkit export of {network.filename}>", "exec"), namespace)
    return namespace[class_name(network)]()


def state_arrays(network: Network, weights, module_keys, dtype="float32") -> dict[str, np.ndarray]:
    """The generated module's state dict (the keys ``module_keys``) from a cnnkit one.
    BatchNorm's step counter, which cnnkit does not keep, is 0."""
    arrays = export_arrays(network, weights, Layout(network), dtype, target="PyTorch")
    arrays.update({key: np.zeros((), np.int64) for key in module_keys
                   if key.endswith(".num_batches_tracked")})
    missing = sorted(set(module_keys) - set(arrays))
    if missing:
        raise KeyError(f"no arrays for {', '.join(missing)}")
    return {key: arrays[key] for key in module_keys}


def load_weights(module, network: Network, weights) -> None:
    """Copies a cnnkit state dict into ``build_module(network)``'s module, in its dtype."""
    import torch

    keys = list(module.state_dict())
    dtype = next(module.parameters()).dtype if keys else torch.float32
    arrays = state_arrays(network, weights, keys, str(dtype).removeprefix("torch."))
    module.load_state_dict({key: torch.from_numpy(array) for key, array in arrays.items()})


def to_pytorch(network: Network, weights, path, *, dtype: str = "float32") -> tuple[Path, Path]:
    """Writes ``path`` (the source) and ``path`` with suffix ``.npz`` (the weights);
    returns both paths."""
    path = Path(path)
    weights_path = path.with_suffix(".npz")
    text = source(network, weights_path.name, dtype)
    layout = Layout(network)
    layers = _translations(network, layout)
    keys = [f"{module_path(node)}.{p.name}" for node in network.nodes
            for p in kind_of(node, "PyTorch").params(node)]
    keys += [f"{module_path(node)}.{name}" for node, layer in zip(network.nodes, layers)
             for name in layer.buffers]
    keys += [f"{module_path(node)}.num_batches_tracked" for node in network.nodes
             if node.kind == "bn"]
    arrays = state_arrays(network, weights, keys, dtype)
    path.write_text(text, encoding="utf-8")
    with open(weights_path, "wb") as handle:
        np.savez(handle, **arrays)
    return path, weights_path
