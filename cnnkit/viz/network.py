"""The architecture as a picture, in the style of the LeNet and AlexNet figures: every volume
a box, drawn left to right.

* A box's height is the volume's H, its slant (depth into the page) its W, and its thickness
  along the flow its C.  Heights and slants share one scale, thicknesses another; a scale
  is linear when its largest size is at most 8 times its smallest, else logarithmic (224
  and 7 pixels, or 3 and 2048 channels, both stay visible).  Vectors (FC, GAP, FLATTEN) are
  thin bars whose height follows their length on a third scale.
* Element-wise layers (ReLU, tanh, BN, dropout, LRN, ...) draw no volume of their own: they
  are folded into the box before them and named in its label ("CONV5-30" / "RELU").
* Branches (RES, CAT) are drawn side by side, one lane per branch; a RES sum is a circle
  with a "+"; an identity shortcut arches over the branch it skips.
* Every box is labelled with its layer and its output shape.

Drawn with matplotlib (Agg) in pixel coordinates, so PNG and SVG come from the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ELEMENTWISE = ("relu", "lrelu", "tanh", "sigmoid", "softmax", "dropout", "bn", "lrn", "id")
COLOURS = {
    "input": "#d9d9d9", "conv": "#9ecae1", "pool": "#fdae6b", "gap": "#fdd0a2",
    "fc": "#a1d99b", "flatten": "#e5e5e5", "concat": "#bcbddc", "add": "#ffffff",
}
OTHER_COLOUR = "#eeeeee"
SPATIAL = (10.0, 110.0)  # box height / slant for the smallest and largest H or W, pixels
DEPTH = (3.0, 48.0)  # box thickness for the fewest and most channels
VECTOR = (16.0, 110.0)  # bar height for the shortest and longest vector
SLANT = 0.35  # the slant's x and y offsets are SLANT * (the W size)
BAR = 6.0  # thickness of a vector bar
RADIUS = 9.0  # the circle of a RES sum
LINEAR_RATIO = 8.0  # sizes within this ratio are scaled linearly, else logarithmically
FONT = 7.5  # label font, points (10.4 pixels at 100 dpi)
LINE = 11.0  # label line height, pixels
CHAR = 5.4  # average label character width, pixels
SPACING = 30.0  # between columns
MARGIN = 16.0
DPI = 100


@dataclass
class Block:
    """A drawn volume: a node, plus the element-wise nodes folded into it."""

    id: int
    nodes: list
    inputs: list[int] = field(default_factory=list)
    column: int = 0
    lane: float = 0.0
    # geometry, pixels: the front face is x..x+depth wide, y-height/2..y+height/2 high
    height: float = 0.0
    depth: float = 0.0
    slant: float = 0.0
    x: float = 0.0
    y: float = 0.0

    @property
    def kind(self) -> str:
        return self.nodes[0].kind

    @property
    def shape(self):
        return self.nodes[-1].out

    @property
    def is_vector(self) -> bool:
        s = self.shape
        return s.flat or (s.h == 1 and s.w == 1 and self.kind != "input")

    @property
    def footprint(self) -> float:
        return 2 * RADIUS if self.kind == "add" else self.depth + self.slant

    def label(self) -> list[str]:
        first = short_name(self.nodes[0].name)
        lines = [first]
        folded = [short_name(n.name) for n in self.nodes[1:]]
        if folded:
            lines.append(", ".join(folded))
        lines.append(str(self.shape))
        return lines


def short_name(name: str) -> str:
    """The layer as written, without its block path ("res2.1/CONV3-64" -> "CONV3-64")."""
    return name.rsplit("/", 1)[-1]


def build_blocks(network) -> list[Block]:
    """The drawn volumes in topological order, with columns and lanes assigned."""
    nodes = network.nodes
    consumers: dict[int, list[int]] = {n.index: [] for n in nodes}
    for node in nodes:
        for i in node.inputs:
            consumers[i].append(node.index)
    blocks: list[Block] = []
    block_of: dict[int, int] = {}
    for node in nodes:
        if node.kind in ELEMENTWISE and len(node.inputs) == 1:
            source = node.inputs[0]
            block = blocks[block_of[source]]
            if (len(consumers[source]) == 1 and block.nodes[-1].index == source
                    and block.kind != "input"):
                block.nodes.append(node)
                block_of[node.index] = block.id
                continue
        inputs = list(dict.fromkeys(block_of[i] for i in node.inputs))
        block = Block(len(blocks), [node], inputs)
        block.column = 1 + max((blocks[i].column for i in inputs), default=-1)
        blocks.append(block)
        block_of[node.index] = block.id
    # lanes: the branches leaving a block spread around its lane; a merge sits at the mean
    followers: dict[int, list[int]] = {b.id: [] for b in blocks}
    for block in blocks:
        if len(block.inputs) == 1:
            followers[block.inputs[0]].append(block.id)
    for block in blocks:
        if len(block.inputs) > 1:
            block.lane = sum(blocks[i].lane for i in block.inputs) / len(block.inputs)
        elif block.inputs:
            source = blocks[block.inputs[0]]
            siblings = followers[source.id]
            k = siblings.index(block.id)
            block.lane = source.lane + (k - (len(siblings) - 1) / 2)
    return blocks


def scaler(values, low: float, high: float):
    """A size -> pixels function: linear up to ``LINEAR_RATIO`` between the extremes, else
    logarithmic, mapping the smallest value to ``low`` and the largest to ``high``."""
    values = [v for v in values if v > 0]
    if not values:
        return lambda v: low
    smallest, largest = min(values), max(values)
    if largest / smallest <= LINEAR_RATIO:
        return lambda v: max(low, high * v / largest)
    span = math.log(largest) - math.log(smallest)
    return lambda v: low + (math.log(max(v, smallest)) - math.log(smallest)) / span * (high - low)


def layout(blocks: list[Block]) -> dict:
    """Sizes every block and places it; returns the picture's extent and lane geometry."""
    spatial = [b for b in blocks if not b.is_vector and b.kind != "add"]
    vectors = [b for b in blocks if b.is_vector and b.kind != "add"]
    side = scaler([v for b in spatial for v in (b.shape.h, b.shape.w)], *SPATIAL)
    thick = scaler([b.shape.c for b in spatial], *DEPTH)
    length = scaler([b.shape.c for b in vectors], *VECTOR)
    for b in blocks:
        if b.kind == "add":
            b.height, b.depth, b.slant = 2 * RADIUS, 2 * RADIUS, 0.0
        elif b.is_vector:
            b.height, b.depth, b.slant = length(b.shape.c), BAR, BAR * SLANT * 2
        else:
            b.height, b.depth = side(b.shape.h), thick(b.shape.c)
            b.slant = SLANT * side(b.shape.w)
    columns = 1 + max(b.column for b in blocks)
    widths = [0.0] * columns
    for b in blocks:
        text = max(len(line) for line in b.label()) * CHAR
        widths[b.column] = max(widths[b.column], b.footprint, text)
    lefts, x = [], MARGIN
    for w in widths:
        lefts.append(x)
        x += w + SPACING
    width = x - SPACING + MARGIN
    top = max(b.height / 2 + b.slant for b in blocks)  # above a lane's centre line
    bottom = max(b.height for b in blocks) / 2  # below it, before the labels
    lines = max(len(b.label()) for b in blocks)
    arch = 14.0 if any(_arches(blocks)) else 0.0
    pitch = top + arch + bottom + 6 + lines * LINE + 14
    lanes = sorted({b.lane for b in blocks})
    lane_min, lane_max = lanes[0], lanes[-1]
    title = 2 * LINE
    height = MARGIN + title + (lane_max - lane_min) * pitch + top + arch + bottom + 6 \
        + lines * LINE + MARGIN
    for b in blocks:
        centre = lefts[b.column] + widths[b.column] / 2
        b.x = centre - b.footprint / 2
        b.y = height - MARGIN - title - arch - top - (b.lane - lane_min) * pitch
    return {"width": width, "height": height, "lefts": lefts, "widths": widths,
            "top": top, "bottom": bottom, "arch": arch, "pitch": pitch}


