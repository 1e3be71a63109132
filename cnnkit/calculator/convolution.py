"""How the engine computes each convolution, and the work arrays that needs.

Two algorithms (``cnnkit.engine.layers.conv``): im2col + one matrix product, for every
convolution, and Winograd's F(4x4, 3x3) and F(2x2, 5x5) (``cnnkit.engine.layers.winograd``)
for 3x3 and 5x5 stride-1 ungrouped undilated ones.  Winograd multiplies 36*C*K times per
6x6 tile, for 16 outputs (3x3: 2.25*C*K per output pixel instead of 9*C*K) or 4 (5x5: 9*C*K
instead of 25*C*K), but adds three transforms, each a product with a small matrix (36x36,
16x36 or 4x36) that BLAS runs at about half its peak, and 36 products per tile of images
where im2col does one.  Measured with NumPy on this project's 2-core machine
(benchmarks/RESULTS.md, "Winograd F(4x4, 3x3) against im2col" and "F(2x2, 5x5)";
``python -m benchmarks.conv_algorithms``), that pays for 32 to 256 channels on both sides,
on maps of at least 8x8: 3x3 layers 12-44% faster, forward and backward together (most for
64-256 channels; 32 in and out is about even at batch 128), 5x5 ones 2-28% (most for
128-256 channels; M1's second layer, 32 to 64 channels on 14x14 maps, 14%).  With fewer
channels (first layers, 16) the transforms cost more than the products save; with 512 the
36 matrices of transformed kernels (36*C*K values, 38 MB at 512x512) are read once per
tile, and the layer ran 16% slower on 14x14 maps and only 6% faster on 28x28 ones (22-99%
slower in earlier runs; 5x5: 2-14% slower); on 7x7 maps a quarter of the computed outputs
are dropped (14% slower; 5x5: 4-7%).  ``algorithm`` encodes that band, the same for both
kernel sizes; a layer uses one algorithm in forward and backward.

``CNNKIT_CONV_ALGORITHM=im2col`` (or ``winograd``, wherever it applies) overrides the
prediction, for comparisons; the default is ``auto``.

The work arrays are sized here, per image of a tile, so that the engine and the memory
estimate (``cnnkit.calculator.memory``) agree on them exactly.
"""

from __future__ import annotations

import os

WINOGRAD_CHANNELS = (32, 256)  # both sides within this range ...
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
    channels = low <= min(c, attrs["out_channels"]) and max(c, attrs["out_channels"]) <= high
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
        self.padded_hw = (m * self.blocks[0] + kernel - 1, m * self.blocks[1] + kernel - 1)

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
                method: str | None = None, masked: bool = False) -> dict[str, int]:
    """Values per image of every work array of a forward or backward tile (the largest over
    what the pass does; a pass without an input gradient sizes none for it), for the
    ``method`` given (default: ``algorithm``'s); ``masked``: the backward applies a ReLU's
    mask to its tile of the output gradient (``memory.masked_layers``)."""
    c, k = in_shape.c, out_shape.c
    if (method or algorithm(attrs, c, (out_shape.h, out_shape.w))) == "winograd":
        tiling = WinogradTiling((in_shape.h, in_shape.w), attrs.get("pad", (0, 0, 0, 0)),
                                attrs["kernel"][0])
        passes = [tiling.values(c, k)]
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


def _im2col_values(pixels: int, row: int, hw, pad, channels: int) -> dict[str, int]:
    """im2col rows (``pixels`` rows of ``row`` values) and the padded input, if padded."""
    top, bottom, left, right = pad
    padded = (hw[0] + top + bottom) * (hw[1] + left + right) * channels if any(pad) else 0
    return {"rows": pixels * row, "padded": padded}
