"""How the engine computes each convolution, and the work arrays that needs.

Two algorithms (``cnnkit.engine.layers.conv``): im2col + one matrix product, for every
convolution, and Winograd's F(4x4, 3x3) and F(2x2, 5x5) (``cnnkit.engine.layers.winograd``)
for 3x3 and 5x5 stride-1 ungrouped undilated ones.  Winograd multiplies 36*C*K times per
6x6 tile, for 16 outputs (3x3: 2.25*C*K per output pixel instead of 9*C*K) or 4 (5x5: 9*C*K
instead of 25*C*K), but adds three transforms, each a product with a small matrix (36x36,
16x36 or 4x36) that BLAS runs at about half its peak, and 36 products per tile of images
where im2col does one.  Measured with NumPy on this project's 2-core machines, an Intel
Xeon and an AMD EPYC (benchmarks/RESULTS.md, "Winograd F(4x4, 3x3) against im2col", "F(2x2,
5x5)" and "The Winograd band on a second machine"; ``python -m benchmarks.conv_algorithms``),
that pays for 32 to 256 channels on both sides, on maps of at least 8x8: 3x3 layers 12-49%
faster, forward and backward together (most for 64-256 channels), 5x5 ones 4-35% (most for
128-256 channels; M1's second layer, 32 to 64 channels on 14x14 maps, 4-14%).  A 5x5 layer
needs 64 channels on one side: with 32 in and out it ran 4-47% slower on the EPYC.  A 3x3
layer with 32 in and out was even (Xeon) to 18% slower (EPYC) while each tile paid for one
copy per pixel of its blocks; with V kept for backward, block-wise copies and cache-sized
tiles (2026-12-04) it ran 7-24% faster on the EPYC in 6 of 7 cases (one 5% slower), and
M2's step took 0.90-0.96x the time with its second layer so.  With
fewer channels (first layers, 16) the transforms cost more than the products save; with 512
the 36 matrices of transformed kernels (36*C*K values, 38 MB at 512x512) are read once per
tile, and on the Xeon the layer ran 16% slower on 14x14 maps and only 6% faster on 28x28
ones (22-99% slower in earlier runs; 5x5: 2-14% slower); on 7x7 maps a quarter of the
computed outputs are dropped (Xeon 14% slower; 5x5: 4-7% on both).  The EPYC won 21-42% at
512 channels and 24% on 7x7x256 maps: where the machines disagree the band keeps im2col,
which is never far off.  ``algorithm`` encodes that band; a layer uses one algorithm in
forward and backward.

``CNNKIT_CONV_ALGORITHM=im2col`` (or ``winograd``, wherever it applies) overrides the
prediction, for comparisons; the default is ``auto``.

The work arrays are sized here, per image of a tile, so that the engine and the memory
estimate (``cnnkit.calculator.memory``) agree on them exactly.
"""

from __future__ import annotations

import os

WINOGRAD_CHANNELS = (32, 256)  # both sides within this range ...
WINOGRAD_WIDE_SIDE = {3: 32, 5: 64}  # ... one side at least this wide, per kernel size ...
WINOGRAD_MIN_SIDE = 8  # ... on output maps at least this high and wide
TILE = 6  # Winograd's input tiles are 6x6: F(4x4, 3x3) and F(2x2, 5x5)
WINOGRAD_KERNELS = (3, 5)


CHOICES = ("auto", "im2col", "winograd")


def winograd_applies(attrs: dict) -> bool:
    """Whether F(4x4, 3x3) or F(2x2, 5x5) computes this convolution: a 3x3 or 5x5 kernel,
    stride 1, no dilation or groups."""
    kh, kw = attrs["kernel"]
    return (kh == kw and kh in WINOGRAD_KERNELS and tuple(attrs["stride"]) == (1, 1)
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
    low, high = WINOGRAD_CHANNELS
    narrow, wide = sorted((c, attrs["out_channels"]))
    channels = low <= narrow and WINOGRAD_WIDE_SIDE[attrs["kernel"][0]] <= wide <= high
    return "winograd" if channels and min(out_hw) >= WINOGRAD_MIN_SIDE else "im2col"


class WinogradTiling:
    """How an r x r (``kernel``) stride-1 convolution with ``pad`` (top, bottom, left, right)
    of an ``in_hw`` image is cut into m x m output blocks (``block``, m = 7 - r): ``blocks``
    (rows, columns), read as 6x6 tiles from the input padded to ``padded_hw``.  Outputs
    beyond a size that is not a multiple of m are computed from zero padding and dropped."""

    def __init__(self, in_hw: tuple[int, int], pad: tuple[int, int, int, int], kernel: int = 3):
        self.in_hw, self.pad, self.kernel = tuple(in_hw), tuple(pad), kernel
        self.block = m = TILE + 1 - kernel
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
        blocks, tile = self.blocks[0] * self.blocks[1], TILE * TILE
        return {"padded": self.padded_hw[0] * self.padded_hw[1] * c, "tiles": tile * blocks * c,
                "transformed": tile * blocks * c, "products": tile * blocks * k,
                "blocks": self.block**2 * blocks * k}


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
        values = _winograd_tiling(attrs, in_shape).values(c, k)
        if training and not backward:
            del values["transformed"]
        elif training and not input_grad:  # dW = V^T dM: dY's blocks and dM only
            values = {key: values[key] for key in ("blocks", "products")}
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
    """Values per image of Winograd's transformed input V (36 per tile and input channel),
    which a layer's training forward keeps for the weight gradient: recomputing it there
    (gathering the tiles again and one product with kron(B^T, B^T)) was a fifth of the
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
