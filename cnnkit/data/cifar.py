"""CIFAR-10 in both official layouts, as folders or as the distributed .tar.gz archives.

* python version: ``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` are protocol-2
  pickles of dicts with bytes keys; ``b'data'`` is a uint8 N x 3072 array whose rows hold the
  red, green and blue 32x32 planes one after the other, ``b'labels'`` a list of ints.
* binary version: ``data_batch_1.bin`` .. ``test_batch.bin``, records of 1 label byte and
  3072 pixel bytes in the same plane order.

A pickle can run any code while it loads, so batches are read by an unpickler that admits
only numpy's array rebuilders, and those only in the forms numpy's own pickles use, in which
an array's values are bytes the file holds: nothing can allocate more than the file's size,
and a batch may hold no more than the 10,000 images of an official one.  Files and archive
members are size-checked before they are read; nothing is extracted to disk.
"""

from __future__ import annotations

import io
import math
import pickle
import reprlib
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from .errors import DataError

NUM_CLASSES = 10
BATCH_ROWS = 10_000  # images in each official batch
_PIXELS = 3 * 32 * 32
_RECORD = 1 + _PIXELS
# An official batch file is 31 MB; Python 3 re-pickling it at protocol 2 spells its bytes as
# UTF-8 text, up to twice as long.  A bigger file or archive member is refused unread.
MAX_BATCH_FILE = 64 << 20
# The official archives hold 8 or 9 members, and tarfile keeps every member's header in
# memory: an archive of millions of empty members would fill it.
MAX_MEMBERS = 100

PY_DIR, BIN_DIR = "cifar-10-batches-py", "cifar-10-batches-bin"
PY_ARCHIVE, BIN_ARCHIVE = "cifar-10-python.tar.gz", "cifar-10-binary.tar.gz"
BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}


# numpy's array rebuilder; it moved from numpy.core to numpy._core in numpy 2.
_reconstruct = np.empty(0).__reduce__()[0]


class _Refused(pickle.UnpicklingError):
    """A pickle asked for something a CIFAR-10 batch never contains."""


class _NdarrayType:
    """Stands for numpy.ndarray, which a batch names only as the type _reconstruct rebuilds;
    called itself, it would allocate an array of any size from a few bytes."""

    __slots__ = ()

    def __repr__(self):
        return "numpy.ndarray"

    def __call__(self, *args):
        raise _Refused(f"numpy.ndarray{reprlib.repr(args)} called directly, allocating an array "
                       "the file does not hold")


_NDARRAY = _NdarrayType()


class _IntegerType:
    """What numpy.dtype(...) yields in a batch: an integer type and nothing else.  A real
    np.dtype would let the pickle's next step (its __setstate__) turn it into a record type or
    one flagged as holding objects."""

    __slots__ = ("dtype",)

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, (str, bytes)):
            raise _Refused(f"numpy.dtype({reprlib.repr(spec)}), not a type code")
        dtype = np.dtype(spec)
        if dtype.kind not in "iu":
            raise _Refused(f"numpy.dtype({reprlib.repr(spec)}) ({dtype} dtype; batches hold "
                           "integers only)")
        self.dtype = dtype

    def __repr__(self):
        return f"numpy.dtype({self.dtype.str!r})"

    def __setstate__(self, state):
        """numpy's dtype state; of it only the byte order applies to an integer type."""
        endian, subarray, names, fields = state[1:5]
        if any(part is not None for part in (subarray, names, fields)):
            raise _Refused("a numpy.dtype state that adds fields or a sub-array")
        if isinstance(endian, bytes):
            endian = endian.decode("latin1")
        if endian in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(endian)


def _checked_dtype(dtype, shape, values) -> np.dtype:
    """The numpy dtype of a pickled array, once its shape is sizes that fit in a batch and its
    values are bytes (numpy pickles an object array's values as a list of objects)."""
    if not isinstance(dtype, _IntegerType):
        raise _Refused(f"an array of dtype {reprlib.repr(dtype)}")
    if not isinstance(values, (bytes, bytearray)):
        raise _Refused(f"array values given as {type(values).__name__}, not bytes")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"array shape {reprlib.repr(shape)} is not a tuple of sizes")
    if math.prod(shape) > BATCH_ROWS * _PIXELS:
        raise ValueError(f"array of shape {shape} is larger than a CIFAR-10 batch")
    return dtype.dtype


class _PickledArray(np.ndarray):
    """The empty array _reconstruct starts from; its state is checked before numpy sets it."""

    def __setstate__(self, state):
        *version, shape, dtype, is_fortran, values = state  # numpy also takes it versionless
        dtype = _checked_dtype(dtype, shape, values)
        super().__setstate__((*version, shape, dtype, is_fortran, values))


def _array(subtype, shape, dtype):
    """numpy's rebuilder as numpy's pickles call it: an empty array, filled by its state."""
    if not (subtype is _NDARRAY and shape == (0,) and dtype == b"b"):
        raise _Refused(f"numpy's _reconstruct{reprlib.repr((subtype, shape, dtype))} (numpy's "
                       "own pickles start from an empty numpy.ndarray)")
    return _reconstruct(_PickledArray, (0,), b"b")


