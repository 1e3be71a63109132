"""Heat maps of a score map: where in a large image a fully convolutional run sees each
class (``cnnkit visualize scores``).

One panel per class, the classes with the highest probability anywhere first: the map's
probabilities on one absolute scale (0 black, 1 white), so panels compare, enlarged by
nearest neighbour to about ``PANEL_TARGET`` pixels and titled with the class name and its
peak.  The image itself comes first, for orientation.
"""

from __future__ import annotations

import numpy as np

from .grid import default_scale, upscale
from .output import arrange, titled, to_image

PANEL_TARGET = 96
MAX_CLASSES = 10
PER_ROW = 5


def heat_map(probabilities: np.ndarray, scale: int | None = None) -> np.ndarray:
    """uint8 (rows*scale, cols*scale) of one class's (rows, cols) probabilities."""
    rows, cols = probabilities.shape
    scale = scale or default_scale(max(rows, cols), PANEL_TARGET)
    return upscale(np.rint(np.clip(probabilities, 0, 1) * 255).astype(np.uint8), scale)


def score_picture(scores, class_names, max_classes: int = MAX_CLASSES):
    """The image and the heat maps of its ``max_classes`` most present classes
    (``scores``: a ``cnnkit.training.predict.ScoreMap``)."""
    probabilities = scores.probabilities
    peaks = probabilities.max(axis=(0, 1))
    shown = np.argsort(-peaks, kind="stable")[:max_classes]
    rows, cols = scores.size
    panels = [titled(to_image(heat_map(probabilities[..., k])),
                     f"{class_names[k] if k < len(class_names) else k} (max {peaks[k]:.0%})")
              for k in shown]
    lines = [arrange(panels[i:i + PER_ROW], "horizontal") for i in range(0, len(panels), PER_ROW)]
    pixels = scores.pixels[..., 0] if scores.pixels.shape[2] == 1 else scores.pixels
    image = titled(to_image(pixels), f"{scores.image}: {rows}x{cols} positions")
    return arrange([image, *lines], "vertical", margin=8)
