"""The architecture as a picture, in the style of the LeNet and AlexNet figures: every volume
a box, drawn left to right (or top to bottom with ``vertical``).

* A box's height is the volume's H, its slant (depth into the page) its W, and its thickness
  along the flow its C.  Heights and slants share one scale, thicknesses another; a scale
  is linear when its largest size is at most 8 times its smallest, else logarithmic (224
  and 7 pixels, or 3 and 2048 channels, both stay visible).  Vectors (FC, GAP, FLATTEN) are
  thin bars whose height follows their length on a third scale.
* Element-wise layers (ReLU, tanh, BN, dropout, LRN, ...) draw no volume of their own: they
  are folded into the box before them and named in its label ("CONV5-30" / "RELU").
* Branches (RES, CAT) are drawn side by side, one lane per branch; a RES sum is a circle
  with a "+"; an identity shortcut arches over the branch it skips.
* Every arrow carries the shape of the tensor it carries (the last block's arrow leads out
  of the picture).  Identical consecutive pieces (``[bottleneck256]*5``) are drawn once
  under a bracket "x 5"; ``compact`` also draws every RES or CAT piece as one box, at
  smaller scales, so that ResNet-50 fits on one screen.

Drawn with matplotlib (Agg) in pixel coordinates, so PNG and SVG come from the same code.
Layout works in flow coordinates (``u`` along the flow, ``v`` across the lanes, both from
the top left) and one transform puts them on the page either way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import VizError
from .network_blocks import Block, build_blocks, short_name

__all__ = ["Block", "build_blocks", "layout", "network_figure", "short_name"]

COLOURS = {
    "input": "#d9d9d9", "conv": "#9ecae1", "pool": "#fdae6b", "gap": "#fdd0a2",
    "fc": "#a1d99b", "flatten": "#e5e5e5", "concat": "#bcbddc", "add": "#ffffff",
    "group": "#c6b5dc",
}
OTHER_COLOUR = "#eeeeee"
# (smallest, largest) pixels: box height/slant by H or W, thickness by C, bar height by length
SCALES = {False: {"spatial": (10.0, 110.0), "depth": (3.0, 48.0), "vector": (16.0, 110.0)},
          True: {"spatial": (8.0, 44.0), "depth": (3.0, 22.0), "vector": (12.0, 44.0)}}
SLANT = 0.35  # the slant's x and y offsets are SLANT * (the W size)
BAR = 6.0  # thickness of a vector bar
RADIUS = 9.0  # the circle of a RES sum
LINEAR_RATIO = 8.0  # sizes within this ratio are scaled linearly, else logarithmically
FONT = 7.5  # label font, points (10.4 pixels at 100 dpi)
EDGE_FONT = 6.5  # the shapes on the arrows
LINE = 11.0  # label line height, pixels
CHAR = 5.4  # average label character width, pixels
EDGE_CHAR = 5.8
SPACING = 30.0  # between columns, at least
ARCH = 24.0  # room for the identity shortcuts' arches and their shapes
BRACKET = 18.0  # room for an "x N" bracket and its text
MARGIN = 16.0
DPI = 100
MAX_BLOCKS = 1500  # beyond this a picture is wider than matplotlib can render


@dataclass
class Geometry:
    """Where everything goes, in flow coordinates, and the page's size."""

    vertical: bool
    width: float  # of the page, pixels
    height: float
    starts: list[float]  # where each column begins along the flow
    sizes: list[float]  # each column's extent along the flow
    before: float  # room before a lane's centre line (above, or left when vertical)
    after: float  # room after it, up to the labels
    bracket: float  # distance of the "x N" brackets from their lane's centre line
    flow_end: float  # where the outgoing arrow ends

    def page(self, u: float, v: float) -> tuple[float, float]:
        """Flow coordinates to matplotlib's (x right, y up)."""
        return (v, self.height - u) if self.vertical else (u, self.height - v)

    def end(self, column: int) -> float:
        return self.starts[column] + self.sizes[column]


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


def footprint(b: Block) -> float:
    """A block's extent along the flow."""
    return 2 * RADIUS if b.kind == "add" else b.depth + b.slant


