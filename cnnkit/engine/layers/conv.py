"""Convolution as im2col + one matrix product per group, channels last, tile by tile."""

from __future__ import annotations

from .. import parallel
from .base import Layer, Scratch
from .windows import Window


def transposed_window(window: Window, groups: int, node, in_shape) -> Window | None:
    """The window that computes a stride-1 ungrouped convolution's input gradient as another
    convolution: of the output gradient, padded by (k - 1)*dilation - pad on each side, with
    the kernel flipped (None for other convolutions, or padding wider than the kernel)."""
    if window.stride != (1, 1) or groups != 1:
        return None
    (kh, kw), (dh, dw) = window.kernel, window.dilation
    top, bottom, left, right = window.pad
    pad = ((kh - 1) * dh - top, (kh - 1) * dh - bottom, (kw - 1) * dw - left, (kw - 1) * dw - right)
    if min(pad) < 0:
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
    add them back kernel offset by kernel offset (col2im).
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
        self.transposed = transposed_window(self.window, self.groups, node, in_shapes[0])
        ho, wo = self.window.out_hw
        h, w = self.window.in_hw
        # values per image of the im2col rows and the padded input: the forward's, and the
        # transposed convolution's of the input gradient (not sized for without one)
        self.forward_values = (ho * wo * kh * kw * in_shapes[0].c,
                               self._padded_values(self.window, in_shapes[0].c))
        self.transposed_values = (
            (h * w * kh * kw * out, self._padded_values(self.transposed, out))
            if self.transposed else (0, 0))
        self.workspace = Scratch(xp)  # im2col tiles; the Model shares one among its layers

    @staticmethod
    def _padded_values(window: Window, channels: int) -> int:
        return window.padded_hw[0] * window.padded_hw[1] * channels if any(window.pad) else 0

    def _weights(self):
        """W as (G, K/G, O/G): one matrix per group."""
        w = self.params["W"]
        return w.reshape(-1, self.groups, w.shape[-1] // self.groups).transpose(1, 0, 2)

    def _per_image(self, backward: bool) -> tuple[int, int]:
        """(rows, padded input) values per image of a forward or backward tile.  A first
        layer's backward, with no input gradient, takes tiles as large as its forward's: its
        transposed rows (kh*kw*O per pixel) would shrink them to one image, and a layer with
        one or three input channels would then spend its time in per-tile overhead."""
        if backward and self.input_grad:
            return tuple(map(max, self.forward_values, self.transposed_values))
        return self.forward_values

    def _chunks(self, n: int, backward: bool = False) -> list[list[slice]]:
        return parallel.tiled_chunks(n, self._per_image(backward)[0] * self.dtype.itemsize,
                                     self.xp)

    def _reserve(self, chunks: list[list[slice]], backward: bool) -> tuple[int, int]:
        """Bytes of a pass's largest tile (its first) of rows and of padded input: the
        workspace grows to them at once, not tile by tile."""
        images = chunks[0][0].stop
        return tuple(images * values * self.dtype.itemsize
                     for values in self._per_image(backward))

    def _rows(self, x, tile: slice, worker: int, window: Window | None = None):
        """im2col of the images ``x[tile]`` for ``window`` (the layer's by default):
        (G, t*Ho*Wo, K/G), in the worker's buffer."""
        window, x_t = window or self.window, x[tile]
        t = len(x_t)
        if any(window.pad):
            shape = (t,) + window.padded_hw + x.shape[3:]
            buffer = self.workspace.view(f"padded{worker}", shape, x.dtype, self._reserved[1])
            x_t = window.pad_into(x_t, buffer, 0)
        view = window.columns(x_t, self.groups)  # (G, t, Ho, Wo, kh, kw, C/G)
        rows = self.workspace.view(f"rows{worker}", view.shape, x.dtype, self._reserved[0])
        rows[...] = view  # the im2col copy
        g, _, ho, wo = view.shape[:4]
        return rows.reshape(g, t * ho * wo, -1)

    def forward(self, xs, train):
        x, xp, groups = xs[0], self.xp, self.groups
        n = x.shape[0]
        out = self.params["W"].shape[-1]
        w_g, bias = self._weights(), self.params.get("b")
        y = xp.empty((n,) + self.window.out_hw + (out,), xp.result_type(x, w_g))
        chunks = self._chunks(n)
        self._reserved = self._reserve(chunks, backward=False)

        def work(tiles: list[slice], worker: int) -> None:
            for tile in tiles:
                rows = self._rows(x, tile, worker)
                # (G, m, O/G) view of y's tile: y itself when groups == 1
                y_g = y[tile].reshape(-1, groups, out // groups).transpose(1, 0, 2)
                xp.matmul(rows, w_g, out=y_g)
                if bias is not None:
                    y[tile] += bias

        parallel.run(work, chunks, xp)
        self._x = x
        return y

    def backward(self, dy):
        x, xp, groups = self._x, self.xp, self.groups
        out = self.params["W"].shape[-1]
        w_g = self._weights()
        dx = xp.empty(x.shape, xp.result_type(dy, w_g)) if self.input_grad else None
        chunks = self._chunks(len(x), backward=True)
        self._reserved = self._reserve(chunks, backward=True)
        if dx is not None and self.transposed:  # (kh*kw*O, C): W flipped, in and out swapped
            w = self.params["W"]
            w_flipped = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, w.shape[2])

        def work(tiles: list[slice], worker: int):
            d_w = d_b = None
            for tile in tiles:
                rows = self._rows(x, tile, worker)
                dy_t = dy[tile]
                dy_g = dy_t.reshape(-1, groups, out // groups).transpose(1, 0, 2)  # (G, m, O/G)
                # (G, O/G, K/G): transposing dy rather than rows spares CuPy, which copies
                # transposed operands, a copy of the larger one
                part = xp.matmul(dy_g.transpose(0, 2, 1), rows)
                d_w = part if d_w is None else xp.add(d_w, part, out=d_w)
                if "b" in self.grads:
                    part = dy_t.reshape(-1, out).sum(axis=0)
                    d_b = part if d_b is None else xp.add(d_b, part, out=d_b)
                if dx is not None and self.transposed:
                    d_rows = self._rows(dy, tile, worker, self.transposed)  # reuses the buffer
                    dx_t = dx[tile]
                    xp.matmul(d_rows[0], w_flipped, out=dx_t.reshape(-1, dx_t.shape[-1]))
                elif dx is not None:
                    d_rows = xp.matmul(dy_g, w_g.transpose(0, 2, 1), out=rows)  # reuses rows
                    self._col2im(d_rows, dx[tile])
            return d_w, d_b

        partials = parallel.run(work, chunks, xp)
        d_w, d_b = partials[0]
        for more_w, more_b in partials[1:]:  # in chunk order: deterministic
            d_w += more_w
            if d_b is not None:
                d_b += more_b
        self.grads["W"].reshape(-1, groups, out // groups)[...] = d_w.transpose(2, 0, 1)
        if d_b is not None:
            self.grads["b"][...] = d_b
        return [dx]

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
