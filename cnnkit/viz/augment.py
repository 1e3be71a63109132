"""What the network sees: training images beside augmented versions of them.

One row per image, the original on the left and then ``variants`` augmentations drawn as
training draws them (``Augmentation.apply`` with the run's seed), upscaled by nearest
neighbour so every pixel stays visible.
"""

from __future__ import annotations

import numpy as np

from . import VizError
from .grid import default_scale, tile, upscale


def augment_picture(images: np.ndarray, augmentation, seed: int = 0, variants: int = 7,
                    title: str = ""):
    """A Pillow image of uint8 (N, H, W, C) ``images``: per row, the original and
    ``variants`` augmented copies."""
    from .output import titled, to_image

    if not augmentation:
        raise VizError("no augmentation to show: give --augment (e.g. flip,crop:4)")
    if images.shape[-1] not in (1, 3):
        raise VizError(f"cannot draw {images.shape[-1]}-channel images (only 1 or 3)")
    copies = [images] + [augmentation.apply(images, (seed, 0, k)) for k in range(variants)]
    cells = np.stack(copies, axis=1).reshape(-1, *images.shape[1:])  # row by row
    cells = cells[..., 0] if cells.shape[-1] == 1 else cells
    scale = default_scale(max(images.shape[1:3]), target=64)
    big = np.stack([upscale(cell, scale) for cell in cells])
    return titled(to_image(tile(big, columns=variants + 1, gap=3)), title)


def sample_images(data, count: int, seed: int) -> np.ndarray:
    """``count`` images of a dataset, picked by ``seed`` (the same ones every time)."""
    picked = np.random.default_rng(seed).permutation(len(data))[:count]
    return data.images[np.sort(picked)]