def _size_blocks(blocks: list[Block], compact: bool) -> None:
    scales = SCALES[compact]
    spatial = [b for b in blocks if not b.is_vector and b.kind != "add"]
    vectors = [b for b in blocks if b.is_vector and b.kind != "add"]
    side = scaler([v for b in spatial for v in (b.shape.h, b.shape.w)], *scales["spatial"])
    thick = scaler([b.shape.c for b in spatial], *scales["depth"])
    length = scaler([b.shape.c for b in vectors], *scales["vector"])
    for b in blocks:
        if b.kind == "add":
            b.height, b.depth, b.slant = 2 * RADIUS, 2 * RADIUS, 0.0
        elif b.is_vector:
            b.height, b.depth, b.slant = length(b.shape.c), BAR, BAR * SLANT * 2
        else:
            b.height, b.depth = side(b.shape.h), thick(b.shape.c)
            b.slant = SLANT * side(b.shape.w)


def layout(blocks: list[Block], vertical: bool = False, compact: bool = False) -> Geometry:
    """Sizes every block and places it (``u``, ``v``); returns the page geometry."""
    _size_blocks(blocks, compact)
    columns = 1 + max(b.column for b in blocks)
    lines = max(len(b.label()) for b in blocks)
    sizes = [0.0] * columns
    gaps = [SPACING] * columns  # after each column; the last holds the outgoing arrow
    for b in blocks:
        label = lines * LINE if vertical else max(len(t) for t in b.label()) * CHAR
        sizes[b.column] = max(sizes[b.column], footprint(b), label)
        text = LINE + 8 if vertical else len(str(b.shape)) * EDGE_CHAR + 14
        gaps[b.column] = max(gaps[b.column], text)
    title = 2 * LINE
    starts, u = [], MARGIN + (title if vertical else 0.0)
    for size, gap in zip(sizes, gaps):
        starts.append(u)
        u += size + gap
    # across the flow: the slant rises above the box, or leans right of it when vertical
    half = max(b.height / 2 for b in blocks)
    slanted = max(b.height / 2 + b.slant for b in blocks)
    before, after = (half, slanted) if vertical else (slanted, half)
    widest_shape = max(len(str(b.shape)) for b in blocks) * EDGE_CHAR
    arch = (ARCH + (widest_shape if vertical else 0.0)) if any(_arches(blocks)) else 0.0
    bracket = (BRACKET + (14.0 if vertical else 0.0)) if any(b.repeat > 1 for b in blocks) \
        else 0.0
    reserve = arch + bracket
    label = (6 + max(len(t) for b in blocks for t in b.label()) * CHAR if vertical
             else 6 + lines * LINE)
    pitch = reserve + before + after + label + 14
    lanes = sorted({b.lane for b in blocks})
    across = (0.0 if vertical else title) + MARGIN + (lanes[-1] - lanes[0]) * pitch \
        + reserve + before + after + label + MARGIN
    flow_end = u - gaps[-1] + max(gaps[-1], 40.0)
    along = flow_end + MARGIN
    for b in blocks:
        b.u = starts[b.column] + (sizes[b.column] - footprint(b)) / 2
        b.v = (0.0 if vertical else title) + MARGIN + reserve + before \
            + (b.lane - lanes[0]) * pitch
    width, height = (across, along) if vertical else (along, across)
    return Geometry(vertical, width, height, starts, sizes, before, after, before + arch + 6,
                    flow_end)


def _arches(blocks):
    """(source, target) pairs drawn as an arch over the blocks between them on one lane."""
    for b in blocks:
        for i in b.inputs:
            a = blocks[i]
            if a.lane == b.lane and b.column - a.column > 1 and any(
                    c.lane == b.lane and a.column < c.column < b.column for c in blocks):
                yield a, b


def _front(b: Block, geo: Geometry) -> tuple[float, float, float, float]:
    """The box's front face on the page: left, bottom, width, height.  Vertically the slant
    leans up towards the previous block, so the face starts ``slant`` further down."""
    start = b.u + (b.slant if geo.vertical else 0.0)
    corners = [geo.page(start, b.v - b.height / 2), geo.page(start + b.depth, b.v + b.height / 2)]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


