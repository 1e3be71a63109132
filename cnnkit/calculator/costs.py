"""Per-layer cost: parameters, MACs and the receptive field, with the arithmetic behind them.

MACs count the multiply-accumulates of convolutions and fully connected layers only
(F_h*F_w*(C_in/groups)*C_out*H_out*W_out and N_in*N_out): bias adds, BN, pooling and
activations are not MACs.  That is the convention of torchvision's GFLOPS column.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..graph.network import Node, Shape


@dataclass(frozen=True)
class LayerCost:
    weights: int = 0
    biases: int = 0
    other: int = 0  # trainable parameters that are neither weights nor biases: BN gamma/beta
    state: int = 0  # non-trainable arrays saved with the model: BN running mean/var
    macs: int = 0
    weights_formula: str = ""
    macs_formula: str = ""

    @property
    def params(self) -> int:
        return self.weights + self.biases + self.other


def layer_cost(node: Node, inputs: list[Shape]) -> LayerCost:
    a = node.attrs
    if node.kind == "conv":
        (kh, kw), cin, cout, g = a["kernel"], inputs[0].c, a["out_channels"], a["groups"]
        per_filter = f"{kh}*{kw}*{cin // g}"
        weights = kh * kw * (cin // g) * cout
        out = node.out
        macs = weights * out.h * out.w
        return LayerCost(
            weights=weights,
            biases=cout if a["bias"] else 0,
            macs=macs,
            weights_formula=f"({per_filter})*{cout} = {weights:,}",
            macs_formula=f"({per_filter})*{cout}*{out.h}*{out.w} = {macs:,}",
        )
    if node.kind == "fc":
        src, units = inputs[0], a["units"]
        n_in = src.size
        fan = f"{n_in}" if src.flat else f"{src.h}*{src.w}*{src.c}"
        weights = n_in * units
        return LayerCost(
            weights=weights,
            biases=units if a["bias"] else 0,
            macs=weights,
            weights_formula=f"{fan}*{units} = {weights:,}",
            macs_formula=f"{fan}*{units} = {weights:,}",
        )
    if node.kind == "bn":
        # per feature map after a conv, per neuron after an FC
        features = node.out.c if not node.out.flat else node.out.size
        return LayerCost(other=2 * features, state=2 * features,
                         weights_formula=f"gamma+beta 2*{features} = {2 * features:,}")
    return LayerCost()


# Layers whose output overwrites or views their input, so they hold no new memory:
# ReLU runs in place (as in the CS231n VGG table, which lists no ReLU rows), ID is the
# same array and FLATTEN is a view.
IN_PLACE = frozenset({"relu", "lrelu", "id", "flatten"})


@dataclass(frozen=True)
class Field:
    """Receptive field size on the input and the input-pixel distance between neighbours."""

    size: tuple[int, int]
    jump: tuple[int, int]


def receptive_field(node: Node, inputs: list[Field], shapes: list[Shape]) -> Field:
    if node.kind == "input":
        return Field((1, 1), (1, 1))
    if node.kind in ("conv", "pool"):
        src = inputs[0]
        (kh, kw), (sh, sw), (dh, dw) = node.attrs["kernel"], node.attrs["stride"], node.attrs["dilation"]
        size = (src.size[0] + dh * (kh - 1) * src.jump[0], src.size[1] + dw * (kw - 1) * src.jump[1])
        return Field(size, (src.jump[0] * sh, src.jump[1] * sw))
    if node.kind in ("fc", "gap", "gmp", "flatten") and not shapes[0].flat:
        # every neuron sees the whole input volume: a window as large as the input.  A
        # FLATTEN's values each keep their own position's field, but the vector as a whole,
        # which is what the FC after it reads, covers the volume: FLATTEN -> FC must agree
        # with an FC reading the volume directly
        src, shape = inputs[0], shapes[0]
        size = (src.size[0] + (shape.h - 1) * src.jump[0], src.size[1] + (shape.w - 1) * src.jump[1])
        return Field(size, (src.jump[0] * shape.h, src.jump[1] * shape.w))
    if node.kind in ("add", "concat"):
        widest = max(inputs, key=lambda f: f.size[0] * f.size[1])
        return widest
    return inputs[0]
