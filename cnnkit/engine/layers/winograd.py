"""Winograd's minimal filtering F(2x2, 3x3) for 3x3 stride-1 convolutions (Lavin & Gray, 2016).

Used by ``Conv`` for the layers where the calculator predicts it wins
(``cnnkit.calculator.convolution.algorithm``, which says where that is and why): 3x3
kernels, stride 1, no dilation or groups, 128 to 256 channels on maps of 28x28 or more.

Every 2x2 block of outputs reads a 4x4 tile ``d`` of the padded input (tiles overlap by two
pixels).  With ``V = B^T d B`` for each input channel and ``U = G g G^T`` for each kernel ``g``,
the block is ``A^T M A`` where ``M = sum over input channels of U * V``, element by element.
For each of the 16 positions of the 4x4 transformed tile that sum is one matrix product
(tiles x C) @ (C x K): 16 products of C*K per 2x2 block against 36 for the direct sum, 2.25x
fewer multiplications.  The identity is exact in exact arithmetic (it is polynomial
multiplication modulo x(x - 1)(x + 1), evaluated at 0, 1, -1 and infinity); the transforms'
coefficients are 0, +-1 and +-1/2, so float32 results differ from the direct sum by a few
rounding errors (tests/test_winograd.py bounds them).

The transforms run on a few images at a time (a tile of the batch, as ``Conv``'s im2col), as
whole-array additions.  NumPy adds contiguous runs several times faster than strided ones, so
the padded input is stored with even and odd columns in two planes: every operand of the
input transform is then a run of whole rows, and the output transform works on contiguous
components that are copied into place at the end.

Backward: the weight gradient is the adjoint of the same maps, ``dU = sum over tiles of V^T
dM`` with ``dM = A dY A^T``, then ``dg = G^T dU G``; the input gradient of a stride-1
convolution is another such convolution (of the output gradient, with the kernel flipped and
its channels swapped, see ``conv.transposed_window``).
"""

from __future__ import annotations

import numpy

from ...calculator.convolution import WinogradTiling

# G of F(2, 3): U = G g G^T turns a 3x3 kernel into a 4x4 one
G = numpy.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
# dM = A dY A^T is computed without its minus signs (rows/columns 3 of A are negated); the
# weight gradient of position (a, b) takes them back: SIGNS[a] * SIGNS[b]
SIGNS = numpy.array([1.0, 1.0, 1.0, -1.0])


def weights(w, xp):
    """U = G g G^T of every kernel of ``w`` (3, 3, C, K): (16, C, K), one matrix per position."""
    g = xp.asarray(G, dtype=w.dtype)
    u = xp.einsum("ai,ijck,bj->abck", g, w, g)
    return xp.ascontiguousarray(u.reshape((16,) + w.shape[2:]))


def weight_gradient(d_u, xp):
    """The gradient of the kernels (3, 3, C, K) from that of their transforms (16, C, K)
    (the adjoint of ``weights``), the signs ``SIGNS`` left out of ``dM`` taken back."""
    signs = xp.asarray(numpy.outer(SIGNS, SIGNS), dtype=d_u.dtype)
    g = xp.asarray(G, dtype=d_u.dtype)
    d_u = d_u.reshape((4, 4) + d_u.shape[1:]) * signs[:, :, None, None]
    return xp.einsum("ai,abck,bj->ijck", g, d_u, g)


