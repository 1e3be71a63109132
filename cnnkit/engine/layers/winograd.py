"""Winograd's minimal filtering for stride-1 convolutions (Lavin & Gray, 2016): F(4x4, 3x3)
for 3x3 kernels on 6x6 tiles and F(4x4, 5x5) for 5x5 ones on 8x8 tiles.

Used by ``Conv`` for the layers where the calculator predicts it wins
(``cnnkit.calculator.convolution.algorithm``, which says where that is and why): 3x3 or 5x5
kernels, stride 1, no dilation or groups, and enough channels on both sides.

F(m x m, r x r) computes each m x m block of outputs (m = 4) from an n x n tile ``d`` of the
padded input (n = m + r - 1: 6 or 8; tiles overlap by r - 1 pixels).  With ``V = B^T d B`` for
each input channel and ``U = G g G^T`` for each kernel ``g``, the block is ``A^T M A`` where
``M = sum over input channels of U * V``, element by element.  For each of the n*n positions
of the transformed tile that sum is one matrix product (tiles x C) @ (C x K): n*n
multiplications of C*K per block against m*m*r*r for the direct sum, 4x fewer for F(4x4,
3x3) (36 against 144) and 6.25x fewer for F(4x4, 5x5) (64 against 400).  The identity is
exact in exact arithmetic: it is polynomial multiplication modulo the product of (x - p)
over n - 1 points p, evaluated at them and at infinity: 0, +-1, +-2 for 6x6 tiles, and
+-1/2 as well for 8x8 (``transforms`` builds the three matrices from the points, Cook-Toom
style; for 6x6 they are Lavin and Gray's).  In float32 the coefficients (up to 5.25 in
``B``, 8 in ``A``, down to 1/90 in ``G``) cost about one decimal digit: results differ from
the direct sum by ~1e-5 relative (5e-6 to 7e-6 on 14x14 to 28x28 maps with 32-64 channels,
both kernels; tests/test_winograd.py bounds them well inside the 1e-4 the engine promises).

All three transforms are matrix products too, so NumPy (or CuPy) spends the time in BLAS:
the n x n tiles of a few images (a tile of the batch, as ``Conv``'s im2col) are gathered
from a strided view into an (n*n, tiles*C) array, and ``B^T d B`` for all of them is two
batches of products (``_on_both_axes``): B^T along the tiles' rows, then along their
columns; ``A^T M A`` likewise.  One product with the Kronecker matrix kron(B^T, B^T)
(n*n x n*n) computes the same in one pass over memory but with n/2 times the
multiplications, and BLAS runs such short products (36 or 64 terms) at half its peak: while
a tile's arrays spilled out of the core's cache (4 MiB tiles, 2026-12-03) the two passes
were no faster with both cores busy, but in cache-sized tiles they made the training steps
of M1-M3 9-14% faster and inference 13-19% (2026-12-04).  The copies between the products go
m x m block by block (``_block_pieces``): the output blocks into the map and back, and
backward's tiles added into the padded input, one array operation per piece instead of one
per pixel of a block or tile (4-36 calls of a few microseconds each per tile), which is
what lets the tiles shrink to stay in a core's cache
(``cnnkit.calculator.memory.tile_bytes``).

Backward: both gradients are the adjoints of the same maps, from one transform of the
output gradient, ``dM = A dY A^T`` (``output_gradient``; after a pooled forward dY is made
in the blocks from the pool's gradient), which holds the bias gradient too
(``bias_gradient``).  The weight gradient is
``dU = V^T dM`` position by position, then ``dg = G^T dU G``, with the V that a training
forward kept (``Conv``; 2.25x the layer's input for 3x3, 4x for 5x5: recomputing it was a
fifth of the backward, while im2col's rows are a cheap copy to rebuild); the input gradient is
``dV = dM U^T``, then ``B dV B^T`` for each tile, added back where the tile was read
(``input_gradient``).  Computing the input gradient as a convolution of dY with the flipped
kernels instead (as im2col does) would transform dY a second time, from K channels, and
then the result: measured, the adjoint makes a layer's backward 2-20% faster (most where
K > C, as when a network widens).
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import numpy

from ...calculator.convolution import BLOCK, WinogradTiling, winograd_tile
from .windows import window_gradient, window_maxima

# with infinity, the interpolation points: the first 6 for F(4x4, 3x3), all 8 for F(4x4, 5x5)
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))


@cache
def transforms(r: int) -> dict[str, numpy.ndarray]:
    """B^T (n x n), G (n x r) and A^T (m x n) of F(m x m, r x r), m = 4, n = m + r - 1, at the
    first n - 1 ``POINTS`` and infinity.

    Cook-Toom: a kernel's values at the points are G g (the finite points' rows divided by
    the product of their distances to the other points, which is what Lagrange interpolation
    leaves to the kernel's side); B^T's rows are the coefficients of the polynomials that
    vanish at all points but one (the last: at all of them); A^T evaluates the product back
    at the output positions.  Exact fractions until the end."""
    m = BLOCK
    finite = [Fraction(p) for p in POINTS[:winograd_tile(r) - 1]]

    def poly(roots) -> list[Fraction]:  # coefficients of prod (x - root), lowest first
        coefficients = [Fraction(1)]
        for root in roots:
            shifted = [Fraction(0)] + coefficients
            coefficients = [s - root * c for s, c in zip(shifted, coefficients + [0])]
        return coefficients

    b_t = [poly([q for q in finite if q != p]) + [0] for p in finite] + [poly(finite)]
    scale = [numpy.prod([p - q for q in finite if q != p]) for p in finite]
    g = [[p**j / s for j in range(r)] for p, s in zip(finite, scale)] + [[0] * (r - 1) + [1]]
    a_t = [[p**i for p in finite] + [int(i == m - 1)] for i in range(m)]
    b_t, g, a_t = (numpy.array(rows, dtype=float) for rows in (b_t, g, a_t))
    return {"B_T": b_t, "B": b_t.T.copy(), "G": g, "A_T": a_t, "A": a_t.T.copy(),
            "kernel": numpy.kron(g, g), "kernel_gradient": numpy.kron(g, g).T.copy()}


@cache
def _matrix(r: int, name: str, xp, dtype: str):
    """One of ``transforms(r)`` as an array of ``xp`` and ``dtype`` (made once)."""
    return xp.asarray(transforms(r)[name], dtype=dtype)


def weights(w, xp):
    """U = G g G^T of every kernel of ``w`` (r, r, C, K): (n*n, C, K), one matrix per
    position (one product with kron(G, G), n*n x r*r, which allocates nothing but U)."""
    r = w.shape[0]
    u = xp.matmul(_matrix(r, "kernel", xp, w.dtype.str), w.reshape(r * r, -1))
    return u.reshape((-1,) + w.shape[2:])


def transposed_weights(w, xp):
    """U^T (n*n, K, C), contiguous, which the input gradient multiplies by: NumPy's stacked
    matmul ran a transposed view of U as its second operand at 60-70% of the speed of a
    contiguous array (62-70 against 103-107 GFLOP/s on tiles of M1's 5x5 layer)."""
    return xp.ascontiguousarray(weights(w, xp).transpose(0, 2, 1))


def weight_gradient(d_u, r: int, xp):
    """The gradient of the r x r kernels (r, r, C, K) from that of their transforms (n*n, C, K)
    (the adjoint of ``weights``)."""
    d_w = xp.matmul(_matrix(r, "kernel_gradient", xp, d_u.dtype.str), d_u.reshape(len(d_u), -1))
    return d_w.reshape((r, r) + d_u.shape[1:])


def transform_input(x, tiling: WinogradTiling, buffer, xp, out=None):
    """V = B^T d B of every n x n tile of the images ``x`` (t, H, W, C): (n*n, t*blocks, C),
    in ``out`` (n*n, t*blocks*C; rows may be strided) if given, else in a work array.

    ``buffer(name, shape)`` hands out the work arrays (contents undefined)."""
    t, h, w, c = x.shape
    top, _, left, _ = tiling.pad
    (bh, bw), m, n = tiling.blocks, tiling.block, tiling.tile
    padded = buffer("padded", (t,) + tiling.padded_hw + (c,))
    padded[:, :top] = 0
    padded[:, top + h:] = 0
    padded[:, top:top + h, :left] = 0
    padded[:, top:top + h, left + w:] = 0
    padded[:, top:top + h, left:left + w] = x
    s = padded.strides  # tile (i, j) of block (p, q) is padded pixel (m*p + i, m*q + j)
    view = xp.lib.stride_tricks.as_strided(
        padded, shape=(n, n, t, bh, bw, c),
        strides=(s[1], s[2], s[0], m * s[1], m * s[2], s[3]))
    tiles = buffer("tiles", view.shape)
    tiles[...] = view
    v = buffer("transformed", (n * n, t * bh * bw * c)) if out is None else out
    _on_both_axes(_matrix(tiling.kernel, "B_T", xp, x.dtype.str), tiles, v, buffer, xp)
    return v.reshape(v.shape[0], t * bh * bw, c)


def _on_both_axes(a, x, out, buffer, xp) -> None:
    """Writes kron(a, a) ``x`` into ``out`` (p*p, N) for ``x`` (q*q, N) with rows in tile order
    (i, j): the p x q matrix ``a`` along i, then along j (a batch of p products), through the
    work array "one_axis" (p*N values).

    On the CPU the first is a batch of q products with N/q columns each too: as one product
    with all N columns it ran at half the speed (OpenBLAS packs the whole wide operand,
    which then no longer fits in the cache; 105 against 52 us on a tile of eight 14x14x32
    images), and steps of M1-M3 took 4% longer, inference 8-18%.  CuPy would copy the
    strided batch's operand and result to contiguous arrays first (a tile's largest arrays,
    which the memory estimate does not count), so there it stays one product."""
    p, q = a.shape
    one_axis = buffer("one_axis", (p, x.size // q))
    if xp is numpy:
        xp.matmul(a, x.reshape(q, q, -1).transpose(1, 0, 2),  # (j, i, rest): a batch over j
                  out=one_axis.reshape(p, q, -1).transpose(1, 0, 2))
    else:
        xp.matmul(a, x.reshape(q, -1), out=one_axis)
    xp.matmul(a, one_axis.reshape(p, q, -1), out=out.reshape(p, p, -1))


def convolve(x, u, tiling: WinogradTiling, y, buffer, xp, kept=None, pool: int | None = None,
             winner=None) -> None:
    """Writes into ``y`` (t, Ho, Wo, K) the convolution of the images ``x`` with the
    transformed kernels ``u`` (n*n, C, K) (no bias); V goes into ``kept`` if given (see
    ``transform_input``), for the weight gradient.  With ``pool`` (a divisor of the block
    side), ``y`` (t, Ho // pool, Wo // pool, K) gets the maxima of the outputs' pool x pool
    windows instead, each taken inside its block, and ``winner`` (the same shape), if given,
    their first maxima (``window_maxima``)."""
    v = transform_input(x, tiling, buffer, xp, kept)
    t, k = len(x), u.shape[2]
    (bh, bw), m = tiling.blocks, tiling.block
    products = buffer("products", (v.shape[0], v.shape[1], k))
    xp.matmul(v, u, out=products)
    blocks = buffer("blocks", (m, m, t, bh, bw, k))
    _on_both_axes(_matrix(tiling.kernel, "A_T", xp, products.dtype.str), products,
                  blocks.reshape(m * m, -1), buffer, xp)
    won = None
    if pool is not None:  # blocks of maxima, (m/pool)^2 per block, in arrays free now
        side = m // pool
        # pixel (i, j) of window (a, b) is the block's pixel (a*pool + i, b*pool + j)
        windows = blocks.reshape(side, pool, side, pool, -1)
        maxima = buffer("products", (side, side, t, bh, bw, k))
        if winner is not None:
            won = buffer("one_axis", maxima.shape, winner.dtype)
        window_maxima([windows[:, i, :, j] for i in range(pool) for j in range(pool)],
                      maxima.reshape(side, side, -1), xp,
                      None if won is None else won.reshape(side, side, -1))
        blocks, m = maxima, side
    for target, found in ((y, blocks), (winner, won)):
        if found is not None:  # fewer than bh x bw blocks where a size is not a multiple of m
            for pixels, where in _block_pieces(target, m):
                pixels[...] = _block_values(found, *where)


def output_gradient(dy, tiling: WinogradTiling, buffer, xp, pool: int | None = None,
                    winner=None):
    """dM = A dY A^T of every m x m block of the output gradient dY (t, Ho, Wo, K):
    (n*n, t*blocks, K).  ``dy`` is dY, or with ``pool`` the gradient of the pool that
    ``convolve`` took (t, Ho // pool, Wo // pool, K) with its ``winner``: dY, the pool's
    input gradient (``window_gradient``), is then made in the blocks, a quarter of the
    values copied into them instead of all (and never written in image order)."""
    t, k = len(dy), dy.shape[-1]
    (bh, bw), m = tiling.blocks, tiling.block
    blocks = buffer("blocks", (m, m, t, bh, bw, k))
    if pool is None:
        _into_blocks(dy, blocks)
    else:  # each window inside a block, as in ``convolve``; the arrays are free until dM
        side = m // pool
        pooled = _into_blocks(dy, buffer("products", (side, side, t, bh, bw, k)))
        won = _into_blocks(winner, buffer("one_axis", pooled.shape, winner.dtype))
        window_gradient(pooled.reshape(1, side, side, -1), won.reshape(1, side, side, -1),
                        blocks.reshape(1, m, m, -1), (pool, pool), xp)
    d_m = buffer("products", (tiling.tile**2, t * bh * bw * k))
    _on_both_axes(_matrix(tiling.kernel, "A", xp, dy.dtype.str), blocks, d_m, buffer, xp)
    return d_m.reshape(d_m.shape[0], t * bh * bw, k)


def bias_gradient(d_m, tiling: WinogradTiling):
    """The output gradient summed over every pixel, (K,), from its transform ``d_m``
    (``output_gradient``): A's row at the point 1 is all ones, so dM's value (1, 1) of a
    tile is the sum of its block of dY (zeros beyond the map), and the sum over blocks is
    a sum of t*blocks rows instead of the m*m times as many of dY."""
    one = POINTS.index(1)
    return d_m[one * tiling.tile + one].sum(axis=0)


def input_gradient(d_m, u_t, tiling: WinogradTiling, dx, buffer, xp) -> None:
    """Writes into ``dx`` (t, H, W, C) the input gradient of ``convolve`` from the output
    gradient's transform ``d_m`` (n*n, t*blocks, K) (``output_gradient``, which the weight
    gradient needs too) and the transformed kernels, transposed, ``u_t`` (n*n, K, C)
    (``transposed_weights``): the adjoint of each step of forward, dV = dM U^T position by
    position, then d = B dV B^T for each tile, then the tiles added back where they were read
    from.  They overlap by r - 1 pixels; seen as m x m blocks, tile (p, q) covers the blocks
    (p + a, q + b) of the padded input for a, b in {0, 1} (a tile is 6 or 8 pixels, a block
    4), so the sum is one addition per (a, b) of all tiles at once.  The sums are made in the
    tiles' own layout, pixel of the block first (runs of a block row of C values), and put in
    image order once at the end: added through transposed views (runs of C values) they took
    1.7x as long (138 against 83 us on a tile of eight 14x14x32 images)."""
    t, h, w, c = dx.shape
    (bh, bw), m, n = tiling.blocks, tiling.block, tiling.tile
    d_v = buffer("transformed", (n * n, d_m.shape[1], c))
    xp.matmul(d_m, u_t, out=d_v)
    d_tiles = buffer("tiles", (n, n, t, bh, bw, c))
    _on_both_axes(_matrix(tiling.kernel, "B", xp, dx.dtype.str), d_v,
                  d_tiles.reshape(n * n, -1), buffer, xp)
    padded = buffer("padded", (t,) + tiling.padded_hw + (c,))
    grid = _blocked(padded, m)  # (t, block row, i, block column, j, C)
    # (i, j, t, block row, block column, C), in dV's array: free now, and sized for it
    summed = buffer("transformed", (m, m) + grid.shape[:2] + grid.shape[3:4] + (c,))
    spans = range(-(-n // m))
    for a in spans:
        for b in spans:
            part = d_tiles[a * m:(a + 1) * m, b * m:(b + 1) * m]  # (i, j, t, bh, bw, C)
            target = summed[:part.shape[0], :part.shape[1], :, a:a + bh, b:b + bw]
            if a == b == 0:  # covers all blocks but the last rows and columns once
                target[...] = part
                summed[:, :, :, bh:] = 0
                summed[:, :, :, :bh, bw:] = 0
            else:
                target += part
    grid[...] = summed.transpose(2, 3, 0, 4, 1, 5)
    top, _, left, _ = tiling.pad
    dx[...] = padded[:, top:top + h, left:left + w]


def _blocked(a, m: int, n: int | None = None):
    """``a`` (t, m*R, n*S, C) seen as m x n blocks (n = m by default): (t, R, m, S, n, C)."""
    t, h, w, c = a.shape
    n = n or m
    return a.reshape(t, h // m, m, w // n, n, c)


def _into_blocks(a, blocks):
    """Copies ``a`` (t, H, W, K) into ``blocks`` (m, m, t, bh, bw, K), its m x m blocks, with
    zeros where the blocks reach beyond it; returns ``blocks``."""
    m, (h, w), (bh, bw) = blocks.shape[0], a.shape[1:3], blocks.shape[3:5]
    if h != bh * m or w != bw * m:
        blocks[...] = 0
    for pixels, where in _block_pieces(a, m):
        _block_values(blocks, *where)[...] = pixels
    return blocks


def _block_pieces(a, m: int):
    """``a`` (t, H, W, C) in at most four pieces of m x m blocks, as pairs (the piece as
    ``_blocked``, where it lies in blocks: rows, columns (slices), pixels per block row and
    column): the whole blocks, and the part-filled last block row and column where H or W is
    not a multiple of m."""
    for rows, ni in _block_parts(a.shape[1], m):
        for cols, nj in _block_parts(a.shape[2], m):
            piece = a[:, rows.start * m:rows.start * m + (rows.stop - rows.start) * ni,
                      cols.start * m:cols.start * m + (cols.stop - cols.start) * nj]
            yield _blocked(piece, ni, nj), (rows, cols, ni, nj)


def _block_parts(length: int, m: int) -> list[tuple[slice, int]]:
    """The whole blocks of m pixels in ``length``, and the part-filled last one, as (block
    slice, pixels per block)."""
    whole, rest = divmod(length, m)
    return ([(slice(0, whole), m)] if whole else []) + ([(slice(whole, whole + 1), rest)]
                                                         if rest else [])


def _block_values(blocks, rows: slice, cols: slice, ni: int, nj: int):
    """Of ``blocks`` (m, m, t, bh, bw, K), value (i, j) of blocks (p, q) for i < ni, j < nj
    and p, q in ``rows``, ``cols``, seen as ``_blocked`` pixels: (t, p, i, q, j, K)."""
    return blocks[:ni, :nj, :, rows, cols].transpose(2, 3, 0, 4, 1, 5)
