"""How the engine computes each convolution, and the work arrays that needs.

Two algorithms (``cnnkit.engine.layers.conv``): im2col + one matrix product, for every
convolution, and Winograd's F(4x4, 3x3) and F(4x4, 5x5) (``cnnkit.engine.layers.winograd``)
for 3x3 and 5x5 stride-1 ungrouped undilated ones.  Winograd multiplies n*n*C*K times per
4x4 block of outputs, from an n x n tile (n = 6 for 3x3: 2.25*C*K per output pixel instead of
9*C*K; n = 8 for 5x5: 4*C*K instead of 25*C*K), but adds three transforms, each a product
with a small matrix (n*n x n*n, 16 x n*n) that BLAS runs at about half its peak, and n*n
products per tile of images where im2col does one.  Measured with NumPy on this project's
2-core machines, an Intel Xeon and an AMD EPYC (benchmarks/RESULTS.md, "Winograd F(4x4,
3x3) against im2col", "The Winograd band on a second machine" and "F(4x4, 5x5)";
``python -m benchmarks.conv_algorithms``), that pays for 3x3 layers with 32 to 256
channels on both sides, on maps of at least 8x8: 12-49% faster, forward and backward
together (most for 64-256 channels).  32 in and out was even (Xeon) to 18% slower (EPYC)
while each tile paid for one copy per pixel of its blocks; with V kept for backward,
block-wise copies and cache-sized tiles (2026-12-04) it ran 7-24% faster on the EPYC in 6
of 7 cases (one 5% slower), and M2's step took 0.90-0.96x the time with its second layer
so.  With fewer channels (first layers, 16) the transforms cost more than the products save;
with 512 the 36 matrices of transformed kernels (36*C*K values, 38 MB at 512x512) are read
once per tile, and on the Xeon the layer ran 16% slower on 14x14 maps and only 6% faster on
28x28 ones (22-99% slower in earlier runs); on 7x7 maps a quarter of the computed outputs
are dropped (Xeon 14% slower).  The EPYC won 21-42% at 512 channels and 24% on 7x7x256
maps: where the machines disagree the band keeps im2col, which is never far off.  A 5x5
layer saves more (6.25x fewer multiplications), so its band is wider: 16 to 256 channels on
both sides, maps of at least 4x4, 20-53% faster on the EPYC (7x7 and 4x4 maps 27-39%; 8
channels in and out 0.70-1.17x, 512 1.10x, one input channel 1.41x).  (Until 2026-12-04
5x5 layers used F(2x2, 5x5) on 6x6 tiles, 9*C*K multiplications per output, and won only
4-35%, with 64 channels on one side.)  ``algorithm`` encodes the bands (``WINOGRAD_BANDS``); a
layer uses one algorithm in forward and backward.

``CNNKIT_CONV_ALGORITHM=im2col`` (or ``winograd``, wherever it applies) overrides the
prediction, for comparisons; the default is ``auto``.

The work arrays are sized here, per image of a tile, so that the engine and the memory
estimate (``cnnkit.calculator.memory``) agree on them exactly.
"""

from __future__ import annotations

import os

# per kernel size, where Winograd computes a layer: channels on both sides within
# (fewest, most), output maps at least this high and wide
WINOGRAD_BANDS = {3: ((32, 256), 8), 5: ((16, 256), 4)}
BLOCK = 4  # Winograd's output blocks are 4x4: F(4x4, 3x3) on 6x6 tiles, F(4x4, 5x5) on 8x8


CHOICES = ("auto", "im2col", "winograd")


def winograd_applies(attrs: dict) -> bool:
    """Whether F(4x4, 3x3) or F(4x4, 5x5) computes this convolution: a 3x3 or 5x5 kernel,
    stride 1, no dilation or groups."""
    kh, kw = attrs["kernel"]
    return (kh == kw and kh in WINOGRAD_BANDS and tuple(attrs["stride"]) == (1, 1)
            and tuple(attrs.get("dilation", (1, 1))) == (1, 1) and attrs.get("groups", 1) == 1)