def _frombuffer(values, dtype, shape, order):
    """numpy's protocol-5 rebuilder: a view of bytes the file holds, in the declared shape."""
    dtype = _checked_dtype(dtype, shape, values)
    return np.frombuffer(values, dtype=dtype).reshape(shape, order=order)


def _latin1(text, encoding="latin1"):
    """_codecs.encode as Python 3 uses it to write bytes into protocol-2 pickles."""
    if encoding != "latin1" or not isinstance(text, str):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


# Everything a batch can reference: the official files (written by Python 2) need the first
# four; Python 3 re-pickling at protocol 2 also spells bytes via _codecs, at protocol 5 it
# rebuilds arrays with _frombuffer.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _array,
    ("numpy._core.multiarray", "_reconstruct"): _array,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _IntegerType,
    ("_codecs", "encode"): _latin1,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
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
    data = batch[b"data"]
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == _PIXELS):
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"{origin}: b'data' should be a uint8 array of N x {_PIXELS}, got "
                        f"{shape}")
    _check_count(len(data), origin)
    return np.asarray(data), _python_labels(batch[b"labels"], len(data), origin)


def _python_labels(labels, count: int, origin: str) -> np.ndarray:
    """b'labels': a list of ints (official) or an integer array (re-pickled).  A list is
    checked before numpy sees it, as numpy turns nested lists into an array of any size."""
    if isinstance(labels, list) and all(type(label) is int for label in labels):
        labels = np.array(labels, dtype=object)
    if not (isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iuO"):
        raise DataError(f"{origin}: b'labels' should be a list of class numbers")
    return _checked_labels(labels, count, origin)


def parse_binary_batch(raw: bytes, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch -> (N, 3072) uint8 rows and (N,) int64 labels."""
    if not raw or len(raw) % _RECORD:
        raise DataError(f"{origin}: {len(raw)} bytes is not a whole number of {_RECORD}-byte "
                        "records (1 label byte + 3072 pixels): truncated or not CIFAR-10")
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    _check_count(len(records), origin)
    return records[:, 1:], _checked_labels(records[:, 0], len(records), origin)


def _check_count(count: int, origin: str) -> None:
    if not 0 < count <= BATCH_ROWS:
        raise DataError(f"{origin}: holds {count:,} images; a CIFAR-10 batch holds 1 to "
                        f"{BATCH_ROWS:,}")


def _checked_labels(labels: np.ndarray, count: int, origin: str) -> np.ndarray:
    """Labels as int64, once there is one per image and each is a class."""
    if len(labels) != count:
        raise DataError(f"{origin}: count mismatch: {count} images but {len(labels)} labels")
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        raise DataError(f"{origin}: label {labels[bad[0]]} of record {bad[0]} is not a "
                        f"CIFAR-10 class (0-{NUM_CLASSES - 1})")
    return np.asarray(labels, dtype=np.int64)  # a plain array, whatever unpickling made


def _check_size(size: int, origin: str) -> None:
    if size > MAX_BATCH_FILE:
        raise DataError(f"{origin}: {size:,} bytes, larger than any CIFAR-10 batch file "
                        f"({MAX_BATCH_FILE:,} at most); not read")


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
    try:
        is_python = any((folder / name).is_file() for name in BATCHES["train"] + BATCHES["test"])
        names = python if is_python else binary
        missing = [name for name in names if not (folder / name).exists()]
    except OSError as e:
        raise DataError(f"{folder}: cannot look inside: {e.strerror or e}") from e
    if missing:
        raise DataError(f"{folder}: CIFAR-10 batch files missing: {', '.join(missing)}")
    return [_parse(name, _read_file(folder / name), str(folder / name)) for name in names]


def _read_file(path: Path) -> bytes:
    """A batch file's bytes, its size checked before any is read."""
    try:
        if not path.is_file():
            raise DataError(f"{path}: not a regular file (a folder or a device)")
        _check_size(path.stat().st_size, str(path))
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from e


def _read_archive(archive: Path, wanted: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    python, binary = _layouts(wanted)
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        file = archive.open("rb")
    except OSError as e:
        raise DataError(f"{archive}: cannot read: {e.strerror or e}") from e
    try:
        with file, tarfile.open(fileobj=file, mode="r:gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise DataError(f"{archive}: more than {MAX_MEMBERS} members, so not a "
                                    "CIFAR-10 archive (the official ones hold 8 or 9)")
                origin = f"{archive}:{member.name}"
                _check_size(member.size, origin)
                name = PurePosixPath(member.name).name
                if name in python or name in binary:
                    if not member.isfile():
                        raise DataError(f"{origin}: a link, folder or device where a batch "
                                        "file should be")
                    found[name] = _parse(name, tar.extractfile(member).read(), origin)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive}: corrupt or truncated archive ({e})") from e
    names = binary if any(name in found for name in binary) else python
    missing = [name for name in names if name not in found]
    if missing:
        raise DataError(f"{archive}: CIFAR-10 batch files missing from the archive: "
                        f"{', '.join(missing)}")
    return [found[name] for name in names]
