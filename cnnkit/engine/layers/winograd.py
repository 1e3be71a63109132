"""Winograd's minimal filtering F(4x4, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray, 2016).

Used by ``Conv`` for the layers where the calculator predicts it wins
(``cnnkit.calculator.convolution.algorithm``, which says where that is and why): 3x3
kernels, stride 1, no dilation or groups, and enough channels on both sides.

Every 4x4 block of outputs reads a 6x6 tile ``d`` of the padded input (tiles overlap by two
pixels).  With ``V = B^T d B`` for each input channel and ``U = G g G^T`` for each kernel ``g``,
the block is ``A^T M A`` where ``M = sum over input channels of U * V``, element by element.
For each of the 36 positions of the 6x6 transformed tile that sum is one matrix product
(tiles x C) @ (C x K): 36 products of C*K per 4x4 block against 144 for the direct sum, 4x
fewer multiplications.  The identity is exact in exact arithmetic (polynomial multiplication
modulo x(x - 1)(x + 1)(x - 2)(x + 2), evaluated at 0, +-1, +-2 and infinity); in float32 the
transforms' coefficients (up to 5 in ``B``, 8 in ``A``, 1/24 in ``G``) cost about one decimal
digit: results differ from the direct sum by ~1e-5 relative (tests/test_winograd.py bounds
them well inside the 1e-4 the engine promises).

All three transforms are matrix products too, so NumPy (or CuPy) spends the time in BLAS:
the 6x6 tiles of a few images (a tile of the batch, as ``Conv``'s im2col) are gathered from a
strided view into a (36, tiles*C) array, and ``B^T d B`` for all of them is one product with
the 36x36 matrix kron(B^T, B^T); ``A^T M A`` is one product with kron(A^T, A^T) (16x36).  The
Kronecker form does 3x the multiplications of applying B^T to rows and then to columns, but
in one pass over memory instead of two, which is what costs on a CPU.

Backward: the weight gradient is the adjoint of the same maps, ``dU = V^T dM`` position by
position with ``dM = kron(A, A) dY``, then ``dg = G^T dU G``; the input gradient of a stride-1
convolution is another such convolution (of the output gradient, with the kernel flipped and
its channels swapped, see ``conv.transposed_window``).
"""

from __future__ import annotations

from functools import cache

import numpy

from ...calculator.convolution import WinogradTiling

# F(4, 3) at the points 0, 1, -1, 2, -2 and infinity
B_T = numpy.array([[4, 0, -5, 0, 1, 0],
                   [0, -4, -4, 1, 1, 0],
                   [0, 4, -4, -1, 1, 0],
                   [0, -2, -1, 2, 1, 0],
                   [0, 2, -1, -2, 1, 0],
                   [0, 4, 0, -5, 0, 1]], dtype=float)
G = numpy.array([[1 / 4, 0, 0],
                 [-1 / 6, -1 / 6, -1 / 6],
                 [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6],
                 [1 / 24, -1 / 12, 1 / 6],
                 [0, 0, 1]])
A_T = numpy.array([[1, 1, 1, 1, 1, 0],
                   [0, 1, -1, 2, -2, 0],
                   [0, 1, 1, 4, 4, 0],
                   [0, 1, -1, 8, -8, 1]], dtype=float)
MATRICES = {"input": numpy.kron(B_T, B_T),  # (36, 36): a tile's 36 values -> V
            "output": numpy.kron(A_T, A_T),  # (16, 36): M -> a block's 16 outputs
            "output_gradient": numpy.kron(A_T, A_T).T.copy()}  # (36, 16): dY -> dM


@cache
def _matrix(name: str, xp, dtype: str):
    """One of ``MATRICES`` as an array of ``xp`` and ``dtype`` (made once)."""
    return xp.asarray(MATRICES[name], dtype=dtype)


def weights(w, xp):
    """U = G g G^T of every kernel of ``w`` (3, 3, C, K): (36, C, K), one matrix per position."""
    return _both_sides(xp.asarray(G, dtype=w.dtype), w, xp).reshape((36,) + w.shape[2:])