@dataclass
class Edge:
    """An arrow in flow coordinates, and where along it its shape is written."""

    points: list[tuple[float, float]]
    at: tuple[float, float]
    shape: object
    arch: bool = False


def _edges(blocks: list[Block], geo: Geometry):
    """Every arrow, its shape written on a stretch that belongs to it alone (clear of the
    target's slant)."""
    levels = {}  # (source id, target id) -> level; touching arches alternate levels
    for a, b in sorted(_arches(blocks), key=lambda pair: pair[0].column):
        before = [level for (i, j), level in levels.items() if j == a.id or i == a.id]
        levels[(a.id, b.id)] = 1 - before[-1] if before else 0
    fans = {b.id: 0 for b in blocks}
    for b in blocks:
        for i in b.inputs:
            fans[i] += 1
    for b in blocks:
        entry = (b.u + (b.slant if geo.vertical else 0.0), b.v)
        top = b.u  # where the target's drawing begins along the flow
        for i in b.inputs:
            a = blocks[i]
            exit_ = (a.u + footprint(a), a.v)
            if (a.id, b.id) in levels:
                high = b.v - geo.before - 4 - 7 * levels[(a.id, b.id)]
                au, bu = a.u + footprint(a) / 2, b.u + footprint(b) / 2
                a_side = a.v - (a.height / 2 + (0.0 if geo.vertical else a.slant))
                b_side = b.v - (b.height / 2 + (0.0 if geo.vertical else b.slant))
                yield Edge([(au, a_side), (au, high), (bu, high), (bu, b_side)],
                           ((au + bu) / 2, high), a.shape, arch=True)
            elif a.lane == b.lane:
                yield Edge([exit_, entry], ((exit_[0] + top) / 2, a.v), a.shape)
            elif fans[a.id] > 1:  # a fork: rise next to the source, label the last stretch
                riser = geo.end(a.column) + 6
                yield Edge([exit_, (riser, a.v), (riser, b.v), entry],
                           ((riser + top) / 2, b.v), a.shape)
            else:  # a merge: label the first stretch, rise next to the target
                riser = geo.starts[b.column] - 6
                yield Edge([exit_, (riser, a.v), (riser, b.v), entry],
                           ((exit_[0] + riser) / 2, a.v), a.shape)
    last = blocks[-1]
    start = last.u + footprint(last)
    yield Edge([(start, last.v), (geo.flow_end, last.v)], ((start + geo.flow_end) / 2, last.v),
               last.shape)


def _brackets(blocks: list[Block], geo: Geometry):
    """(first u, last u, v, count) of every unit drawn once for several copies."""
    units: dict[int, list[Block]] = {}
    for b in blocks:
        if b.repeat > 1:
            units.setdefault(b.unit, []).append(b)
    for members in units.values():
        top = min(b.v for b in members) - geo.bracket
        yield (min(b.u for b in members), max(b.u + footprint(b) for b in members), top,
               members[0].repeat)


