"""Feature maps: what each CONV and POOL layer outputs for one input image.

The picture is a column of labelled panels: the input image first, then one grid per CONV
and POOL node in network order, each map min-max normalized on its own (its smallest value
black, its largest white; a constant map black).  A CONV panel shows the convolution's own
output, before the activation that follows it, so a filter's negative responses are dark
and its positive ones bright; a POOL panel shows what the pooling passes on.  At most
``MAX_MAPS`` maps per layer are shown (the first ones; the title says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import VizError
from .grid import SEPARATOR, default_columns, default_scale, minmax_uint8, tile, upscale

SHOWN_KINDS = ("conv", "pool")
MAX_MAPS = 64
MAP_TARGET = 48  # default size of one upscaled map, in pixels
INPUT_TARGET = 96  # default size of the upscaled input image
GAP = 3


def layer_outputs(model, x) -> list:
    """Every node's output for the batch ``x`` in eval mode, as host arrays (list index =
    node index; NHWC for volumes, (N, D) for vectors), from ``Model.activations``."""
    from ..engine.backend import to_numpy

    return [None if a is None else to_numpy(a) for a in model.activations(x)]


def feature_grid(maps, *, scale: int | None = None, max_maps: int = MAX_MAPS,
                 columns: int | None = None, gap: int = GAP):
    """(grid uint8 (H, W), maps shown, columns, scale) for one image's (h, w, c) maps."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise VizError(f"feature maps must be (h, w, c), got shape {maps.shape}")
    h, w, c = maps.shape
    shown = min(c, max_maps)
    scale = scale or default_scale(max(h, w), MAP_TARGET)
    cells = minmax_uint8(np.moveaxis(maps[..., :shown], 2, 0), axes=(1, 2))  # (shown, h, w)
    cells = np.stack([upscale(cell, scale) for cell in cells])
    columns = min(columns or default_columns(shown), shown)
    return tile(cells, columns=columns, gap=gap, fill=SEPARATOR), shown, columns, scale


def input_pixels(image, scale: int | None = None) -> np.ndarray:
    """The uint8 (h, w, c) input as shown: grayscale for 1 channel, RGB for 3, else a grid
    of its channels; upscaled to about ``INPUT_TARGET`` pixels."""
    image = np.asarray(image, dtype=np.uint8)
    h, w, c = image.shape
    scale = scale or default_scale(max(h, w), INPUT_TARGET)
    if c == 1:
        return upscale(image[..., 0], scale)
    if c == 3:
        return upscale(image, scale)
    return feature_grid(image, scale=scale)[0]


@dataclass
class Panel:
    title: str
    node: int | None  # node index, None for the input
    pixels: np.ndarray  # the grid (or the input image)
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, width, height in the picture
    scale: int = 1
    columns: int = 1


def panels(network, outputs, image, *, kinds=SHOWN_KINDS, max_maps: int = MAX_MAPS,
           caption: str = "") -> list[Panel]:
    """The input panel and one panel per node of ``kinds`` with a spatial output."""
    shape = network.input_shape
    result = [Panel(f"input {shape}" + (f": {caption}" if caption else ""), None,
                    input_pixels(image))]
    for node in network.nodes[1:]:
        out = outputs[node.index]
        if node.kind not in kinds or node.out.flat or out is None or np.ndim(out) != 4:
            continue
        grid, shown, columns, scale = feature_grid(out[0], max_maps=max_maps)
        title = f"{node.index} {node.name}: {node.out}"
        if shown < node.out.c:
            title += f" (first {shown} of {node.out.c} maps)"
        result.append(Panel(title, node.index, grid, scale=scale, columns=columns))
    if len(result) == 1:
        raise VizError("this network has no CONV or POOL layer with feature maps to show")
    return result


def compose(panel_list: list[Panel], margin: int = 8, gap: int = 12):
    """The panels, titled, one below the other on white; fills each panel's ``box``."""
    from .output import TITLE_PAD, TITLE_SIZE, arrange, titled, to_image

    images = []
    y = margin
    strip = TITLE_SIZE + 2 * TITLE_PAD
    for panel in panel_list:
        image = titled(to_image(panel.pixels), panel.title)
        h, w = panel.pixels.shape[:2]
        panel.box = (margin, y + strip, w, h)
        y += image.height + gap
        images.append(image)
    return arrange(images, "vertical", gap=gap, margin=margin)


def load_input(trained, image_path=None, index: int | None = None, dataset: str | None = None,
               split: str = "test", data_dir=None, invert: bool = False, on_progress=None):
    """(uint8 (h, w, c) image, caption) from an image file or a dataset's ``index``-th image
    (``on_progress`` follows a download of the dataset)."""
    shape = trained.network.input_shape
    if shape.flat:
        raise VizError("the network's input is a vector, not an image")
    if image_path is not None:
        return trained.read_image(image_path, invert=invert), str(image_path)
    data = trained.dataset(dataset, split=split, data_dir=data_dir, on_progress=on_progress)
    if not 0 <= index < len(data):
        raise VizError(f"there is no image {index} in {data.name} {split}: it has "
                       f"{len(data):,} (0 to {len(data) - 1})")
    if data.shape != (shape.h, shape.w, shape.c):
        got = "x".join(map(str, data.shape))
        raise VizError(f"{data.name} images are {got} but the network's INPUT is {shape}")
    label = int(data.labels[index])
    return data.images[index], \
        f"{data.name} {split} #{index}, label {class_label(label, data.class_names)}"


def class_label(k: int, names) -> str:
    """'7' for MNIST's class 7, '0 T-shirt/top' where the name says more than the number."""
    name = names[k] if k < len(names) else str(k)
    return name if name == str(k) else f"{k} {name}"


def activation_picture(trained, image, caption: str = "", max_maps: int = MAX_MAPS):
    """(Pillow image, panels) of ``trained``'s feature maps for one uint8 (h, w, c) image;
    the caption gets the model's prediction appended."""
    x = trained.prepare(np.asarray(image, dtype=np.uint8)[None])
    outputs = layer_outputs(trained.model, x)
    logits = outputs[trained.model.output_index]
    if logits is not None and logits.ndim == 2 and logits.shape[1] > 1:
        z = logits[0] - logits[0].max()
        p = np.exp(z) / np.exp(z).sum()
        best = int(p.argmax())
        caption = (caption + ", " if caption else "") + \
            f"predicted {class_label(best, trained.class_names)} {p[best]:.0%}"
    panel_list = panels(trained.network, outputs, image, max_maps=max_maps, caption=caption)
    return compose(panel_list), panel_list
