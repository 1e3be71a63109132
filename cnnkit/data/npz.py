"""Own tensors: an ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``, the
layout of ``keras.datasets`` (``np.savez("mine.npz", x_train=..., ...)``).

Images are (N, H, W) or (N, H, W, C), uint8, or floats in [0, 1] (rounded to uint8, what
a Dataset holds); labels are integers 0..K-1, (N,) or Keras' (N, 1).  An optional
``class_names`` array of strings names the classes, else they are "0".."K-1".  The file is
read with ``allow_pickle=False``, so it cannot run code, and checked whole before use.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive's first member, or an empty one


def load_npz(path: Path, split: str, classes: tuple[str, ...] | None = None) -> Dataset:
    """One split of an .npz dataset; ``classes`` (a trained run's) must cover its labels."""
    arrays = _read(path)
    images = {s: _images(path, f"x_{s}", arrays[f"x_{s}"]) for s in ("train", "test")}
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise DataError(f"{path}: x_train images are {images['train'].shape[1:]} but x_test "
                        f"images are {images['test'].shape[1:]}; both splits need one shape")
    labels = {s: _labels(path, s, arrays[f"y_{s}"], len(images[s])) for s in ("train", "test")}
    count = int(max(labels["train"].max(), labels["test"].max())) + 1
    names = classes or _class_names(path, arrays.get("class_names"), count)
    if count > len(names):
        raise DataError(f"{path}: label {count - 1} has no class: "
                        f"{len(names)} class names are given")
    return Dataset(path.stem, split, images[split], labels[split], tuple(names), str(path))


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            if handle.read(4) not in _ZIP_MAGIC:  # np.load would try it as a pickle
                raise DataError(f"{path}: not an .npz archive (np.savez writes one) of "
                                f"{', '.join(KEYS)}")
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in KEYS if key not in data.files]
            if missing:
                raise DataError(f"{path}: no {', '.join(missing)}; an .npz dataset holds "
                                f"{', '.join(KEYS)} (found: {', '.join(data.files) or 'nothing'})")
            return {name: data[name] for name in (*KEYS, "class_names") if name in data.files}
    except ValueError as error:  # an object array, which would need pickle
        raise DataError(f"{path}: cannot be read without running pickled code, which cnnkit "
                        f"never does ({error})") from None
    except MemoryError:
        raise DataError(f"{path}: declares arrays larger than the free memory") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None


def _images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) from uint8 or [0, 1] float images."""
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4 or not len(x):
        raise DataError(f"{path}: {key} should be images, (N, H, W) or (N, H, W, C), found "
                        f"shape {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind != "f":
        raise DataError(f"{path}: {key} holds {x.dtype} values; give uint8 pixels (0-255) or "
                        "floats in [0, 1]")
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DataError(f"{path}: {key} holds floats outside [0, 1] (from {x.min():g} to "
                        f"{x.max():g}); scale them to [0, 1] or store uint8 pixels")
    return np.rint(x * 255).astype(np.uint8)


def _labels(path: Path, split: str, y: np.ndarray, count: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:  # keras.datasets.cifar10 keeps them as (N, 1)
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"{path}: y_{split} should be integer class numbers, (N,) or (N, 1), "
                        f"found {y.dtype} of shape {y.shape}")
    if len(y) != count:
        raise DataError(f"{path}: x_{split} holds {count} images but y_{split} {len(y)} labels")
    if y.min() < 0:
        raise DataError(f"{path}: y_{split} holds the label {y.min()}; classes are 0, 1, ...")
    return y.astype(np.int64)


def _class_names(path: Path, names: np.ndarray | None, count: int) -> tuple[str, ...]:
    if names is None:
        return tuple(str(i) for i in range(count))
    if names.ndim != 1 or names.dtype.kind != "U" or len(set(names.tolist())) != len(names):
        raise DataError(f"{path}: class_names should be distinct strings, one per class")
    return tuple(names.tolist())
