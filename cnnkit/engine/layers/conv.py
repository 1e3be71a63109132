"""Convolution as im2col + one matrix product per group, channels last."""

from __future__ import annotations

from .base import Layer, Scratch
from .windows import Window


class Conv(Layer):
    """Grouped, strided, dilated, padded 2-D convolution.

    W is stored (kh, kw, C/groups, out_channels): with NHWC input an im2col row is
    (kh, kw, C/groups) in memory order, so rows @ W.reshape(K, O) is the whole layer and its
    result already is (N, Ho, Wo, O).  Groups are the leading axis of a batched matmul.
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
        self.scratch = Scratch(xp)

    def forward(self, xs, train):
        x = xs[0]
        padded = self.window.pad_input(x, self.scratch, 0)
        view = self.window.columns(padded, self.groups)
        rows = self.scratch.get("rows", view.shape, x.dtype)
        rows[...] = view  # the im2col copy
        g, n, ho, wo, kh, kw, c = view.shape
        self._rows = rows.reshape(g, n * ho * wo, kh * kw * c)
        self._in_shape = x.shape
        w_g = self.params["W"].reshape(kh * kw * c, g, -1).transpose(1, 0, 2)  # (G, K, O/G)
        y = self.xp.matmul(self._rows, w_g).transpose(1, 0, 2)  # a view when groups == 1
        y = y.reshape(n, ho, wo, -1)
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, dy):
        xp, window, groups = self.xp, self.window, self.groups
        rows, w = self._rows, self.params["W"]
        kh, kw, per_group, out = w.shape
        n, _, _, c = self._in_shape
        ho, wo = window.out_hw
        dy_g = dy.reshape(rows.shape[1], groups, -1).transpose(1, 0, 2)  # (G, M, O/G)

        dw_g = xp.matmul(rows.transpose(0, 2, 1), dy_g)  # (G, K, O/G)
        self.grads["W"].reshape(-1, groups, out // groups)[...] = dw_g.transpose(1, 0, 2)
        if "b" in self.grads:
            self.grads["b"][...] = dy.reshape(-1, out).sum(axis=0)

        # col2im: the row gradients come out as one (G, M, C/G) block per kernel offset, so
        # each block is added to its strided slice of the input gradient contiguously
        w_by_offset = w.reshape(kh * kw, per_group, groups, -1).transpose(0, 2, 3, 1)
        d_rows = self.scratch.get("d_rows", (kh * kw,) + rows.shape[:2] + (per_group,), dy.dtype)
        xp.matmul(dy_g, w_by_offset, out=d_rows)
        d_padded = xp.zeros((n,) + window.padded_hw + (groups, per_group), dy.dtype)
        for k, (i, j) in enumerate(window.offsets):
            block = d_rows[k].reshape(groups, n, ho, wo, per_group)
            window.at(d_padded, i, j)[...] += xp.moveaxis(block, 0, 3)
        return [window.unpad(d_padded.reshape(n, *window.padded_hw, c))]