def network_figure(network, title: str | None = None, compact: bool = False,
                   vertical: bool = False):
    """A matplotlib Figure of ``network``; its size in pixels follows the layout."""
    from matplotlib.patches import Circle, FancyArrowPatch, Polygon, Rectangle
    from matplotlib.path import Path as MPath

    from .output import new_figure

    blocks = build_blocks(network, repeats=True, compact=compact)
    if len(blocks) > MAX_BLOCKS:
        raise VizError(f"{len(blocks):,} volumes are too many to draw (at most {MAX_BLOCKS:,})"
                       + ("" if compact else "; try the compact mode"))
    geo = layout(blocks, vertical=vertical, compact=compact)
    if title is None:
        summary = network.summary()
        title = f"{network.filename}: {summary.params:,} parameters, {summary.macs:,} MACs"
    geo.width = max(geo.width, len(title) * CHAR * 1.2 + 2 * MARGIN)
    figure = new_figure(geo.width / DPI, geo.height / DPI, dpi=DPI)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, geo.width)
    axes.set_ylim(0, geo.height)
    axes.set_axis_off()
    line = dict(linewidth=0.7, edgecolor="#333333")

    for b in blocks:  # boxes
        colour = COLOURS.get(b.kind, OTHER_COLOUR)
        x0, y0, d, h = _front(b, geo)
        s = b.slant
        if b.kind == "add":
            cx, cy = x0 + d / 2, y0 + h / 2
            axes.add_patch(Circle((cx, cy), RADIUS, facecolor=colour, **line))
            axes.plot([cx - 5, cx + 5], [cy, cy], color="#333333", lw=1)
            axes.plot([cx, cx], [cy - 5, cy + 5], color="#333333", lw=1)
            continue
        axes.add_patch(Polygon([(x0, y0 + h), (x0 + d, y0 + h), (x0 + d + s, y0 + h + s),
                                (x0 + s, y0 + h + s)], facecolor=_shade(colour, 1.12), **line))
        axes.add_patch(Polygon([(x0 + d, y0), (x0 + d + s, y0 + s), (x0 + d + s, y0 + h + s),
                                (x0 + d, y0 + h)], facecolor=_shade(colour, 0.85), **line))
        axes.add_patch(Rectangle((x0, y0), d, h, facecolor=colour, **line))

    for b in blocks:  # labels: under each column on one baseline per lane, or right of it
        centre = geo.starts[b.column] + geo.sizes[b.column] / 2
        texts = b.label()
        for k, text in enumerate(texts):
            style = dict(fontsize=FONT, color="#000000" if k == 0 else "#555555",
                         fontweight="bold" if k == 0 else "normal")
            if geo.vertical:
                x, y = geo.page(centre + (k - (len(texts) - 1) / 2) * LINE,
                                b.v + geo.after + 6)
                axes.text(x, y, text, ha="left", va="center", **style)
            else:
                x, y = geo.page(centre, b.v + geo.after + 6 + k * LINE)
                axes.text(x, y, text, ha="center", va="top", **style)

    for edge in _edges(blocks, geo):  # arrows, with their shapes
        page = [geo.page(u, v) for u, v in edge.points]
        codes = [MPath.MOVETO] + [MPath.LINETO] * (len(page) - 1)
        axes.add_patch(FancyArrowPatch(path=MPath(page, codes), arrowstyle="-|>",
                                       mutation_scale=8, linewidth=0.8, color="#555555",
                                       shrinkA=0, shrinkB=1))
        x, y = geo.page(*edge.at)
        if not geo.vertical:
            place = dict(ha="center", va="bottom", x=x, y=y + 2)
        elif edge.arch:  # left of the boxes: the text goes outside the arch
            place = dict(ha="right", va="center", x=x - 3, y=y)
        else:
            place = dict(ha="left", va="center", x=x + 3, y=y)
        axes.text(s=str(edge.shape), fontsize=EDGE_FONT, color="#08519c", **place)

    for first, last, v, count in _brackets(blocks, geo):  # "x N" over repeated pieces
        ends = [geo.page(first, v + 4), geo.page(first, v), geo.page(last, v),
                geo.page(last, v + 4)]
        axes.plot([p[0] for p in ends], [p[1] for p in ends], color="#6a51a3", lw=1)
        x, y = geo.page((first + last) / 2, v - 2)
        axes.text(x, y, f"x {count}", fontsize=FONT + 0.5, fontweight="bold", color="#6a51a3",
                  ha="right" if geo.vertical else "center",
                  va="center" if geo.vertical else "bottom")

    axes.text(MARGIN, geo.height - MARGIN, title, ha="left", va="top", fontsize=FONT + 1.5,
              fontweight="bold")
    return figure


def _shade(colour: str, factor: float) -> str:
    """Darker (factor < 1) or lighter (> 1, towards white) for the side and top faces."""
    def shade(v: int) -> int:
        v = v * factor if factor < 1 else v + (255 - v) * (factor - 1) * 2
        return max(0, min(255, round(v)))

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{shade(r):02x}{shade(g):02x}{shade(b):02x}"
