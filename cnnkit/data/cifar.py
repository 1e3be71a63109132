"""CIFAR-10 in both official layouts, as folders or as the distributed .tar.gz archives.

* python version: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` are protocol-2
  pickles of dicts with bytes keys; ``b'data'`` is a uint8 N x 3072 array whose rows hold the
  red, green and blue 32x32 planes one after the other, ``b'labels'`` a list of ints.
* binary version: ``data_batch_1.bin`` .. ``test_batch.bin``, records of 1 label byte and
  3072 pixel bytes in the same plane order.

A pickle can run any code while it loads, so batches are read by an unpickler that admits
only the few numpy callables needed to rebuild one uint8 array and refuses everything else.
Archives are read member by member without extracting anything to disk.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import DataError

NUM_CLASSES = 10
_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS

PY_DIR, BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
PY_ARCHIVE, BIN_ARCHIVE = "cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


# numpy's array rebuilder; it moved from numpy.core to numpy._core in numpy 2.
_reconstruct = np.empty(0).__reduce__()[0]


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR-10 batch never contains."""


def _array(subtype, shape, dtype):
    """numpy's own array rebuilder, for plain ndarrays only."""
    if subtype is not np.ndarray:
        raise _Refused(f"array subtype {subtype!r}")
    return _reconstruct(subtype, shape, dtype)


def _dtype(spec, align=False, copy=False):
    """np.dtype, minus object dtypes (whose arrays would carry further pickled objects)."""
    dtype = np.dtype(spec, align, copy)
    if dtype.hasobject:
        raise _Refused(f"object dtype {dtype}")
    return dtype


def _latin1(text, encoding="latin1"):
    """_codecs.encode as Python 3 uses it to write bytes into protocol-2 pickles."""
    if encoding != "latin1" or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# Everything a batch can reference: the official files (written by Python 2) need the first
# four; the same dicts pickled at protocol 2 by Python 3 also spell their bytes via _codecs.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _array,
    ("numpy._core.multiarray", "_reconstruct"): _array,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def parse_python_batch(raw: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> (N, 3072) uint8 rows and (N,) int64 labels, without running code."""
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise DataError(
            f"{origin}: refused to unpickle: it asks for {e}, which a CIFAR-10 batch never "
            "needs (the file may be malicious); nothing in it was executed"
        ) from None
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same here
        raise DataError(f"{origin}: not a readable CIFAR-10 batch, corrupt or truncated "
                        f"({type(e).__name__}: {e})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{origin}: not a CIFAR-10 batch: expected a dict with keys b'data' "
                        "and b'labels'")
    data, labels = batch[b"data"], batch[b"labels"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _PIXELS):
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{origin}: b'data' should be a uint8 array of N x {_PIXELS}, got "
                        f"{shape}")
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(f"{origin}: b'labels' should be a list of class numbers")
    return data, _checked_labels(labels.astype(np.int64), len(data), origin)


def parse_binary_batch(raw: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch -> (N, 3072) uint8 rows and (N,) int64 labels."""
    if not raw or len(raw) % _RECORD:
        raise DataError(f"{origin}: {len(raw)} bytes is not a whole number of {_RECORD}-byte "
                        "records (1 label byte + 3072 pixels): truncated or not CIFAR-10")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    return records[:, 1:], _checked_labels(records[:, 0].astype(np.int64), len(records), origin)


def _checked_labels(labels: np.ndarray, count: int, origin: str) -> np.ndarray:
    if len(labels) != count:
        raise DataError(f"{origin}: count mismatch: {count} images but {len(labels)} labels")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise DataError(f"{origin}: label {labels[bad[0]]} of record {bad[0]} is not a "
                        f"CIFAR-10 class (0-{NUM_CLASSES - 1})")
    return labels


def find_cifar10(folder: Path) -> Path | None:
    """The first CIFAR-10 copy in ``folder``: the batches themselves, either layout's folder
    or either archive."""
    if any((folder / f"{name}{ext}").is_file() for name in ("data_batch_1", "test_batch")
           for ext in ("", ".bin")):
        return folder
    for name in (PY_DIR, BIN_DIR):
        if (folder / name).is_dir():
            return folder / name
    for name in (PY_ARCHIVE, BIN_ARCHIVE):
        if (folder / name).is_file():
            return folder / name
    return None


def read_cifar10(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images as (N, 32, 32, 3) uint8 and labels as (N,) int64 from a folder or archive."""
    wanted = BATCHES[split]
    batches = _read_archive(path, wanted) if path.is_file() else _read_folder(path, wanted)
    rows = np.concatenate([data for data, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _parse(name: str, raw: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    if name.endswith(".bin"):
        return parse_binary_batch(raw, origin)
    return parse_python_batch(raw, origin)


def _layouts(wanted: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The file names of the wanted batches in the python and in the binary layout."""
    return wanted, tuple(f"{name}.bin" for name in wanted)


def _read_folder(folder: Path, wanted: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    python, binary = _layouts(wanted)
    is_python = any((folder / name).is_file() for name in BATCHES["train"] + BATCHES["test"])
    names = python if is_python else binary
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: CIFAR-10 batch files missing: {', '.join(missing)}")
    batches = []
    for name in names:
        path = folder / name
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read: {e.strerror or e}") from e
        batches.append(_parse(name, raw, str(path)))
    return batches


def _read_archive(archive: Path, wanted: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    python, binary = _layouts(wanted)
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and (name in python or name in binary):
                    raw = tar.extractfile(member).read()
                    found[name] = _parse(name, raw, f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: corrupt or truncated archive ({e})") from e
    names = binary if any(name in found for name in binary) else python
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(f"{archive}: CIFAR-10 batch files missing from the archive: "
                        f"{', '.join(missing)}")
    return [found[name] for name in names]
