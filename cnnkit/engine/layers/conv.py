"""Convolution, channels last, tile by tile: im2col + one matrix product per group, or
Winograd's F(4x4, 3x3) or F(4x4, 5x5) where the calculator predicts it is faster."""

from __future__ import annotations

import math

import numpy

from ...calculator import convolution, memory
from .. import parallel
from . import winograd
from .base import Layer, Scratch
from .windows import Window, window_gradient, window_maxima


def transposed_window(window: Window, groups: int, node, in_shape) -> Window | None:
    """The window that computes a stride-1 ungrouped convolution's input gradient as another
    convolution: of the output gradient, padded by (k - 1)*dilation - pad on each side, with
    the kernel flipped (None for other convolutions, or padding wider than the kernel)."""
    pad = convolution.transposed_pad(node.attrs)
    if pad is None:
        return None
    attrs = {"kernel": window.kernel, "stride": (1, 1), "dilation": window.dilation, "pad": pad}
    return Window(attrs, node.name, node.out, in_shape)


class Conv(Layer):
    """Grouped, strided, dilated, padded 2-D convolution.

    W is stored (kh, kw, C/groups, out_channels): with NHWC input an im2col row is
    (kh, kw, C/groups) in memory order, so rows @ W.reshape(K, O) is the whole layer and its
    result already is (N, Ho, Wo, O).  Groups are the leading axis of a batched matmul.

    The batch is worked through in tiles (``parallel.tiled_chunks``: a few images on the CPU,
    so the im2col buffer stays in cache, shared among threads; large tiles on a GPU).  The rows are
    not kept for backward: backward rebuilds each tile's rows, which costs one cheap copy and
    saves the largest array of the step.  The input gradient of a stride-1 ungrouped
    convolution is one more convolution (``transposed_window``: im2col of the output gradient
    and one product); other convolutions multiply the output gradient into row gradients and
    add them back kernel offset by kernel offset (col2im).  Where the calculator picks
    Winograd (``cnnkit.calculator.convolution.algorithm``), forward, input gradient and
    weight gradient each run through ``winograd`` instead, tile by tile as well; both
    gradients start from the same transform of the output gradient, and a training forward
    keeps the transformed input V for the weight gradient
    (``convolution.kept_transform``, which the memory estimate counts).  A layer whose
    output only a tiling max pool reads takes the pool's maxima tile by tile, and in
    training sends the pool's gradient to their winners (``pooled_forward``).
    """

    def __init__(self, node, in_shapes, xp, dtype, seed=0):
        super().__init__(node, in_shapes, xp, dtype, seed)
        attrs = node.attrs
        self.window = Window(attrs, node.name, in_shapes[0], node.out)
        self.groups = attrs.get("groups", 1)
        kh, kw = self.window.kernel
        per_group = in_shapes[0].c // self.groups
        out = attrs["out_channels"]
        self.add_param("W", (kh, kw, per_group, out))
        if attrs.get("bias", True):
            self.add_param("b", (out,))
        self.fans = (kh * kw * per_group, kh * kw * out // self.groups)
        self.shapes = (in_shapes[0], node.out)
        self.algorithm = convolution.algorithm(attrs, in_shapes[0].c, (node.out.h, node.out.w))
        self.tiling = (convolution.WinogradTiling(self.window.in_hw, self.window.pad, kh)
                       if self.algorithm == "winograd" else None)
        self.transposed = transposed_window(self.window, self.groups, node, in_shapes[0])
        self.tap_major = convolution.tap_major(attrs, in_shapes[0].c)
        self.output_mask = None  # the ReLU whose mask backward applies to dy (set by the Model)
        self._kept = None  # Winograd's V of the last training forward, (n*n, N*blocks*C)
        self._pool = self._winner = None  # a pooled training forward's windows, winners
        self.workspace = Scratch(xp)  # work arrays of tiles; the Model shares one among layers

    @property
    def bias_row(self) -> bool:
        """Whether the tap-major rows of an im2col layer carry a row of ones for the bias
        (``convolution.bias_row``)."""
        return (self.tiling is None and self.tap_major
                and convolution.bias_row(self.node.attrs, self.shapes[0].c))

    def _weights(self):
        """W as (G, K/G, O/G): one matrix per group."""
        w = self.params["W"]
        return w.reshape(-1, self.groups, w.shape[-1] // self.groups).transpose(1, 0, 2)

    def _flipped(self):
        """The kernel of the input gradient's convolution: W flipped, in and out swapped,
        (kh, kw, O, C)."""
        return self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2)

    def _per_image(self, backward: bool, training: bool, pool=None) -> dict[str, int]:
        """Values per image of each work array of a forward or backward tile
        (``convolution.tile_values``).  A first layer's backward, with no input gradient,
        takes tiles as large as its forward's: its transposed rows (kh*kw*O per pixel) would
        shrink them to one image, and a layer with one or three input channels would then
        spend its time in per-tile overhead."""
        masked = self.output_mask is not None or self._winner is not None
        return convolution.tile_values(self.node.attrs, *self.shapes, backward, self.input_grad,
                                       self.algorithm, masked=masked, training=training,
                                       pool=pool)

    def _chunks(self, n: int, backward: bool = False, training: bool = True,
                pool: tuple[int, int] | None = None) -> list[list[slice]]:
        """Chunks of tiles, and the bytes each work array of the pass's largest tile (its
        first) needs: the workspace grows to them at once, not tile by tile."""
        values = self._per_image(backward, training, pool)
        budget = memory.tile_bytes(self.algorithm, "cpu" if self.xp is numpy else "gpu",
                                   self.tap_major)
        chunks = parallel.tiled_chunks(n, max(values.values()) * self.dtype.itemsize, budget,
                                       self.xp)
        images = chunks[0][0].stop
        self._reserved = {key: images * v * self.dtype.itemsize for key, v in values.items()}
        return chunks

    def _buffers(self, worker: int):
        """``buffer(name, shape, dtype)``: the worker's work array ``name`` (contents undefined)."""
        def buffer(name: str, shape: tuple[int, ...], dtype=self.dtype):
            return self.workspace.view(f"{name}{worker}", shape, dtype, self._reserved[name])
        return buffer

    def _rows(self, x, tile: slice, buffer, window: Window | None = None, pool=None):
        """im2col of the images ``x[tile]`` for ``window`` (the layer's by default):
        (G, t*Ho*Wo, K/G), in the worker's buffer; for a ``tap_major`` layer's own window,
        its transpose (K, t*Ho*Wo), and a row of ones below it if the layer has a bias
        (``bias_row``).  With ``pool`` windows, the pixels in their order
        (``Window.taps``): ph*pw blocks of t*(Ho // ph)*(Wo // pw) rows."""
        window, x_t = window or self.window, x[tile]
        t = len(x_t)
        if any(window.pad):
            x_t = window.pad_into(x_t, buffer("padded", (t,) + window.padded_hw + x.shape[3:],
                                              x.dtype), 0)
        if self.tap_major and window is self.window:
            view = window.taps(x_t, pool)  # (kh, kw, C, pixels...)
            taps = view.shape[0] * view.shape[1] * view.shape[2]
            rows = buffer("rows", (taps + self.bias_row, view[0, 0, 0].size), x.dtype)
            rows[:taps].reshape(view.shape)[...] = view
            rows[taps:] = 1
            return rows
        view = window.columns(x_t, self.groups, pool)  # (G, pixels..., kh, kw, C/G)
        rows = buffer("rows", view.shape, x.dtype)
        rows[...] = view  # the im2col copy
        return rows.reshape(self.groups, -1, math.prod(view.shape[-3:]))

    def forward(self, xs, train):
        return self._forward(xs[0], train)

    def pooled_forward(self, x, train: bool, pool: tuple[int, int], relu: bool):
        """This layer's forward followed by a tiling max pool of ``pool`` windows that alone
        reads its output, directly or through a ReLU (``relu``) that alone reads it
        (``memory.pooled_convolutions``): the pool's output.  Each tile is pooled while it
        is in cache, so neither this layer's output nor the ReLU's is written whole:
        Winograd takes the maxima from its output blocks, im2col computes the pixels window
        by window (``Window.taps``), so that the maxima are over whole blocks of rows.  The
        bias is added, and the ReLU applied, to the pooled tile (both commute with a
        maximum, bit for bit: rounding is monotonic).  Training notes each window's winner,
        or none where the ReLU stops the gradient, and ``backward`` then takes the pool's
        output gradient.  (The winners are those of the products before the bias, which
        differ from the biased outputs' only where adding the bias rounds two values to
        one: the gradient then goes to the larger, not to the first.)"""
        return self._forward(x, train, pool, relu)

    def _forward(self, x, train: bool, pool: tuple[int, int] | None = None, relu: bool = False):
        xp, groups = self.xp, self.groups
        n = x.shape[0]
        out = self.params["W"].shape[-1]
        w_g, bias = self._weights(), self.params.get("b")
        (ho, wo) = self.window.out_hw
        out_hw = (ho, wo) if pool is None else (ho // pool[0], wo // pool[1])
        y = xp.empty((n,) + out_hw + (out,), xp.result_type(x, w_g))
        self._pool, self._winner = pool, None
        if train and pool is not None:  # len(pixels) marks a window the ReLU stops
            pixels = pool[0] * pool[1]
            self._winner = xp.empty(y.shape, f"uint{8 * memory.winner_bytes(pixels + 1)}")
        if self.bias_row:  # the bias as the weights of the rows' row of ones
            w_g, bias = xp.concatenate([w_g[0], bias[None]])[None], None
        chunks = self._chunks(n, training=train, pool=pool)
        u = winograd.weights(self.params["W"], xp) if self.tiling else None
        if u is None or not train:
            self._kept = None
        elif self._kept is None or self._kept.shape[1] != n * self._kept_per_image:
            # one array for every training step of this batch size: freed and made again,
            # one this large (V is 2.25-4x the layer input) would come fresh from the OS,
            # every page faulted in and zeroed
            self._kept = None  # the last batch size's, freed before this one's is made
            self._kept = xp.empty((self.tiling.tile**2, n * self._kept_per_image), self.dtype)

        def work(tiles: list[slice], worker: int) -> None:
            buffer = self._buffers(worker)
            for tile in tiles:
                y_t = y[tile]
                winner = None if self._winner is None else self._winner[tile]
                # where im2col's products go: the outputs, or with a pool the pixels of its
                # windows, one block of rows per row of a window
                computed = y_t if pool is None or u is not None else buffer(
                    "output", (pool[0], y_t.size // out, pool[1], out))
                if u is not None:
                    winograd.convolve(x[tile], u, self.tiling, y_t, buffer, xp,
                                      self._kept_tile(tile), pool and pool[0], winner)
                elif self.tap_major:
                    rows = self._rows(x, tile, buffer, pool=pool)
                    xp.matmul(rows.T, w_g[0], out=computed.reshape(-1, out))
                else:
                    rows = self._rows(x, tile, buffer, pool=pool)
                    # (G, m, O/G) view of the products: themselves when groups == 1
                    y_g = computed.reshape(-1, groups, out // groups).transpose(1, 0, 2)
                    xp.matmul(rows, w_g, out=y_g)
                if computed is not y_t:
                    self._take_maxima(computed, y_t, winner)
                if bias is not None:
                    y_t += bias
                if relu:
                    xp.maximum(y_t, 0, out=y_t)
                    if winner is not None:  # (putmask: 10x slower)
                        stopped = xp.multiply(y_t <= 0, winner.dtype.type(pixels))
                        xp.maximum(winner, stopped, out=winner)

        parallel.run(work, chunks, xp)
        self._x = x
        return y

    def _take_maxima(self, computed, y, winner) -> None:
        """Writes into ``y`` the maxima of im2col's products ``computed`` (ph, pixels, pw, O),
        the pixels of a pool's windows row by row of a window (``Window.taps``), and into
        ``winner``, if given, each window's first maximum (then pixel by pixel, in scan
        order: the rows' blocks first would find the first maximum of a column)."""
        xp, out = self.xp, computed.shape[-1]
        if winner is None:  # over the rows' blocks, then along the rows
            window_maxima(computed, computed[0], xp)
            window_maxima(computed[0].transpose(1, 0, 2), y.reshape(-1, out), xp)
        else:
            (ph, _, pw, _) = computed.shape
            window_maxima([computed[i][:, j] for i in range(ph) for j in range(pw)],
                          y.reshape(-1, out), xp, winner.reshape(-1, out))

    @property
    def _kept_per_image(self) -> int:
        """Columns of the kept V per image: n*n rows of blocks*C values."""
        (bh, bw) = self.tiling.blocks
        return bh * bw * self.shapes[0].c

    def _kept_tile(self, tile: slice):
        """The columns of the kept V that hold the images ``tile`` (None when not kept: the
        last forward was not training)."""
        if self._kept is None:
            return None
        per_image = self._kept_per_image
        return self._kept[:, tile.start * per_image:tile.stop * per_image]

    def backward(self, dy):
        x, xp = self._x, self.xp
        dx = xp.empty(x.shape, xp.result_type(dy, self.params["W"])) if self.input_grad else None
        chunks = self._chunks(len(x), backward=True, training=self._kept is not None,
                              pool=None if self._winner is None else self._pool)
        tile_pass = self._winograd_tile if self.tiling else self._im2col_tile
        # the kernels the input gradient is made with, once for all tiles
        if dx is None:
            kernels = None
        elif self.tiling:  # the forward's transformed ones, transposed
            kernels = winograd.transposed_weights(self.params["W"], xp)
        elif self.transposed:  # flipped, (kh*kw*O, C)
            kernels = self._flipped().reshape(-1, self.params["W"].shape[2])
        else:
            kernels = None  # col2im instead

        def work(tiles: list[slice], worker: int):
            buffer, d_w, d_b = self._buffers(worker), None, None
            for tile in tiles:
                dy_t = self._output_gradient(dy, tile, buffer)
                part_w, part_b = tile_pass(tile, dy_t, None if dx is None else dx[tile],
                                           buffer, kernels)
                d_w = part_w if d_w is None else xp.add(d_w, part_w, out=d_w)
                if part_b is not None:
                    d_b = part_b if d_b is None else xp.add(d_b, part_b, out=d_b)
            if self.tiling:  # r*r values per kernel pair, not n*n, wait for the other chunks
                d_w = winograd.weight_gradient(d_w, self.tiling.kernel, xp)
            return d_w, d_b

        partials = parallel.run(work, chunks, xp)
        d_w, d_b = partials[0]
        for more_w, more_b in partials[1:]:  # in chunk order: deterministic
            d_w += more_w
            if d_b is not None:
                d_b += more_b
        if self.bias_row:  # the product with the row of ones: dy summed over pixels
            d_w, d_b = d_w[..., :-1], d_w[0, :, -1]
        if self.tiling:
            self.grads["W"][...] = d_w
        else:
            out = self.params["W"].shape[-1]
            self.grads["W"].reshape(-1, self.groups, out // self.groups)[...] = \
                d_w.transpose(2, 0, 1)
        if d_b is not None:
            self.grads["b"][...] = d_b
        return [dx]

    def _output_gradient(self, dy, tile: slice, buffer):
        """The tile's output gradient, times the following ReLU's mask when this layer
        applies it (``output_mask``): one product on a tile in cache instead of a pass of
        the ReLU over the whole gradient.  After a pooled training forward ``dy`` is the
        pool's output gradient, and goes to the pixels that won their windows (Winograd's
        tile pass sends it there in its blocks: this returns it as it is)."""
        if self._winner is not None and self.tiling is not None:
            return dy[tile]
        if self._winner is not None:
            shape = (tile.stop - tile.start,) + self.window.out_hw + dy.shape[-1:]
            dy_t = buffer("masked", shape, dy.dtype)
            window_gradient(dy[tile], self._winner[tile], dy_t, self._pool, self.xp)
            return dy_t
        if self.output_mask is None:
            return dy[tile]
        dy_t = buffer("masked", dy[tile].shape, dy.dtype)
        return self.xp.multiply(dy[tile], self.output_mask._y[tile] > 0, out=dy_t)

    def _im2col_tile(self, tile: slice, dy, dx, buffer, flipped):
        """One tile's backward by im2col, from its images ``tile`` and output gradient ``dy``:
        returns its weight gradient (G, O/G, K/G) and bias gradient (None without a bias, or
        with a ``bias_row``, whose weight gradient holds it) and writes its input gradient
        into ``dx`` (when wanted: by the ``flipped`` kernels, or col2im where those are
        None)."""
        xp, groups, every = self.xp, self.groups, slice(None)
        rows = self._rows(self._x, tile, buffer)
        dy_g = dy.reshape(-1, groups, dy.shape[-1] // groups).transpose(1, 0, 2)
        if self.tap_major:  # (K, m) @ (m, O), seen as (1, O, K) (K + 1 with ``bias_row``)
            d_w = xp.matmul(rows, dy_g[0]).T[None]
        else:
            # transposing dy rather than rows spares CuPy, which copies transposed operands,
            # a copy of the larger one
            d_w = xp.matmul(dy_g.transpose(0, 2, 1), rows)
        if dx is not None and flipped is not None:
            d_rows = self._rows(dy, every, buffer, self.transposed)  # reuses the buffer
            xp.matmul(d_rows[0], flipped, out=dx.reshape(-1, dx.shape[-1]))
        elif dx is not None:
            w_t = self._weights().transpose(0, 2, 1)  # (G, O/G, K/G)
            d_rows = xp.matmul(dy_g, w_t, out=buffer("rows", dy_g.shape[:2] + w_t.shape[2:]))
            self._col2im(d_rows, dx)  # d_rows reuses the rows' buffer
        if "b" not in self.grads or self.bias_row:
            return d_w, None
        return d_w, dy.reshape(-1, dy.shape[-1]).sum(axis=0)

    def _winograd_tile(self, tile: slice, dy, dx, buffer, u_t):
        """One tile's backward by Winograd: returns its gradient of the transformed kernels
        (n*n, C, O), dU = V^T dM position by position (V as a training forward kept it, else
        transformed again), and of the bias (``winograd.bias_gradient``), and writes its input
        gradient into ``dx`` (when wanted) from the same dM and the transformed kernels,
        transposed, ``u_t`` (n*n, O, C)."""
        xp, kept = self.xp, self._kept_tile(tile)
        v = (winograd.transform_input(self._x[tile], self.tiling, buffer, xp) if kept is None
             else kept.reshape(self.tiling.tile**2, -1, self.shapes[0].c))
        if self._winner is None:
            d_m = winograd.output_gradient(dy, self.tiling, buffer, xp)
        else:  # dy is the pool's output gradient
            d_m = winograd.output_gradient(dy, self.tiling, buffer, xp, self._pool[0],
                                           self._winner[tile])
        d_u = xp.matmul(v.transpose(0, 2, 1), d_m)
        d_b = winograd.bias_gradient(d_m, self.tiling) if "b" in self.grads else None
        if dx is not None:
            winograd.input_gradient(d_m, u_t, self.tiling, dx, buffer, xp)
        return d_u, d_b

    def _col2im(self, d_rows, dx):
        """Adds the row gradients (G, t*Ho*Wo, K/G) into ``dx`` (t, H, W, C), one kernel offset
        at a time: each offset's block goes to one strided slice of ``dx``, padding skipped."""
        window, groups = self.window, self.groups
        t, h, w, c = dx.shape
        ho, wo = window.out_hw
        kh, kw = window.kernel
        blocks = d_rows.reshape(groups, t, ho, wo, kh, kw, c // groups)
        target = dx.reshape(t, h, w, groups, c // groups)
        target[...] = 0
        for i, j in window.offsets:
            where = window.clipped(i, j)
            if where is None:
                continue
            out_rows, out_cols, in_rows, in_cols = where
            block = blocks[:, :, out_rows, out_cols, i, j]  # (G, t, r, s, C/G)
            target[:, in_rows, in_cols] += self.xp.moveaxis(block, 0, 3)
