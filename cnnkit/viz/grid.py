"""Pixel grids with NumPy only: min-max normalization, nearest-neighbour upscaling, tiling.

Every function returns uint8 arrays, (H, W) for grayscale or (H, W, 3) for colour, so the
pictures are exact and testable pixel by pixel; Pillow only writes them out.

Normalization is the textbook's: ``round(255 * (v - min) / (max - min))``, so the smallest
value of the normalized block is black (0) and the largest white (255).  A constant block
(max == min) has no contrast to show and is drawn black.
"""

from __future__ import annotations

import math

import numpy as np

SEPARATOR = 255  # the thin lines between cells: white, like the textbook figure's background
CELL_TARGET = 40  # default size of one upscaled cell, in pixels


def minmax_uint8(values, axes=None) -> np.ndarray:
    """Scales ``values`` to 0..255 so that each block's minimum is 0 and maximum 255.

    ``axes`` are the axes reduced for min and max (None: the whole array is one block).
    For per-filter normalization of HWIO weights moved to (O, kh, kw, C) use axes (1, 2, 3).
    """
    v = np.asarray(values, dtype=np.float64)
    lo = v.min(axis=axes, keepdims=True)
    hi = v.max(axis=axes, keepdims=True)
    span = hi - lo
    flat = span <= 0
    scaled = np.divide(v - lo, np.where(flat, 1.0, span)) * 255.0
    scaled = np.where(flat, 0.0, scaled)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement: every pixel becomes a ``factor`` x ``factor`` square."""
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def default_scale(size: int, target: int = CELL_TARGET) -> int:
    """The upscaling factor that makes a ``size``-pixel cell about ``target`` pixels."""
    return max(1, round(target / max(size, 1)))


def default_columns(count: int) -> int:
    """Columns of a near-square grid: ceil(sqrt(n)) (30 filters: 6 x 5, 96: 10 x 10)."""
    return max(1, math.ceil(math.sqrt(count)))


def tile(cells: np.ndarray, columns: int, gap: int = 2, fill: int = SEPARATOR) -> np.ndarray:
    """Lays ``cells`` (N, h, w) or (N, h, w, 3) out row by row, ``columns`` per row.

    Cells are separated, and the grid framed, by ``gap`` pixels of value ``fill``; unused
    cells of the last row are ``fill`` too.  Size: columns * w + (columns + 1) * gap wide,
    rows * h + (rows + 1) * gap high.
    """
    cells = np.asarray(cells)
    n, h, w = cells.shape[:3]
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    shape = (rows * h + (rows + 1) * gap, columns * w + (columns + 1) * gap) + cells.shape[3:]
    out = np.full(shape, fill, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        out[y:y + h, x:x + w] = cells[i]
    return out


def tile_rows(rows: np.ndarray, gap: int = 2, fill: int = SEPARATOR) -> np.ndarray:
    """Lays (R, K, h, w) out as R rows of K cells (one row per filter, one cell per slice)."""
    r, k, h, w = rows.shape
    return tile(rows.reshape(r * k, h, w), columns=k, gap=gap, fill=fill)


def cell_origin(index: int, columns: int, cell: tuple[int, int], gap: int) -> tuple[int, int]:
    """(y, x) of the top-left pixel of cell ``index`` in a grid made by ``tile``."""
    r, c = divmod(index, columns)
    return gap + r * (cell[0] + gap), gap + c * (cell[1] + gap)