def algorithm(attrs: dict, c: int, out_hw: tuple[int, int]) -> str:
    """"winograd" or "im2col" for a convolution with ``attrs`` reading ``c`` channels and
    writing maps of ``out_hw`` (height, width)."""
    choice = os.environ.get("CNNKIT_CONV_ALGORITHM", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(f"CNNKIT_CONV_ALGORITHM={choice!r}: expected one of {', '.join(CHOICES)}")
    if not winograd_applies(attrs):
        return "im2col"
    if choice != "auto":
        return choice
    (low, high), side = WINOGRAD_BANDS[attrs["kernel"][0]]
    narrow, wide = sorted((c, attrs["out_channels"]))
    return "winograd" if low <= narrow and wide <= high and min(out_hw) >= side else "im2col"


class WinogradTiling:
    """How an r x r (``kernel``) stride-1 convolution with ``pad`` (top, bottom, left, right)
    of an ``in_hw`` image is cut into m x m output blocks (``block``, m = 4): ``blocks``
    (rows, columns), read as n x n tiles (``tile``, n = m + r - 1) from the input padded to
    ``padded_hw``.  Outputs beyond a size that is not a multiple of m are computed from zero
    padding and dropped."""

    def __init__(self, in_hw: tuple[int, int], pad: tuple[int, int, int, int], kernel: int = 3):
        self.in_hw, self.pad, self.kernel = tuple(in_hw), tuple(pad), kernel
        self.block = m = BLOCK
        self.tile = m + kernel - 1  # input pixels per tile side
        top, bottom, left, right = pad
        self.out_hw = (in_hw[0] + top + bottom - kernel + 1, in_hw[1] + left + right - kernel + 1)
        self.blocks = (-(-self.out_hw[0] // m), -(-self.out_hw[1] // m))
        # the r - 1 pixels the last tiles read beyond their blocks, rounded up to whole
        # blocks: the input gradient adds the tiles back block by block
        overlap = -(-(kernel - 1) // m)
        self.padded_hw = (m * (self.blocks[0] + overlap), m * (self.blocks[1] + overlap))

    def values(self, c: int, k: int) -> dict[str, int]:
        """Values per image of each work array of a convolution from ``c`` to ``k`` channels
        (backward's passes use the same arrays: dV and its tiles are the size of V and its
        tiles)."""
        blocks, tile = self.blocks[0] * self.blocks[1], self.tile**2
        return {"padded": self.padded_hw[0] * self.padded_hw[1] * c, "tiles": tile * blocks * c,
                "transformed": tile * blocks * c, "products": tile * blocks * k,
                "blocks": self.block**2 * blocks * k,
                # a transform applied along one axis of the tiles (the largest: B^T's of
                # the input tiles or A^T's of the products)
                "one_axis": self.tile * max(self.tile * c, self.block * k) * blocks}


def transposed_pad(attrs: dict) -> tuple[int, int, int, int] | None:
    """The padding of the output gradient that makes a stride-1 ungrouped convolution's input
    gradient another convolution, (k - 1)*dilation - pad per side; None for other
    convolutions or padding wider than the kernel."""
    if tuple(attrs["stride"]) != (1, 1) or attrs.get("groups", 1) != 1:
        return None
    (kh, kw), (dh, dw) = attrs["kernel"], attrs.get("dilation", (1, 1))
    top, bottom, left, right = attrs.get("pad", (0, 0, 0, 0))
    pad = ((kh - 1) * dh - top, (kh - 1) * dh - bottom, (kw - 1) * dw - left,
           (kw - 1) * dw - right)
    return None if min(pad) < 0 else pad


def tile_values(attrs: dict, in_shape, out_shape, backward: bool, input_grad: bool = True,
                method: str | None = None, masked: bool = False,
                training: bool = True) -> dict[str, int]:
    """Values per image of every work array of a forward or backward tile (the largest over
    what the pass does; a pass without an input gradient sizes none for it), for the
    ``method`` given (default: ``algorithm``'s); ``masked``: the backward applies a ReLU's
    mask to its tile of the output gradient (``memory.masked_layers``).  In ``training``
    a Winograd forward writes V into the array it keeps for backward (``kept_transform``),
    not into a work array, and its backward reads it from there; otherwise (the gradients
    of an evaluating model, as for a saliency map) backward transforms its tiles again."""
    c, k = in_shape.c, out_shape.c
    if (method or algorithm(attrs, c, (out_shape.h, out_shape.w))) == "winograd":
        tiling = _winograd_tiling(attrs, in_shape)
        values = tiling.values(c, k)
        if training and not backward:
            del values["transformed"]
        elif training and not input_grad:  # dW = V^T dM: dY's blocks, A along one axis, dM
            values = {"blocks": values["blocks"], "products": values["products"],
                      "one_axis": values["blocks"] * tiling.tile // tiling.block}
        passes = [values]
    else:
        (kh, kw), pad = attrs["kernel"], attrs.get("pad", (0, 0, 0, 0))
        passes = [_im2col_values(out_shape.h * out_shape.w, kh * kw * c,
                                 (in_shape.h, in_shape.w), pad, c)]
        back = transposed_pad(attrs)
        if backward and input_grad and back is not None:
            passes.append(_im2col_values(in_shape.h * in_shape.w, kh * kw * k,
                                         (out_shape.h, out_shape.w), back, k))
    if backward and masked:
        passes.append({"masked": out_shape.h * out_shape.w * k})
    return {key: max(p.get(key, 0) for p in passes) for key in dict.fromkeys(
        key for p in passes for key in p)}


def kept_transform(attrs: dict, in_shape, out_shape) -> int:
    """Values per image of Winograd's transformed input V (n*n per tile and input channel),
    which a layer's training forward keeps for the weight gradient: recomputing it there
    (gathering the tiles again and transforming them) was a fifth of the
    backward.  0 for an im2col layer, which rebuilds its rows instead (a cheap copy)."""
    if algorithm(attrs, in_shape.c, (out_shape.h, out_shape.w)) != "winograd":
        return 0
    return _winograd_tiling(attrs, in_shape).values(in_shape.c, out_shape.c)["transformed"]


def _winograd_tiling(attrs: dict, in_shape) -> WinogradTiling:
    return WinogradTiling((in_shape.h, in_shape.w), attrs.get("pad", (0, 0, 0, 0)),
                          attrs["kernel"][0])


def _im2col_values(pixels: int, row: int, hw, pad, channels: int) -> dict[str, int]:
    """im2col rows (``pixels`` rows of ``row`` values) and the padded input, if padded."""
    top, bottom, left, right = pad
    padded = (hw[0] + top + bottom) * (hw[1] + left + right) * channels if any(pad) else 0
    return {"rows": pixels * row, "padded": padded}
