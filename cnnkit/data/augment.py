"""Data augmentation on the fly: random flips, crops, shifts and cutout of a whole batch.

``--augment`` takes transforms separated by commas, e.g. ``flip,crop:4,cutout:8``:

    flip          mirror left to right, each image with probability 1/2
    crop:P        pad P black pixels on every side and cut a random window of the original
                  size out of it (the CIFAR-10 recipe): a shift of up to P pixels
    translate:T   shift by up to T pixels each way, repeating the edge pixels into the gap
    cutout:S      blacken an S x S square centred on a random pixel (DeVries & Taylor, 2017;
                  near a border part of it falls outside)

They apply in that order, whatever order they are written in.  Every transform works on
uint8 (N, H, W, C) pixels before they are scaled, as one gather or mask over the batch in
the batch's own array module (NumPy or CuPy).  The random numbers (a few per image) are
drawn on the host from a key such as (seed, epoch, step): a resumed run draws the same ones,
and the CPU and GPU augment alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ORDER = ("flip", "crop", "translate", "cutout")
_SIZED = {"crop": "pixels of padding", "translate": "pixels of shift", "cutout": "pixels square"}
_STREAM = 0x617567  # "aug": keeps these draws apart from dropout's, seeded by the same key


@dataclass(frozen=True)
class Augmentation:
    """Which transforms to apply, with their sizes (0: off)."""

    flip: bool = False
    crop: int = 0
    translate: int = 0
    cutout: int = 0

    def __bool__(self) -> bool:
        return bool(self.flip or self.crop or self.translate or self.cutout)

    def __str__(self) -> str:
        """The canonical spelling, which parses back to the same Augmentation."""
        parts = ["flip"] if self.flip else []
        parts += [f"{name}:{getattr(self, name)}" for name in ORDER[1:] if getattr(self, name)]
        return ",".join(parts)

    def apply(self, images, key: tuple[int, ...], rows: slice | None = None,
              total: int | None = None):
        """``images`` (uint8 N, H, W, C, NumPy or CuPy) augmented with the draws of ``key``.
        Where ``images`` are the ``rows`` of a batch of ``total`` (a rank's block), each gets
        the draws its row of the whole batch gets."""
        from ..engine.backend import get_array_module

        xp = get_array_module(images)
        n, h, w = images.shape[:3]
        rows, total = (slice(0, n), n) if rows is None else (rows, total)
        rng = np.random.default_rng(np.random.SeedSequence([*key, _STREAM]))
        if self.flip:
            mirrored = xp.asarray(rng.random(total)[rows] < 0.5)[:, None, None, None]
            images = xp.where(mirrored, images[:, :, ::-1], images)
        for size, edge in ((self.crop, False), (self.translate, True)):
            if size:
                dy, dx = rng.integers(-size, size + 1, size=(2, total))[:, rows]
                images = _shifted(images, xp, dy, dx, edge)
        if self.cutout:
            centres = rng.integers(0, (h, w), size=(total, 2))[rows]
            images = _cut_out(images, xp, centres, self.cutout)
        return images


def parse_augment(text: str | None) -> Augmentation:
    """``"flip,crop:4"`` -> Augmentation(flip=True, crop=4); ValueError saying what is wrong.
    None or "" is no augmentation."""
    values: dict[str, bool | int] = {}
    for part in (text or "").split(","):
        name, colon, size = part.strip().lower().partition(":")
        if not name and not colon:
            continue
        if name not in ORDER:
            raise ValueError(f"unknown augmentation {part.strip()!r}: use {_syntax()}")
        if name in values:
            raise ValueError(f"augmentation {name!r} is given twice")
        if name == "flip":
            if colon:
                raise ValueError(f"'flip' takes no size (got {part.strip()!r}): use {_syntax()}")
            values[name] = True
            continue
        if not size.strip().isdigit() or int(size) < 1:
            raise ValueError(f"augmentation {name!r} needs a size in {_SIZED[name]} of 1 or "
                             f"more, e.g. {name}:{2 if name == 'translate' else 4}")
        values[name] = int(size)
    return Augmentation(**values)


def _syntax() -> str:
    return "flip, crop:P, translate:T, cutout:S separated by commas (e.g. flip,crop:4)"


def _shifted(images, xp, dy, dx, edge: bool):
    """Each image moved by (dy[i], dx[i]) pixels in one gather; the uncovered border is
    black, or with ``edge`` a repetition of the nearest edge pixel."""
    n, h, w = images.shape[:3]
    rows = xp.arange(h)[None, :] - xp.asarray(dy)[:, None]  # the source row of each output row
    cols = xp.arange(w)[None, :] - xp.asarray(dx)[:, None]
    out = images[xp.arange(n)[:, None, None], xp.clip(rows, 0, h - 1)[:, :, None],
                 xp.clip(cols, 0, w - 1)[:, None, :]]
    if not edge:
        inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
        out *= inside[..., None]
    return out


def _cut_out(images, xp, centres, size: int):
    """Each image with a black ``size`` x ``size`` square around its centre."""
    h, w = images.shape[1:3]
    top = xp.asarray(centres[:, 0] - size // 2)[:, None]
    left = xp.asarray(centres[:, 1] - size // 2)[:, None]
    rows, cols = xp.arange(h)[None, :], xp.arange(w)[None, :]
    in_rows = (rows >= top) & (rows < top + size)
    in_cols = (cols >= left) & (cols < left + size)
    return images * ~(in_rows[:, :, None] & in_cols[:, None, :])[..., None]