def _arches(blocks):
    """(source, target) pairs drawn as an arch over the blocks between them on one lane."""
    for b in blocks:
        for i in b.inputs:
            a = blocks[i]
            if a.lane == b.lane and b.column - a.column > 1 and any(
                    c.lane == b.lane and a.column < c.column < b.column for c in blocks):
                yield a, b


def network_figure(network, title: str | None = None):
    """A matplotlib Figure of ``network``; its size in pixels follows the layout."""
    from matplotlib.patches import Circle, FancyArrowPatch, Polygon, Rectangle
    from matplotlib.path import Path as MPath

    from .output import new_figure

    blocks = build_blocks(network)
    geo = layout(blocks)
    figure = new_figure(geo["width"] / DPI, geo["height"] / DPI, dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, geo["width"])
    axes.set_ylim(0, geo["height"])
    axes.set_axis_off()
    line = dict(linewidth=0.7, edgecolor="#333333")
    arches = {}  # (source id, target id) -> level; touching arches alternate levels
    for a, b in sorted(_arches(blocks), key=lambda pair: pair[0].column):
        before = [level for (i, j), level in arches.items() if j == a.id or i == a.id]
        arches[(a.id, b.id)] = 1 - before[-1] if before else 0

    for b in blocks:  # boxes
        colour = COLOURS.get(b.kind, OTHER_COLOUR)
        x0, y0, d, h, s = b.x, b.y - b.height / 2, b.depth, b.height, b.slant
        if b.kind == "add":
            axes.add_patch(Circle((b.x + RADIUS, b.y), RADIUS, facecolor=colour, **line))
            axes.plot([b.x + RADIUS - 5, b.x + RADIUS + 5], [b.y, b.y], color="#333333", lw=1)
            axes.plot([b.x + RADIUS] * 2, [b.y - 5, b.y + 5], color="#333333", lw=1)
            continue
        axes.add_patch(Polygon([(x0, y0 + h), (x0 + d, y0 + h), (x0 + d + s, y0 + h + s),
                                (x0 + s, y0 + h + s)], facecolor=_shade(colour, 1.12), **line))
        axes.add_patch(Polygon([(x0 + d, y0), (x0 + d + s, y0 + s), (x0 + d + s, y0 + h + s),
                                (x0 + d, y0 + h)], facecolor=_shade(colour, 0.85), **line))
        axes.add_patch(Rectangle((x0, y0), d, h, facecolor=colour, **line))

    for b in blocks:  # labels, on one baseline per lane
        centre = geo["lefts"][b.column] + geo["widths"][b.column] / 2
        y = b.y - geo["bottom"] - 6
        for k, text in enumerate(b.label()):
            axes.text(centre, y - k * LINE, text, ha="center", va="top", fontsize=FONT,
                      color="#000000" if k != 1 or len(b.label()) == 2 else "#555555",
                      fontweight="bold" if k == 0 else "normal")

    for b in blocks:  # arrows
        for i in b.inputs:
            a = blocks[i]
            start = (a.x + a.footprint, a.y)
            end = (b.x, b.y)
            if (a.id, b.id) in arches:
                high = b.y + geo["top"] + 4 + 7 * arches[(a.id, b.id)]
                ax_, bx_ = a.x + a.footprint / 2, b.x + b.footprint / 2
                points = [(ax_, a.y + a.height / 2 + a.slant), (ax_, high), (bx_, high),
                          (bx_, b.y + b.height / 2 + b.slant)]
            elif a.lane == b.lane:
                points = [start, end]
            else:
                gap_left = geo["lefts"][b.column] - SPACING / 2
                gap_right = geo["lefts"][a.column] + geo["widths"][a.column] + SPACING / 2
                riser = gap_right if len([c for c in blocks if a.id in c.inputs]) > 1 \
                    else gap_left
                points = [start, (riser, a.y), (riser, b.y), end]
            codes = [MPath.MOVETO] + [MPath.LINETO] * (len(points) - 1)
            axes.add_patch(FancyArrowPatch(path=MPath(points, codes), arrowstyle="-|>",
                                           mutation_scale=8, linewidth=0.8, color="#555555",
                                           shrinkA=0, shrinkB=1))

    if title is None:
        summary = network.summary()
        title = f"{network.filename}: {summary.params:,} parameters, {summary.macs:,} MACs"
    axes.text(MARGIN, geo["height"] - MARGIN, title, ha="left", va="top", fontsize=FONT + 1.5,
              fontweight="bold")
    return figure


def _shade(colour: str, factor: float) -> str:
    """Darker (factor < 1) or lighter (> 1, towards white) for the side and top faces."""
    def shade(v: int) -> int:
        v = v * factor if factor < 1 else v + (255 - v) * (factor - 1) * 2
        return max(0, min(255, round(v)))

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{shade(r):02x}{shade(g):02x}{shade(b):02x}"
