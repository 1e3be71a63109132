"""FC -> CONV conversion (CS231n): a run's network made fully convolutional, so that one
forward pass over an image larger than the input slides the original network across it.

An FC layer reading an HxWxC volume is a CONV{H}x{W}-N with no padding: its filter is the
whole volume, and its weights are the FC's (h, w, c)-ordered rows reshaped to
(H, W, C, N); an FC reading a vector (the output of another FC) is a CONV1-N; a FLATTEN
becomes ID.  At the trained size every layer computes the same numbers as before.  The
spec is rewritten in place of each layer's own text (its span), so its blocks, repeats
and comments stay as they were.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..graph.build import parse
from ..graph.network import Network, Node, Shape
from .rundir import RunDirectory, RunError, save_arrays

# kinds that compute the same values on a flat vector and on a 1x1xC (or any) volume of it
LAYOUT_FREE = ("fc", "flatten", "id", "relu", "lrelu", "tanh", "sigmoid", "dropout")
COPIED = ("config", "normalization", "classes", "metrics_jsonl", "metrics_csv")


def _volume(network: Network, node: Node) -> Shape:
    """What ``node`` outputs once FLATTENs pass volumes through and FCs give 1x1xN."""
    if node.kind == "fc":
        return Shape(1, 1, node.attrs["units"])
    if node.kind in LAYOUT_FREE and node.inputs and node.out.flat:
        return _volume(network, network.nodes[node.inputs[0]])
    return node.out


def _replacement(network: Network, node: Node) -> str | None:
    """The text that takes the place of ``node``'s keyword in the spec, or None."""
    if node.kind == "flatten":
        return "ID"
    source = _volume(network, network.nodes[node.inputs[0]]) if node.inputs else node.out
    if node.kind == "fc":
        return f"CONV{source.h}x{source.w}-{node.attrs['units']}"
    if node.out.flat and source.h * source.w > 1 and node.kind not in LAYOUT_FREE:
        raise RunError(f"{node.name} (node {node.index}) works on a flattened volume, which "
                       "a fully convolutional network keeps as a volume; only FC, DROPOUT "
                       "and activations may read a FLATTEN")
    return None


def fc_to_conv_spec(network: Network) -> str:
    """The spec of ``network`` with every FC written as the CONV it equals (and FLATTEN as
    ID).  A keyword that several layers share (a block or repeat) must convert alike."""
    edits: dict[tuple[int, int], tuple[int, str, bool]] = {}  # (line, col): (length, text, fc)
    for node in network.nodes:
        text = _replacement(network, node)
        if text is None:
            continue
        word_length = len(node.name.rsplit("/", 1)[-1])
        where = (node.span.line, node.span.col)
        if edits.get(where, (word_length, text, node.kind == "fc"))[1] != text:
            raise RunError(f"{node.name} (line {node.span.line}) reads volumes of different "
                           "sizes where the spec uses it; write its uses out to convert it")
        edits[where] = (word_length, text, node.kind == "fc")
    lines = network.source.split("\n")
    for (line, col), (length, text, fc) in sorted(edits.items(), reverse=True):
        row = lines[line - 1]
        after = row[col - 1 + length:]
        if fc:  # the CONV's default padding would grow the input: a filter sees all of it
            opened = after.lstrip().startswith("(")
            after = (after.replace("(", "(pad=0, ", 1) if opened else "(pad=0)" + after)
        lines[line - 1] = row[:col - 1] + text + after
    return "\n".join(lines)


def fc_to_conv_weights(network: Network, converted: Network, weights) -> dict[str, np.ndarray]:
    """``weights`` (a cnnkit state dict of ``network``) under ``converted``'s names, every
    FC weight matrix reshaped to the CONV filters it becomes."""
    arrays = {}
    for key, array in weights.items():
        index, _, path = key.partition(":")
        old, new = network.nodes[int(index)], converted.nodes[int(index)]
        param = path.rsplit("/", 1)[-1]
        if old.kind == "fc" and param == "W":
            source = _volume(network, network.nodes[old.inputs[0]])
            array = array.reshape(source.h, source.w, source.c, -1)
        arrays[f"{new.index}:{new.name}/{param}"] = array
    return arrays


def convert_network(network: Network, weights) -> tuple[Network, dict[str, np.ndarray]]:
    """The fully convolutional network of ``network`` and its weights."""
    text = fc_to_conv_spec(network)
    converted = parse(text, filename=network.filename)
    if len(converted.nodes) != len(network.nodes) or any(
            a.out.size != b.out.size for a, b in zip(network.nodes, converted.nodes)):
        raise RunError("the converted spec does not line up with the original layer by layer")
    return converted, fc_to_conv_weights(network, converted, weights)


def convert_run(path, out) -> Path:
    """Writes the fully convolutional run of the run at ``path`` to ``out`` (which must not
    exist): the rewritten spec, its weights (final, and initial if kept), and the run's
    configuration, normalization, classes and metrics as they were."""
    from .predict import load_run

    source, target = RunDirectory(path), RunDirectory(out)
    if target.path.exists():
        raise RunError(f"{target.path} exists; give a new folder with --out")
    trained = load_run(path)
    network = trained.network
    converted, final = convert_network(network, trained.weights("final"))
    target.path.mkdir(parents=True)
    header = (f"# converted by `cnnkit convert --fc-to-conv` from {source.path}: every FC is "
              "the CONV\n# it equals at the trained size, so larger inputs give a map of "
              "scores\n")
    target.spec.write_text(header + converted.source, encoding="utf-8")
    save_arrays(target.weights_final, final)
    if source.weights_init.exists():
        save_arrays(target.weights_init,
                    convert_network(network, trained.weights("init"))[1])
    for name in COPIED:
        if getattr(source, name).exists():
            shutil.copyfile(getattr(source, name), getattr(target, name))
    return target.path