def transform_input(x, tiling: WinogradTiling, buffer, xp):
    """V = B^T d B of every 4x4 tile of the images ``x`` (t, H, W, C): (16, t*blocks, C).

    ``buffer(name, shape)`` hands out the work arrays (contents undefined)."""
    t, h, w, c = x.shape
    top, _, left, _ = tiling.pad
    bh, bw = tiling.blocks
    wq = tiling.plane_columns
    planes = buffer("padded", (t, tiling.padded_rows, 2, wq, c))
    planes[:, :top] = 0
    planes[:, top + h:] = 0
    for parity in (0, 1):  # padded column p = left + j lies in plane p % 2 at p // 2
        first = (parity - left) % 2  # the first input column of this plane
        start, count = (left + first) // 2, len(range(first, w, 2))
        plane = planes[:, top:top + h, parity]
        plane[:, :, :start] = 0
        plane[:, :, start + count:] = 0
        plane[:, :, start:start + count] = x[:, :, first::2]
    # B^T along the rows: 4 tile rows i read padded rows 2*block + i
    rows = buffer("rows", (4, t, bh, 2, wq, c))
    r = [planes[:, i:i + 2 * bh - 1:2] for i in range(4)]
    _combine(r, rows, xp)
    # ... and along the columns: tile column j is plane j % 2 from column j // 2
    tiles = buffer("tiles", (4, 4, t, bh, bw, c))
    for a in range(4):
        _combine([rows[a][:, :, j % 2, j // 2:j // 2 + bw] for j in range(4)], tiles[a], xp)
    return tiles.reshape(16, t * bh * bw, c)


def _combine(d, out, xp) -> None:
    """B^T applied across the four operands ``d``: d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    xp.subtract(d[0], d[2], out=out[0])
    xp.add(d[1], d[2], out=out[1])
    xp.subtract(d[2], d[1], out=out[2])
    xp.subtract(d[1], d[3], out=out[3])


def convolve(x, u, tiling: WinogradTiling, y, buffer, xp) -> None:
    """Writes into ``y`` (t, Ho, Wo, K) the convolution of the images ``x`` with the
    transformed kernels ``u`` (16, C, K) (no bias)."""
    v = transform_input(x, tiling, buffer, xp)
    bh, bw = tiling.blocks
    m = buffer("products", (16, v.shape[1], u.shape[2]))
    xp.matmul(v, u, out=m)
    m = m.reshape((4, 4, len(x), bh, bw, u.shape[2]))
    # A^T M A, A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: first over rows, then over columns
    blocks = buffer("blocks", (2, 2, len(x), bh, bw, u.shape[2]))
    s = m[:2]  # overwritten in place: row 0 of A^T M into m[0], row 1 into m[1]
    xp.add(m[0], m[1], out=s[0])
    s[0] += m[2]
    xp.subtract(m[1], m[2], out=s[1])
    s[1] -= m[3]
    for row in (0, 1):
        out = blocks[row]
        xp.add(s[row][0], s[row][1], out=out[0])
        out[0] += s[row][2]
        xp.subtract(s[row][1], s[row][2], out=out[1])
        out[1] -= s[row][3]
    for row in (0, 1):
        for col in (0, 1):
            target = y[:, row::2, col::2]
            target[...] = blocks[row, col][:, :target.shape[1], :target.shape[2]]


def output_gradient(dy, tiling: WinogradTiling, buffer, xp) -> list:
    """dM = A dY A^T of every 2x2 block of ``dy`` (t, Ho, Wo, K), without the minus signs of
    ``SIGNS``: 16 arrays (t*blocks, K), position by position (some share memory)."""
    t, ho, wo, k = dy.shape
    bh, bw = tiling.blocks
    blocks = buffer("blocks", (2, 2, t, bh, bw, k))
    for row in (0, 1):
        for col in (0, 1):
            source = dy[:, row::2, col::2]
            target = blocks[row, col]
            target[:, :source.shape[1], :source.shape[2]] = source
            target[:, source.shape[1]:] = 0  # the dropped outputs of an odd size
            target[:, :, source.shape[2]:] = 0
    # A along the columns: (dY0, dY0 + dY1, dY0 - dY1, dY1) per block row, then along rows
    sums = buffer("products", (2, 2, t, bh, bw, k))  # [block row][sum, difference]
    across = []
    for row in (0, 1):
        xp.add(blocks[row, 0], blocks[row, 1], out=sums[row, 0])
        xp.subtract(blocks[row, 0], blocks[row, 1], out=sums[row, 1])
        across.append([blocks[row, 0], sums[row, 0], sums[row, 1], blocks[row, 1]])
    d_m = [None] * 16
    extra = buffer("gradients", (2, 4, t, bh, bw, k))
    for b in range(4):
        first, second = across[0][b], across[1][b]
        xp.add(first, second, out=extra[0, b])
        xp.subtract(first, second, out=extra[1, b])
        for a, part in enumerate((first, extra[0, b], extra[1, b], second)):
            d_m[4 * a + b] = part.reshape(-1, k)
    return d_m
