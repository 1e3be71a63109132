"""A loaded dataset and what a trainer does to it first: scale, standardize, hold some back.

Images stay uint8 (N, H, W, C) in a Dataset, a quarter of the memory of float32; ``to_float``
converts whichever batch is needed.  Standardization statistics come from the training
images and are returned, so they can be saved with a model and reapplied at eval or predict
time rather than recomputed on other data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

_STATS_CHUNK = 1024  # images per step in channel_stats, bounding its scratch memory


@dataclass(frozen=True, eq=False)
class Dataset:
    """One split of a dataset, in memory."""

    name: str  # canonical name of what was actually loaded, e.g. "mnist-sample" after fallback
    split: str  # "train", "test", or "val" for a part split off by split_validation
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,)
    class_names: tuple[str, ...]
    source: str  # where the files were read from, for people
    notice: str | None = None  # something the user should be told, e.g. why a fallback happened

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {self.images.dtype} "
                             f"{self.images.shape}")
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.images)} images but labels of shape {self.labels.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        h, w, c = self.images.shape[1:]
        return h, w, c

    def __len__(self) -> int:
        return len(self.labels)


def to_float(images, mean=None, std=None):
    """uint8 pixels -> float32 in [0, 1]; then ``(x - mean) / std`` per channel if given.
    Runs in the array module of ``images``, so a batch is scaled where it will be used."""
    from ..engine.backend import get_array_module

    if images.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 pixels, got {images.dtype}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    xp = get_array_module(images)
    x = images.astype(xp.float32)
    xp.divide(x, xp.float32(255), out=x)
    if mean is not None:
        x -= xp.asarray(mean, dtype=xp.float32)
        x /= xp.asarray(std, dtype=xp.float32)
    return x


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 (N, H, W, C) images on the [0, 1] scale, float32.

    Sums are taken exactly over chunks, so a large set needs no full float copy.  A channel
    that never varies gets std 1, which turns standardizing it into a plain shift.
    """
    channels = images.shape[-1]
    count = images.size // channels
    if count == 0:
        raise ValueError("channel_stats needs at least one image")
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(images), _STATS_CHUNK):
        chunk = images[start:start + _STATS_CHUNK].reshape(-1, channels).astype(np.float64)
        total += chunk.sum(axis=0)
        squares += np.square(chunk).sum(axis=0)
    mean = total / count / 255
    std = np.sqrt(np.maximum(squares / count / 255**2 - mean**2, 0.0))
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def split_validation(
    ds: Dataset, fraction: float = 0.1, seed: int = 0, stratify: bool = True
) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of a training set as validation data: (train, val).

    Seeded, so the same call always holds out the same images.  Stratified by default, so
    each class keeps its share in both parts.  Refuses the test split: tuning on it would
    make the final test score meaningless.
    """
    if ds.split == "test":
        raise ValueError("validation data must come from the training split, not the test split")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    if stratify:
        picked = []
        for label in np.unique(ds.labels):
            members = np.flatnonzero(ds.labels == label)
            picked.append(rng.permutation(members)[: round(fraction * len(members))])
        held = np.concatenate(picked)
    else:
        held = rng.permutation(len(ds))[: round(fraction * len(ds))]
    if len(held) in (0, len(ds)):
        raise ValueError(f"holding out {fraction} of {len(ds)} images leaves one part empty")
    is_val = np.zeros(len(ds), dtype=bool)
    is_val[held] = True
    train = replace(ds, split="train", images=ds.images[~is_val], labels=ds.labels[~is_val])
    val = replace(ds, split="val", images=ds.images[is_val], labels=ds.labels[is_val])
    return train, val