def weight_gradient(d_u, xp):
    """The gradient of the kernels (3, 3, C, K) from that of their transforms (36, C, K)
    (the adjoint of ``weights``)."""
    g_t = xp.asarray(G.T, dtype=d_u.dtype)
    return _both_sides(g_t, d_u.reshape((6, 6) + d_u.shape[1:]), xp)


def _both_sides(m, a, xp):
    """m a m^T for each (C, K) pair of ``a`` (p, p, C, K), as two matrix products (einsum
    would loop over all C*K pairs in Python's C loop instead of BLAS)."""
    rows = xp.tensordot(m, a, axes=(1, 0))  # (q, p, C, K)
    both = xp.tensordot(m, rows, axes=(1, 1))  # (q, q, C, K), the column index first
    return xp.ascontiguousarray(both.transpose(1, 0, 2, 3))


def transform_input(x, tiling: WinogradTiling, buffer, xp):
    """V = B^T d B of every 6x6 tile of the images ``x`` (t, H, W, C): (36, t*blocks, C).

    ``buffer(name, shape)`` hands out the work arrays (contents undefined)."""
    t, h, w, c = x.shape
    top, _, left, _ = tiling.pad
    bh, bw = tiling.blocks
    padded = buffer("padded", (t,) + tiling.padded_hw + (c,))
    padded[:, :top] = 0
    padded[:, top + h:] = 0
    padded[:, top:top + h, :left] = 0
    padded[:, top:top + h, left + w:] = 0
    padded[:, top:top + h, left:left + w] = x
    s = padded.strides  # tile (i, j) of block (r, q) is padded pixel (4r + i, 4q + j)
    view = xp.lib.stride_tricks.as_strided(
        padded, shape=(6, 6, t, bh, bw, c), strides=(s[1], s[2], s[0], 4 * s[1], 4 * s[2], s[3]))
    tiles = buffer("tiles", view.shape)
    tiles[...] = view
    v = buffer("transformed", (36, t * bh * bw * c))
    xp.matmul(_matrix("input", xp, x.dtype.str), tiles.reshape(36, -1), out=v)
    return v.reshape(36, t * bh * bw, c)


def convolve(x, u, tiling: WinogradTiling, y, buffer, xp) -> None:
    """Writes into ``y`` (t, Ho, Wo, K) the convolution of the images ``x`` with the
    transformed kernels ``u`` (36, C, K) (no bias)."""
    v = transform_input(x, tiling, buffer, xp)
    t, k = len(x), u.shape[2]
    bh, bw = tiling.blocks
    m = buffer("products", (36, v.shape[1], k))
    xp.matmul(v, u, out=m)
    blocks = buffer("blocks", (4, 4, t, bh, bw, k))
    xp.matmul(_matrix("output", xp, m.dtype.str), m.reshape(36, -1), out=blocks.reshape(16, -1))
    for i in range(4):  # output pixel (4r + i, 4q + j) is value (i, j) of block (r, q)
        for j in range(4):
            target = y[:, i::4, j::4]  # fewer blocks than bh x bw where a size is not 4n
            target[...] = blocks[i, j][:, :target.shape[1], :target.shape[2]]


def output_gradient(dy, tiling: WinogradTiling, buffer, xp):
    """dM = A dY A^T of every 4x4 block of ``dy`` (t, Ho, Wo, K): (36, t*blocks, K)."""
    t, _, _, k = dy.shape
    bh, bw = tiling.blocks
    blocks = buffer("blocks", (4, 4, t, bh, bw, k))
    for i in range(4):
        for j in range(4):
            source, target = dy[:, i::4, j::4], blocks[i, j]
            target[:, :source.shape[1], :source.shape[2]] = source
            target[:, source.shape[1]:] = 0  # outputs beyond the map, dropped in forward
            target[:, :, source.shape[2]:] = 0
    d_m = buffer("products", (36, t * bh * bw * k))
    xp.matmul(_matrix("output_gradient", xp, dy.dtype.str), blocks.reshape(16, -1), out=d_m)
    return d_m.reshape(36, t * bh * bw, k)
