"""IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.  Only unsigned-byte files
(type 0x08) exist in these datasets, so only those are read.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

_UBYTE = 0x08
_OTHER_TYPES = {0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"

IMAGES = "images-idx3-ubyte"
LABELS = "labels-idx1-ubyte"
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def file_names(split: str) -> tuple[str, str]:
    """The official (uncompressed) names of a split's image and label files."""
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-{IMAGES}", f"{prefix}-{LABELS}"


def find_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The split's image and label files in ``folder`` (each plain or ``.gz``), or None."""
    found = []
    for name in file_names(split):
        path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found[0], found[1]


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it starts like gzip (whatever its name says)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from e


def read_idx(path: Path) -> np.ndarray:
    """Parse one unsigned-byte IDX file into an array of its declared shape."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path}: only {len(data)} bytes, too short for an IDX header")
    zero0, zero1, dtype, ndim = data[:4]
    if zero0 or zero1 or ndim == 0:
        raise DataError(f"{path}: wrong magic number 0x{data[:4].hex()}: not an IDX file")
    if dtype != _UBYTE:
        what = _OTHER_TYPES.get(dtype)
        if what is None:
            raise DataError(f"{path}: wrong magic number 0x{data[:4].hex()}: not an IDX file")
        raise DataError(f"{path}: holds {what}; only unsigned-byte IDX files (0x08) are read")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {problem}: header declares shape {shape} ({expected} bytes in all) "
            f"but the file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def read_pair(
    images_path: Path, labels_path: Path, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Images as (N, H, W, 1) uint8 and labels as (N,) int64, checked against each other."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected images (3 dimensions: N, rows, columns), "
                        f"found shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected labels (1 dimension), found shape "
                        f"{labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"count mismatch: {images_path} holds {len(images)} images but "
                        f"{labels_path} holds {len(labels)} labels")
    if len(labels) and labels.max() >= num_classes:
        raise DataError(f"{labels_path}: label {labels.max()} is out of range for "
                        f"{num_classes} classes")
    return images[..., np.newaxis], labels.astype(np.int64)
