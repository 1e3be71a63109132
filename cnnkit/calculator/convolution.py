"""How the engine computes each convolution, and the work arrays that needs.

Two algorithms (``cnnkit.engine.layers.conv``): im2col + one matrix product, for every
convolution, and Winograd's F(4x4, 3x3) and F(4x4, 5x5) (``cnnkit.engine.layers.winograd``)
for 3x3 and 5x5 stride-1 ungrouped undilated ones. Winograd multiplies n*n*C*K times per 4x4
block of outputs, from an n x n tile (n = 6 for 3x3: 2.25*C*K per output pixel instead of
9*C*K; n = 8 for 5x5: 4*C*K instead of 25*C*K), but adds three transforms, each two products
with a small matrix (n x n or 4 x n) along the tiles' axes, which BLAS runs far below its
peak, and n*n products per tile of images where im2col does one. Measured with NumPy on this
project's 2-core machines, an Intel Xeon and an AMD EPYC (benchmarks/RESULTS.md, "Winograd
F(4x4, 3x3) against im2col", "The Winograd band on a second machine" and "2026-12-04,
evening"; ``python -m benchmarks.conv_algorithms``), that pays for 3x3 layers with 16 to 256
channels on both sides, on maps of at least 8x8, and for 5x5 layers with 8 to 256 on maps of
at least 4x4. Until 2026-12-04 (F(2x2, 5x5) for 5x5, transforms by Kronecker products, one
copy per pixel of a block, 4 MiB tiles) 3x3 layers won 12-49% forward and backward together
with 32 to 256 channels and at least 64 on one side, and lost with 32 in and out (even on
the Xeon, 18% slower on the EPYC) or 16 (the transforms cost more than the products saved);
5x5 layers won 4-35%, with 64 channels on one side. With the transforms along one axis at a
time, block-wise copies and cache-sized tiles the EPYC ran 3x3 layers of 16 channels in
0.61-0.84x im2col's time (8: 0.90x), 32 to 32 in 0.67-0.93x (once 1.05x), and 5x5 layers of
8-256 channels in 0.47-0.88x (7x7 maps of 8 channels 1.00x). With 512 channels the 36 (or
64) matrices of transformed kernels (38 MB at 512x512 for 3x3) are read once per tile: on
the Xeon the layer ran 16% slower on 14x14 maps and only 6% faster on 28x28 ones, the EPYC
19% slower on 14x14 and 32% faster on 28x28, 5x5 4% slower; on 7x7 maps a quarter of a 3x3
layer's computed outputs are dropped (Xeon 14% slower, EPYC 0.94x; 4x4 maps 1.04x). Where
the machines or the map sizes disagree the band keeps im2col, which is never far off.
``algorithm`` encodes the bands (``WINOGRAD_BANDS``); a layer uses one algorithm in forward
and backward.

``CNNKIT_CONV_ALGORITHM=im2col`` (or ``winograd``, wherever it applies) overrides the
prediction, for comparisons; the default is ``auto``.

The work arrays are sized here, per image of a tile, so that the engine and the memory
estimate (``cnnkit.calculator.memory``) agree on them exactly.
"""

from __future__ import annotations

import os

# per kernel size, where Winograd computes a layer: channels on both sides within
# (fewest, most), output maps at least this high and wide
WINOGRAD_BANDS = {3: ((16, 256), 8), 5: ((8, 256), 4)}
BLOCK = 4  # Winograd's output blocks are 4x4: F(4x4, 3x3) on 6x6 tiles, F(4x4, 5x5) on 8x8


CHOICES = ("auto", "im2col", "winograd")


def tap_major(attrs: dict, c: int) -> bool:
    """Whether im2col lays its rows out transposed, one row per kernel tap and channel (runs
    of pixels), for a layer reading ``c`` channels: ungrouped, 1-3 channels (a first layer),
    where row-major rows would be runs of 1-3 values, slow to gather."""
    return attrs.get("groups", 1) == 1 and c <= 3


def bias_row(attrs: dict, c: int) -> bool:
    """Whether an im2col layer's tap-major rows end in a row of ones, whose weights are the
    bias, so that the products add the bias and sum its gradient: a first layer's output
    tile spills out of the cache, and a separate pass over it cost 0.6-1.3 ms of a 3.5-5 ms
    forward (M1's and M2's first layers, batch 128)."""
    return tap_major(attrs, c) and attrs.get("bias", True)


def winograd_tile(kernel: int) -> int:
    """Input pixels per side of the tile from which Winograd computes a BLOCK x BLOCK block
    of an r x r convolution's outputs: BLOCK + r - 1 (6 for 3x3, 8 for 5x5)."""
    return BLOCK + kernel - 1


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
        self.tile = winograd_tile(kernel)
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
        tiles, and dV's array then holds the input gradient's sums, the padded input's size,
        which is never larger on maps the band allows)."""
        blocks, tile = self.blocks[0] * self.blocks[1], self.tile**2
        padded = self.padded_hw[0] * self.padded_hw[1] * c
        return {"padded": padded, "tiles": tile * blocks * c,
                "transformed": max(tile * blocks * c, padded), "products": tile * blocks * k,
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
                training: bool = True, pool: tuple[int, int] | None = None) -> dict[str, int]:
    """Values per image of every work array of a forward or backward tile (the largest over
    what the pass does; a pass without an input gradient sizes none for it), for the
    ``method`` given (default: ``algorithm``'s); ``masked``: the backward applies a ReLU's
    mask to its tile of the output gradient (``memory.masked_layers``).  In ``training``
    a Winograd forward writes V into the array it keeps for backward (``kept_transform``),
    not into a work array, and its backward reads it from there; otherwise (the gradients
    of an evaluating model, as for a saliency map) backward transforms its tiles again.
    ``pool``: a forward that max-pools each tile with these windows
    (``memory.pooled_convolutions``): Winograd takes the maxima from its blocks
    (``pools_in_blocks``), im2col computes the pixels that the windows read, window by
    window, into the work array "output"; the backward of such a layer makes its output
    gradient tiles as a ``masked`` one does (im2col) or in its blocks (Winograd)."""
    c, k = in_shape.c, out_shape.c
    method = method or algorithm(attrs, c, (out_shape.h, out_shape.w))
    if method == "winograd":
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
        pixels = out_shape.h * out_shape.w
        if pool is not None and not backward:  # whole windows only
            pixels = out_shape.h // pool[0] * pool[0] * (out_shape.w // pool[1]) * pool[1]
            passes = [{"output": pixels * k}]
        else:
            passes = []
        passes.append(_im2col_values(pixels, kh * kw * c + bias_row(attrs, c),
                                     (in_shape.h, in_shape.w), pad, c))
        back = transposed_pad(attrs)
        if backward and input_grad and back is not None:
            passes.append(_im2col_values(in_shape.h * in_shape.w, kh * kw * k,
                                         (out_shape.h, out_shape.w), back, k))
    if backward and masked and (method != "winograd" or pool is None):
        passes.append({"masked": out_shape.h * out_shape.w * k})
    return {key: max(p.get(key, 0) for p in passes) for key in dict.fromkeys(
        key for p in passes for key in p)}


def pools_in_blocks(pool: tuple[int, int]) -> bool:
    """Whether a Winograd layer can take the maxima of ``pool`` windows straight from its
    output blocks: square windows that divide a BLOCK (2x2, 4x4) each lie inside one."""
    return pool[0] == pool[1] and BLOCK % pool[0] == 0


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
