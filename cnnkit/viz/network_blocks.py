"""From the layer graph to the volumes ``visualize network`` draws: element-wise layers folded
into the box before them, columns and lanes, repeated identical pieces drawn once with
"x N", and (compact mode) every RES or CAT piece as one box.

A *unit* is a stretch of blocks between two points every path passes through: a single
chain block, or a fork with its branches and their merge.  Units are what a network
repeats (``[bottleneck256]*5``), so they are what gets collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ELEMENTWISE = ("relu", "lrelu", "tanh", "sigmoid", "softmax", "dropout", "bn", "lrn", "id")
WEIGHTED = ("conv", "fc")


@dataclass
class Block:
    """A drawn volume: a node, plus the element-wise nodes folded into it (in compact mode,
    every node of a RES or CAT unit, with ``group`` naming it)."""

    id: int
    nodes: list
    inputs: list[int] = field(default_factory=list)
    column: int = 0
    lane: float = 0.0
    group: str = ""
    repeat: int = 1  # how many identical copies of this block's unit follow each other
    unit: int = -1  # id of the first block of its unit, for the "x N" bracket
    # geometry, pixels: ``height`` across the flow, ``depth`` along it, ``slant`` the
    # 3-D offset; ``u`` where the block starts along the flow, ``v`` its lane's centre line
    height: float = 0.0
    depth: float = 0.0
    slant: float = 0.0
    u: float = 0.0
    v: float = 0.0

    @property
    def kind(self) -> str:
        return "group" if self.group else self.nodes[0].kind

    @property
    def shape(self):
        return self.nodes[-1].out

    @property
    def is_vector(self) -> bool:
        s = self.shape
        return s.flat or (s.h == 1 and s.w == 1 and self.kind != "input")

    def label(self) -> list[str]:
        if self.group:
            merge = next(n for n in reversed(self.nodes) if n.kind in ("add", "concat"))
            weighted = sum(n.kind in WEIGHTED for n in self.nodes)
            return [self.group, f"{short_name(merge.name)}, {weighted} conv"]
        lines = [short_name(self.nodes[0].name)]
        folded = [short_name(n.name) for n in self.nodes[1:]]
        if folded:
            lines.append(", ".join(folded))
        return lines


def short_name(name: str) -> str:
    """The layer as written, without its block path ("res2.1/CONV3-64" -> "CONV3-64")."""
    return name.rsplit("/", 1)[-1]


def build_blocks(network, repeats: bool = False, compact: bool = False) -> list[Block]:
    """The drawn volumes in topological order, with columns and lanes assigned; with
    ``repeats``, identical consecutive units drawn once; with ``compact``, also every
    branching unit as a single block."""
    blocks = _fold(network.nodes)
    if repeats or compact:
        blocks = _collapse(blocks, compact)
    _place(blocks)
    return blocks


def _fold(nodes) -> list[Block]:
    consumers: dict[int, int] = {n.index: 0 for n in nodes}
    for node in nodes:
        for i in node.inputs:
            consumers[i] += 1
    blocks: list[Block] = []
    block_of: dict[int, int] = {}
    for node in nodes:
        if node.kind in ELEMENTWISE and len(node.inputs) == 1:
            source = node.inputs[0]
            block = blocks[block_of[source]]
            if (consumers[source] == 1 and block.nodes[-1].index == source
                    and block.kind != "input"):
                block.nodes.append(node)
                block_of[node.index] = block.id
                continue
        block = Block(len(blocks), [node], list(dict.fromkeys(block_of[i] for i in node.inputs)))
        blocks.append(block)
        block_of[node.index] = block.id
    return blocks


def _place(blocks: list[Block]) -> None:
    """Columns by longest path; the branches leaving a block spread around its lane, and a
    merge sits at the mean of its inputs' lanes."""
    followers: dict[int, list[int]] = {b.id: [] for b in blocks}
    for block in blocks:
        block.column = 1 + max((blocks[i].column for i in block.inputs), default=-1)
        if len(block.inputs) == 1:
            followers[block.inputs[0]].append(block.id)
    for block in blocks:
        if len(block.inputs) > 1:
            block.lane = sum(blocks[i].lane for i in block.inputs) / len(block.inputs)
        elif block.inputs:
            source = blocks[block.inputs[0]]
            siblings = followers[source.id]
            block.lane = source.lane + (siblings.index(block.id) - (len(siblings) - 1) / 2)


def units(blocks: list[Block]) -> list[range]:
    """The blocks cut at every block that nothing before it reaches past."""
    furthest = [b.id for b in blocks]
    for b in blocks:
        for i in b.inputs:
            furthest[i] = max(furthest[i], b.id)
    pieces, start, reach = [], 0, 0
    for b in blocks:
        if reach <= b.id:
            pieces.append(range(start, b.id + 1))
            start = b.id + 1
        reach = max(reach, furthest[b.id])
    return pieces


def _signature(blocks: list[Block], unit: range) -> tuple:
    """What makes two units draw the same: their layers, options, shapes and wiring (an
    input from outside the unit by its shape)."""
    return tuple(
        (tuple((short_name(n.name), n.kind, repr(n.attrs), str(n.out)) for n in b.nodes),
         tuple(i - unit.start if i in unit else str(blocks[i].shape) for i in b.inputs))
        for b in (blocks[i] for i in unit))


def _collapse(blocks: list[Block], compact: bool) -> list[Block]:
    pieces = units(blocks)
    kept: list[Block] = []
    new_id: dict[int, int] = {}
    k = 0
    while k < len(pieces):
        signature = _signature(blocks, pieces[k])
        count = 1
        while k + count < len(pieces) and _signature(blocks, pieces[k + count]) == signature:
            count += 1
        members = [blocks[i] for i in pieces[k]]
        if compact and len(members) > 1:
            inside = set(pieces[k])
            outside = [i for b in members for i in b.inputs if i not in inside]
            members = [Block(members[-1].id, [n for b in members for n in b.nodes],
                             list(dict.fromkeys(outside)), group=unit_name(members))]
        first, last = len(kept), len(kept) + len(members) - 1
        for copy in pieces[k:k + count]:  # every copy maps onto the drawn one
            for position, old in enumerate(copy):
                new_id[old] = min(first + position, last)
        for b in members:
            kept.append(Block(len(kept), b.nodes, [new_id[i] for i in b.inputs],
                              group=b.group, repeat=count, unit=first))
        k += count
    return kept


def unit_name(members: list[Block]) -> str:
    """The named block a unit was written as ("layer3.1/bottleneck256.2/..." ->
    "bottleneck256"), else its merge layer ("RES", "CAT")."""
    paths = [n.name.split("/")[:-1] for b in members for n in b.nodes]
    common = paths[0]
    for path in paths[1:]:
        while path[:len(common)] != common:
            common = common[:-1]
    if common:
        return re.sub(r"\.\d+$", "", common[-1])
    return short_name(members[-1].nodes[0].name)
