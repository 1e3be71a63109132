"""From a graph of layers to a chain in cnnkit's language: branches recovered as nested
RES[ main | shortcut ] and CAT[ a | b ], identical runs folded into [ ... ]*N, and a RES or
CAT written more than once named as a block.

Every merge (a sum or a join) starts its branches at its immediate dominator, the last
layer that every path from the input to it passes through; walking back from the output,
a layer reached twice lies on two branches that do not rejoin there, which the language
cannot write (a DenseNet-style DAG): that layer is reported.

The elements keep the layer indices they stand for, in the order in which cnnkit's parser
expands the text again (``expansion``): main chain, shortcut, sum; branches in order, join;
every copy of a repeat.  That is how weights find their layers in the parsed network.
"""

from __future__ import annotations

from dataclasses import dataclass

from .onnx_load import OnnxImportError
from .onnx_readers import Layer


@dataclass
class Branches:
    """RES (``kind`` 'add': main, then the shortcut if any) or CAT ('concat')."""

    kind: str
    chains: list[list]
    merge: int  # the index of the sum or join layer


@dataclass
class Repeat:
    copies: list[list]  # identical in text, each with its own layers


@dataclass
class Use:
    name: str
    element: object


def _dominators(layers: list[Layer]) -> list[int | None]:
    """Immediate dominators; layers are in topological order, 0 is the input."""
    idom: list[int | None] = [None]
    depth = [0]

    def common(a: int, b: int) -> int:
        while a != b:
            if depth[a] < depth[b]:
                a, b = b, a
            a = idom[a]
        return a

    for layer in layers[1:]:
        first, *rest = layer.inputs
        for other in rest:
            first = common(first, other)
        idom.append(first)
        depth.append(depth[first] + 1)
    return idom


def recover(layers: list[Layer], output: int) -> list:
    """The chain from the input to ``output``.  ``layers`` gains an ID layer for each
    branch that passes its input through unchanged."""
    idom = _dominators(layers)
    seen: set[int] = set()

    def passthrough(fork: int) -> list:
        layers.append(Layer("id", "ID", (fork,), layers[fork].out, {}, "a branch"))
        idom.append(fork)
        return [len(layers) - 1]

    def chain(start: int, end: int) -> list:
        elements, at = [], end
        while at != start:
            if at in seen or at == 0:
                raise OnnxImportError(
                    f"{layers[at].source}: its output is used by branches that do not rejoin "
                    "in one sum or join, which cnnkit's nested RES[ ] and CAT[ ] cannot write")
            seen.add(at)
            layer = layers[at]
            if layer.kind not in ("add", "concat"):
                elements.append(at)
                at = layer.inputs[0]
                continue
            fork = idom[at]
            chains = [chain(fork, i) for i in layer.inputs]
            if layer.kind == "add" and not chains[0]:
                chains.reverse()  # RES[ f ] is f + x; x + f is the same sum
                layer.inputs = layer.inputs[::-1]
            for i, branch in enumerate(chains):
                if not branch and (layer.kind == "concat" or i == 0):
                    chains[i] = passthrough(fork)
            layer.inputs = tuple(_end(c) if c else fork for c in chains)
            elements.append(Branches(layer.kind, [c for c in chains if c], at))
            at = fork
        return elements[::-1]

    top = chain(0, output)
    unused = [layer for i, layer in enumerate(layers[1:], 1) if i not in seen and
              layer.kind != "id"]
    if unused:
        raise OnnxImportError(f"{unused[0].source}: its output does not reach the network's "
                              "output (a second output?); cnnkit networks have one")
    return top


def _end(chain: list) -> int:
    last = chain[-1]
    return last if isinstance(last, int) else last.merge


# -- text ----------------------------------------------------------------------------------


def render(element, layers: list[Layer]) -> str:
    if isinstance(element, int):
        return layers[element].word
    if isinstance(element, Use):
        return element.name
    if isinstance(element, Repeat):
        return f"[ {chain_text(element.copies[0], layers)} ]*{len(element.copies)}"
    inside = " | ".join(chain_text(c, layers) for c in element.chains)
    return f"{'RES' if element.kind == 'add' else 'CAT'}[ {inside} ]"


def chain_text(elements: list, layers: list[Layer], joiner: str = " -> ") -> str:
    return joiner.join(render(e, layers) for e in elements)


def fold(elements: list, layers: list[Layer]) -> list:
    """Runs of identical elements (or identical groups of them) as repeats, longest
    first, inside branches too."""
    elements = [_fold_inside(e, layers) for e in elements]
    texts = [render(e, layers) for e in elements]
    folded, i = [], 0
    while i < len(elements):
        period, count = 1, 1
        for p in range(1, (len(elements) - i) // 2 + 1):
            k = 1
            while texts[i + k * p:i + (k + 1) * p] == texts[i:i + p]:
                k += 1
            if k > 1 and p * k > period * count:
                period, count = p, k
        if count > 1:
            copies = [elements[i + j * period:i + (j + 1) * period] for j in range(count)]
            folded.append(Repeat([fold(copy, layers) for copy in copies]))
        else:
            folded.append(elements[i])
        i += period * count
    return folded


def _fold_inside(element, layers):
    if isinstance(element, Branches):
        return Branches(element.kind, [fold(c, layers) for c in element.chains], element.merge)
    return element


def name_blocks(elements: list, layers: list[Layer]) -> tuple[list, dict[str, str]]:
    """Each RES or CAT written more than once becomes a block ``block1``, ``block2``, ...;
    returns the chain using them and the definitions."""
    counts: dict[str, int] = {}

    def count(chain):
        for element in chain:
            if isinstance(element, Branches):
                text = render(element, layers)
                counts[text] = counts.get(text, 0) + 1
                for inner in element.chains:
                    count(inner)
            elif isinstance(element, Repeat):
                count(element.copies[0])

    count(elements)
    names: dict[str, str] = {}

    def replace(chain):
        out = []
        for element in chain:
            text = render(element, layers)
            if isinstance(element, Branches) and counts[text] > 1:
                names.setdefault(text, f"block{len(names) + 1}")
                out.append(Use(names[text], element))
            elif isinstance(element, Repeat):
                out.append(Repeat([replace(copy) for copy in element.copies]))
            elif isinstance(element, Branches):
                out.append(Branches(element.kind, [replace(c) for c in element.chains],
                                    element.merge))
            else:
                out.append(element)
        return out

    chain = replace(elements)
    return chain, {name: text for text, name in names.items()}


def expansion(elements: list) -> list[int]:
    """The layer indices in the order the parser creates their nodes."""
    order = []
    for element in elements:
        if isinstance(element, int):
            order.append(element)
        elif isinstance(element, Use):
            order += expansion([element.element])
        elif isinstance(element, Repeat):
            for copy in element.copies:
                order += expansion(copy)
        else:
            for chain in element.chains:
                order += expansion(chain)
            order.append(element.merge)
    return order
