"""The layer graph: what a spec means once its shapes are known.

Nodes are stored in topological order (every node's inputs come before it), so both the
calculator and the executor walk the list front to back and never need a graph search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..language.errors import Span


@dataclass(frozen=True)
class Shape:
    """The volume a layer produces for one image.

    Spatial volumes are H x W x C.  Vectors (after FC or FLATTEN) are ``flat``, with h = w = 1
    and c = their length; the distinction matters to BN (per neuron vs per feature map) and
    to layers that need a spatial input.
    """

    h: int
    w: int
    c: int
    flat: bool = False

    @property
    def size(self) -> int:
        return self.h * self.w * self.c

    def __str__(self) -> str:
        return f"{self.c}" if self.flat else f"{self.h}x{self.w}x{self.c}"


# Layer kinds.  ``attrs`` holds what each kind needs, already resolved to numbers:
#   conv:  kernel=(kh, kw), stride=(sh, sw), dilation=(dh, dw), pad=(top, bottom, left, right),
#          groups, out_channels, bias (bool).  Padding on bottom/right includes the overhang of
#          ceil rounding; rows that floor rounding drops are simply never read.
#   pool:  mode ('max' | 'avg'), kernel, stride, pad (as conv), dilation=(1, 1); an average
#          pool with ceil overhang also has overhang=(rows, cols), the part of the bottom and
#          right padding that its divisors leave out (written padding counts, as zeros);
#          one with count_pad=False divides by the image pixels of each window alone
#   gap:   -          gmp: -  (global max)  fc: units, bias   flatten: -        id: -
#   relu / tanh / sigmoid / softmax: -      lrelu: alpha      dropout: p
#   bn:    eps, momentum                    lrn: size, alpha, beta, k
#   add:   -  (sum of all inputs)           concat: -  (channel concat of all inputs)
#   input: -
KINDS = (
    "input", "conv", "pool", "gap", "gmp", "fc", "flatten", "id", "relu", "lrelu", "tanh",
    "sigmoid", "softmax", "dropout", "bn", "lrn", "add", "concat",
)


@dataclass
class Node:
    index: int
    name: str  # as written, with a block path: "res2.1/CONV3-64"
    kind: str
    inputs: tuple[int, ...]
    out: Shape
    attrs: dict[str, Any] = field(default_factory=dict)
    span: Span | None = None  # where in the spec text it was written
    explain: tuple[str, ...] = ()  # the size arithmetic, for `summarize --explain`


@dataclass
class Network:
    """A checked layer graph.  ``nodes[0]`` is the INPUT; the last node is the output."""

    nodes: list[Node]
    source: str = ""  # the spec text it was parsed from
    filename: str = "<spec>"

    @property
    def input_shape(self) -> Shape:
        return self.nodes[0].out

    @property
    def output_shape(self) -> Shape:
        return self.nodes[-1].out

    def summary(self, batch: int = 1, dtype: str = "float32", optimizer: str = "sgd"):
        """The calculator's numbers for this graph (see ``cnnkit.calculator``)."""
        from ..calculator import summarize

        return summarize(self, batch=batch, dtype=dtype, optimizer=optimizer)

    def __repr__(self) -> str:
        return f"<Network {self.summary().headline}>"

    def __rich__(self):
        """Printed with rich (or shown in a notebook): the summary's table and totals."""
        return self.summary().__rich__()

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()
