"""A convolution layer's filters as a picture, before and after training.

Weights are the engine's HWIO: ``W[kh, kw, cin_per_group, out_channels]``.  How a filter is
drawn depends on what it reads:

* ``gray``: one input channel (the first layer on MNIST): each filter is a kh x kw
  grayscale cell, min-max normalized on its own (smallest weight black, largest white), as
  in the textbook figure of SimpleConvNet's 30 first-layer 5x5 filters;
* ``rgb``: three input channels read straight from an RGB input image (the first layer on
  CIFAR-10, AlexNet's 96 11x11x3 filters): one colour cell per filter, normalized per
  filter over all three channels together, so the colours keep their balance;
* ``slices``: anything deeper (many input channels): one row per filter, one grayscale cell
  per input-channel slice, normalized per filter over all its slices (so the slices of a
  row are comparable).  Rows and columns are capped (``MAX_SLICE_FILTERS``,
  ``MAX_SLICE_CHANNELS``): the first ones are shown, and the picture's notes say so.

Cells are upscaled by nearest neighbour (every weight becomes a square of ``scale`` pixels)
and separated by thin white lines (``GAP`` pixels, also framing the grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import VizError
from .grid import SEPARATOR, default_columns, default_scale, minmax_uint8, tile, upscale

MAX_GRID_FILTERS = 256  # gray / rgb grids: all of AlexNet's 96 fit
MAX_SLICE_FILTERS = 32  # slices: rows (filters) shown
MAX_SLICE_CHANNELS = 32  # slices: columns (input channels) shown
GAP = 4  # separator width: thin next to ~40-pixel cells, yet keeps white cell edges apart


@dataclass
class FilterPicture:
    pixels: np.ndarray  # uint8, (H, W) for gray and slices, (H, W, 3) for rgb
    mode: str  # "gray", "rgb" or "slices"
    filters_shown: int
    filters_total: int
    channels_shown: int
    channels_total: int
    columns: int  # cells per row
    scale: int  # pixels per weight
    gap: int  # separator width
    notes: list[str] = field(default_factory=list)
    cell_size: tuple[int, int] = (0, 0)  # (height, width) of one upscaled cell
    node_index: int | None = None  # the CONV node drawn, when known


def conv_nodes(network) -> list:
    return [node for node in network.nodes if node.kind == "conv"]


def describe_convs(network) -> str:
    convs = conv_nodes(network)
    return ", ".join(f"{n.index} ({n.name})" for n in convs) if convs else "none"


def pick_conv(network, layer: int | None):
    """The CONV node to show: ``layer`` is a node index as `cnnkit summarize` prints it
    (the ``#`` column); None picks the first CONV."""
    convs = conv_nodes(network)
    if not convs:
        raise VizError("this network has no CONV layer, so it has no filters to show")
    if layer is None:
        return convs[0]
    nodes = network.nodes
    if not 0 <= layer < len(nodes):
        raise VizError(f"there is no layer {layer}: layers are numbered 0 to {len(nodes) - 1} "
                       f"(see `cnnkit summarize`); the CONV layers are {describe_convs(network)}")
    node = nodes[layer]
    if node.kind != "conv":
        raise VizError(f"layer {layer} is {node.name}, not a CONV; the CONV layers are "
                       f"{describe_convs(network)}")
    return node


def weight_key(node) -> str:
    return f"{node.index}:{node.name}/W"


def conv_weights(arrays, node) -> np.ndarray:
    """The HWIO weights of ``node`` from a state dict (a run's npz)."""
    key = weight_key(node)
    if key not in arrays:
        raise VizError(f"the saved weights have no {key!r}; do they belong to this spec?")
    w = np.asarray(arrays[key], dtype=np.float64)
    if w.ndim != 4:
        raise VizError(f"{key} has shape {w.shape}, expected (kh, kw, in, out)")
    return w


def filter_mode(network, node, weights: np.ndarray) -> str:
    """gray, rgb or slices for ``node``'s weights (see the module docstring)."""
    cin = weights.shape[2]
    if cin == 1:
        return "gray"
    reads_input = all(network.nodes[i].kind == "input" for i in node.inputs)
    if cin == 3 and reads_input and node.attrs.get("groups", 1) == 1:
        return "rgb"
    return "slices"


def filter_grid(weights, mode: str = "gray", *, scale: int | None = None,
                columns: int | None = None, gap: int = GAP, max_filters: int | None = None,
                max_channels: int | None = None) -> FilterPicture:
    """The grid of the filters in HWIO ``weights``; see the module docstring for the modes.

    ``scale`` (pixels per weight) defaults to about 40-pixel cells, ``columns`` to a
    near-square grid (gray and rgb; slices always has one row per filter).
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise VizError(f"filter weights must be (kh, kw, in, out), got shape {w.shape}")
    kh, kw, cin, total = w.shape
    if mode not in ("gray", "rgb", "slices"):
        raise VizError(f"unknown filter mode {mode!r}")
    if mode == "gray" and cin != 1:
        raise VizError(f"grayscale filters need 1 input channel, these have {cin}")
    if mode == "rgb" and cin != 3:
        raise VizError(f"colour filters need 3 input channels, these have {cin}")
    scale = scale or default_scale(max(kh, kw))
    notes = []
    by_filter = np.moveaxis(w, 3, 0)  # (O, kh, kw, cin)
    limit = max_filters or (MAX_SLICE_FILTERS if mode == "slices" else MAX_GRID_FILTERS)
    shown = min(total, limit)
    if shown < total:
        notes.append(f"showing the first {shown} of {total} filters")
    pixels = minmax_uint8(by_filter[:shown], axes=(1, 2, 3))  # per filter, all its channels
    channels_shown = cin
    if mode == "slices":
        channels_shown = min(cin, max_channels or MAX_SLICE_CHANNELS)
        if channels_shown < cin:
            notes.append(f"showing the first {channels_shown} of {cin} input channels")
        cells = np.moveaxis(pixels[..., :channels_shown], 3, 1)  # (O, cin, kh, kw)
        cells = upscale(cells.reshape(-1, kh, kw).transpose(1, 2, 0), scale).transpose(2, 0, 1)
        columns = channels_shown
        grid = tile(cells, columns=columns, gap=gap, fill=SEPARATOR)
    else:
        cells = pixels[..., 0] if mode == "gray" else pixels  # (O, kh, kw[, 3])
        cells = np.stack([upscale(c, scale) for c in cells])
        columns = min(columns or default_columns(shown), shown)
        grid = tile(cells, columns=columns, gap=gap, fill=SEPARATOR)
    return FilterPicture(grid, mode, shown, total, channels_shown, cin, columns, scale, gap,
                         notes, (kh * scale, kw * scale))


def neighbour_correlation(weights) -> float:
    """Mean over filter slices of the Pearson correlation between neighbouring weights
    (every horizontally and vertically adjacent pair of a kh x kw slice).

    About 0 for independent random initial weights; clearly positive for the smooth edge
    and blob detectors that training produces.  Slices with no variance are skipped.
    """
    w = np.asarray(weights, dtype=np.float64)
    kh, kw, cin, out = w.shape
    if kh * kw < 2:
        raise VizError("1x1 filters have no neighbouring weights")
    s = np.moveaxis(w, (2, 3), (0, 1)).reshape(cin * out, kh, kw)
    a = np.concatenate([s[:, :, :-1].reshape(len(s), -1), s[:, :-1, :].reshape(len(s), -1)], 1)
    b = np.concatenate([s[:, :, 1:].reshape(len(s), -1), s[:, 1:, :].reshape(len(s), -1)], 1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    keep = denominator > 0
    if not keep.any():
        raise VizError("every filter is constant")
    return float(np.mean((a * b).sum(1)[keep] / denominator[keep]))


def epochs_label(run) -> str:
    from ..training.rundir import RunError

    try:
        epochs = len(run.read_metrics())
    except RunError:  # a damaged metrics file does not spoil the picture
        epochs = 0
    return f"after {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "after training"


def run_filters(path, layer: int | None = None, compare_init: bool = False,
                labels: bool = True, **grid_options):
    """(Pillow image, FilterPicture of the trained weights) for a run directory.

    With ``compare_init`` the initial filters (weights_init.npz) are drawn on the left and
    the trained ones on the right, at the same scale and layout: the textbook figure.
    ``grid_options`` go to ``filter_grid`` (scale, columns, gap, max_filters, max_channels).
    """
    from ..training.predict import load_run
    from .output import arrange, titled, to_image

    loaded = load_run(path)  # checks the spec, the config and the weights against each other
    run, network = loaded.run, loaded.network
    node = pick_conv(network, layer)
    final = conv_weights(loaded.model.state_dict(copy=False), node)
    mode = filter_mode(network, node, final)
    trained = filter_grid(final, mode, **grid_options)
    trained.node_index = node.index
    kh, kw, cin, out = final.shape
    what = f"layer {node.index} {node.name}: {out} filters {kh}x{kw}x{cin}"
    if mode == "slices":
        what += "; rows: filters, columns: input channels"
    if trained.notes:
        what += f" ({'; '.join(trained.notes)})"
    after = epochs_label(run)
    if not compare_init:
        image = to_image(trained.pixels)
        return (titled(image, f"{what}, {after}") if labels else image), trained
    initial = filter_grid(conv_weights(loaded.weights("init"), node), mode,
                          **{**grid_options, "scale": trained.scale, "columns": trained.columns})
    left, right = to_image(initial.pixels), to_image(trained.pixels)
    if labels:
        left, right = titled(left, "before training"), titled(right, after)
    image = arrange([left, right], "horizontal", gap=24)
    return (titled(image, what) if labels else image), trained
