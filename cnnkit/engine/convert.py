"""Weight and image layouts of the engine (channels last) to and from PyTorch's (channels first).

Conv weights: engine (kh, kw, C/groups, O) <-> PyTorch (O, C/groups, kh, kw).
FC weights: engine (d_in, units) with a spatial input flattened in (h, w, c) order <->
PyTorch (units, d_in) with it flattened in (c, h, w) order.  Work on NumPy and CuPy alike.
"""

from __future__ import annotations

from ..graph.network import Shape


def conv_weight_to_oihw(w):
    return w.transpose(3, 2, 0, 1)


def conv_weight_from_oihw(w):
    return w.transpose(2, 3, 1, 0)


def fc_weight_to_torch(w, in_shape: Shape):
    """(d_in, units) -> (units, d_in), rows reordered from (h, w, c) to (c, h, w)."""
    units = w.shape[1]
    return w.reshape(in_shape.h, in_shape.w, in_shape.c, units).transpose(3, 2, 0, 1).reshape(
        units, -1)


def fc_weight_from_torch(w, in_shape: Shape):
    """(units, d_in) in (c, h, w) order -> (d_in, units) in (h, w, c) order."""
    units = w.shape[0]
    return w.reshape(units, in_shape.c, in_shape.h, in_shape.w).transpose(2, 3, 1, 0).reshape(
        -1, units)


def nchw_to_nhwc(x):
    return x.transpose(0, 2, 3, 1)


def nhwc_to_nchw(x):
    return x.transpose(0, 3, 1, 2)
