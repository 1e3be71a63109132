"""IDX files, the format of MNIST and Fashion-MNIST, gzipped or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values in C order.  Only unsigned-byte files
(type 0x08) exist in these datasets, so only those are read.

The header is read first and its sizes are worked out in Python integers (numpy's would wrap
around); then exactly the payload it declares is read, gzip being inflated as a stream, so a
small file that inflates to gigabytes costs no memory.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import DataError

_UBYTE = 0x08
_OTHER_TYPES = {0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"

# The largest official payload (MNIST's 60,000 training images of 28x28): a header declaring
# more is none of these datasets, however much data follows it.
MAX_PAYLOAD = 60_000 * 28 * 28

IMAGES = "images-idx3-ubyte"
LABELS = "labels-idx1-ubyte"
SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def file_names(split: str) -> tuple[str, str]:
    """The official (uncompressed) names of a split's image and label files."""
    prefix = SPLIT_PREFIX[split]
    return f"{prefix}-{IMAGES}", f"{prefix}-{LABELS}"


def find_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The split's image and label files in ``folder`` (each plain or ``.gz``), or None.

    A folder or device under an expected name is an error rather than a miss, so that it is
    not silently passed over for another copy or a download."""
    found = []
    for name in file_names(split):
        candidates = (folder / name, folder / f"{name}.gz")
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            odd = next((p for p in candidates if p.exists()), None)
            if odd is not None:
                raise DataError(f"{odd}: not a regular file (a folder or a device), so it "
                                "cannot be read as an IDX file")
            return None
        found.append(path)
    return found[0], found[1]


def read_idx(path: Path) -> np.ndarray:
    """Parse one unsigned-byte IDX file, decompressed when it starts like gzip (whatever its
    name says), into an array of its declared shape."""
    try:
        with path.open("rb") as file:
            if file.peek(2)[:2] != _GZIP_MAGIC:
                return _parse(file, path)
            with gzip.GzipFile(fileobj=file) as stream:
                return _parse(stream, path)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


def _parse(stream: BinaryIO, path: Path) -> np.ndarray:
    magic = stream.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: only {len(magic)} bytes, too short for an IDX header")
    zero0, zero1, dtype, ndim = magic
    if zero0 or zero1 or ndim == 0:
        raise DataError(f"{path}: wrong magic number 0x{magic.hex()}: not an IDX file")
    if dtype != _UBYTE:
        what = _OTHER_TYPES.get(dtype)
        if what is None:
            raise DataError(f"{path}: wrong magic number 0x{magic.hex()}: not an IDX file")
        raise DataError(f"{path}: holds {what}; only unsigned-byte IDX files (0x08) are read")
    header = 4 + 4 * ndim
    dims = stream.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: truncated IDX header ({4 + len(dims)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", dims)
    size = math.prod(shape)
    if size > MAX_PAYLOAD:
        raise DataError(f"{path}: header declares shape {shape} ({size:,} bytes of values), more "
                        f"than the largest MNIST or Fashion-MNIST file ({MAX_PAYLOAD:,})")
    payload = stream.read(size)
    if len(payload) < size:
        raise DataError(f"{path}: truncated: header declares shape {shape} ({header + size} "
                        f"bytes in all) but the file holds {header + len(payload)} bytes")
    if stream.read(1):
        raise DataError(f"{path}: has trailing bytes: header declares shape {shape} "
                        f"({header + size} bytes in all) but more data follows")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()


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
    if not len(images):
        raise DataError(f"{images_path}: holds no images")
    if labels.max() >= num_classes:
        raise DataError(f"{labels_path}: label {labels.max()} is out of range for "
                        f"{num_classes} classes")
    return images[..., np.newaxis], labels.astype(np.int64)
