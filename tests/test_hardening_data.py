"""Hostile and broken dataset files: IDX headers that overflow or lie, gzip and tar bombs,
pickles that allocate, rewrite numpy types or expand nested lists, batches larger than
official ones, links and folders where files should be, unreadable paths, oversized
downloads.  Each must end in one line of DataError naming the file, using little memory.
No test touches the network (the fixture of test_data.py guards urlopen)."""

from __future__ import annotations

import builtins
import errno
import gzip
import io
import os
import pickle
import struct
import tarfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from test_data import (
    _Payload,
    assert_cifar,
    binary_batch,
    cifar_files,
    file_remote,
    isolated,  # noqa: F401  (the autouse fixture: empty cache, no network)
    make_batches,
    write_archive,
    write_folder,
    write_idx_set,
)

from cnnkit.data import DataError, cifar, idx, load_dataset, sources

MiB = 1 << 20


def assert_one_line(error: DataError, *parts: str) -> None:
    message = str(error)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def traced(call) -> tuple[DataError, int]:
    """The DataError ``call`` ends in, and the peak of memory it held as tracemalloc (which
    numpy reports to) sees it."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            call()
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def idx_header(*shape: int) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def deny_read(monkeypatch, denied: Path) -> None:
    """Opening ``denied`` fails as after chmod 000; tests may run as root, whom chmod does not
    stop.  Both names of open are patched: pathlib calls io.open, gzip builtins.open."""
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)


def deny_search(monkeypatch, folder: Path) -> None:
    """Looking up anything inside ``folder`` fails, as in a folder without execute
    permission."""
    real_stat = os.stat

    def guarded_stat(path, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and folder in Path(path).parents:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", guarded_stat)


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzipped"])
def test_idx_dimensions_overflowing_int64_are_refused(tmp_path, gz):
    path = tmp_path / "train-images-idx3-ubyte"
    header = idx_header(2**31, 2**31, 4)  # 2**64 values: numpy's product wraps to 0
    path.write_bytes(gzip.compress(header) if gz else header)
    with pytest.raises(DataError) as info:
        idx.read_idx(path)
    assert_one_line(info.value, str(path), "(2147483648, 2147483648, 4)", "more than the largest")


def test_idx_declaring_more_than_any_official_file_is_refused_unread(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_header(60_001, 28, 28))
    with pytest.raises(DataError) as info:
        idx.read_idx(path)
    assert_one_line(info.value, str(path), "(60001, 28, 28)", "more than the largest")


def test_gzip_bomb_is_inflated_only_as_far_as_its_header_declares(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(idx_header(10, 28, 28))
        for _ in range(200):
            out.write(bytes(MiB))
    assert path.stat().st_size < 2 * MiB
    error, peak = traced(lambda: idx.read_idx(path))
    assert_one_line(error, str(path), "trailing bytes", "(10, 28, 28)")
    assert peak < MiB  # inflating it all took 459 MB


def test_gzip_declaring_more_than_it_holds(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(10_000, 28, 28) + bytes(10 * 28 * 28)))
    with pytest.raises(DataError) as info:
        idx.read_idx(path)
    assert_one_line(info.value, str(path), "truncated", f"{16 + 10_000 * 784} bytes in all",
                    f"holds {16 + 10 * 784} bytes")


def test_idx_without_images_is_refused(tmp_path):
    write_idx_set(tmp_path / "fm", n_train=0, n_test=1)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "fm")
    assert_one_line(info.value, "train-images-idx3-ubyte.gz", "holds no images")


def test_folder_where_an_idx_file_should_be(tmp_path):
    folder = tmp_path / "fm"
    write_idx_set(folder, n_train=2, n_test=1)
    images = folder / "train-images-idx3-ubyte.gz"
    images.unlink()
    images.mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train", data_dir=folder, download=False)
    assert_one_line(info.value, str(images), "not a regular file")
    with pytest.raises(DataError) as info:
        idx.read_idx(images)
    assert_one_line(info.value, str(images), "cannot read")


def test_unreadable_idx_file(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "fm", n_train=2, n_test=1)
    labels = tmp_path / "fm" / "train-labels-idx1-ubyte.gz"
    deny_read(monkeypatch, labels)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "fm")
    assert_one_line(info.value, str(labels), "cannot read: Permission denied")


def test_unsearchable_data_folder(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "fm", n_train=2, n_test=1)
    deny_search(monkeypatch, tmp_path / "fm")
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "fm", download=False)
    assert_one_line(info.value, str(tmp_path / "fm"))
    deny_search(monkeypatch, tmp_path)
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path / "fm", download=False)
    assert_one_line(info.value, str(tmp_path / "fm"))


# ---------------------------------------------------------------- CIFAR-10 pickles


def python_folder(tmp_path, test_batch: bytes) -> Path:
    """A python-layout folder of valid batches, with ``test_batch`` replaced."""
    files = cifar_files(make_batches(), "python")
    files["test_batch"] = test_batch
    return write_folder(tmp_path / cifar.PY_DIR, files)


@pytest.mark.parametrize("rows", [100_000, 10**12])
@pytest.mark.parametrize("rebuild", ["numpy.ndarray", "_reconstruct"])
def test_pickle_declaring_a_huge_array_is_refused_unallocated(rows, rebuild):
    if rebuild == "numpy.ndarray":
        data = _Payload(np.ndarray, (rows, 3072), "u1")
    else:
        data = _Payload(cifar._reconstruct, np.ndarray, (rows, 3072), b"B")
    raw = pickle.dumps({b"data": data, b"labels": [0] * 1000}, protocol=2)
    assert len(raw) < 5000
    error, peak = traced(lambda: cifar.parse_python_batch(raw, "test_batch"))
    assert_one_line(error, "test_batch: refused to unpickle", rebuild, f"({rows}, 3072)")
    assert peak < MiB  # 100,000 rows were accepted, a 307 MB array of uninitialized memory


class _Dtype:
    """Pickles as numpy.dtype("u1") followed by a state that rewrites it."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return np.dtype, ("u1", False, True), self.state


class _Array:
    """Pickles as numpy's own protocol-2 array: an empty array, then its state."""

    def __init__(self, *state):
        self.state = state

    def __reduce__(self):
        return cifar._reconstruct, (np.ndarray, (0,), b"b"), self.state


@pytest.mark.parametrize("state, needle", [
    # fields: a record type where a uint8 should be
    ((3, "|", None, ("a",), {"a": (np.dtype("u1"), 0)}, 1, 1, 0), "adds fields"),
    # flags 63: uint8 marked as holding objects, whose values numpy would take from a list
    # and write as pointers into one-byte slots
    ((3, "|", None, None, None, -1, -1, 63), "values given as list"),
], ids=["fields", "object flags"])
def test_pickle_cannot_rewrite_a_numpy_type(state, needle):
    data = _Array(1, (3,), _Dtype(state), False, [1, 2, 3])
    raw = pickle.dumps({b"data": data, b"labels": [0, 0, 0]}, protocol=2)
    with pytest.raises(DataError) as info:
        cifar.parse_python_batch(raw, "data_batch_1")
    assert_one_line(info.value, "data_batch_1: refused to unpickle", needle)


def test_nested_labels_are_refused_before_numpy_expands_them():
    labels = [[[0] * 1000] * 1000] * 20  # 20 million labels in a few kB of pickle
    raw = pickle.dumps({b"data": np.zeros((20, 3072), np.uint8), b"labels": labels}, protocol=4)
    error, peak = traced(lambda: cifar.parse_python_batch(raw, "test_batch"))
    assert_one_line(error, "test_batch", "b'labels' should be a list of class numbers")
    assert peak < 2 * MiB  # numpy built a 160 MB array of them first


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("labels_as", ["list", "int64 array", "big-endian array"])
def test_batches_repickled_by_python3_are_read(tmp_path, protocol, labels_as):
    convert = {"list": lambda labels: [int(label) for label in labels],
               "int64 array": lambda labels: labels.astype(np.int64),
               "big-endian array": lambda labels: labels.astype(">i8")}[labels_as]
    batches = make_batches()
    files = {name: pickle.dumps({b"batch_label": name.encode(), b"labels": convert(labels),
                                 b"data": rows}, protocol=protocol)
             for name, (rows, labels) in batches.items()}
    write_folder(tmp_path / cifar.PY_DIR, files)
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split, data_dir=tmp_path)
        assert_cifar(ds, batches, split)
        assert type(ds.images) is type(ds.labels) is np.ndarray


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("function, needle", [(os.system, "system"), (eval, "builtins.eval")])
def test_code_in_python3_pickles_is_refused(tmp_path, protocol, function, needle):
    marker = tmp_path / "pwned"
    payload = _Payload(function, f"open({str(marker)!r}, 'w').close()")
    python_folder(tmp_path, pickle.dumps({b"data": payload, b"labels": [0]}, protocol=protocol))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, "test_batch: refused to unpickle", needle)
    assert not marker.exists()


@pytest.mark.parametrize("data, labels, needle", [
    (np.zeros((0, 3072), np.uint8), [], "holds 0 images"),
    (np.zeros((3, 3071), np.uint8), [0, 0, 0], "uint8 array of N x 3072"),
    (np.zeros((3, 3072), np.int16), [0, 0, 0], "uint8 array of N x 3072"),
    (np.zeros((3, 3072), np.float32), [0, 0, 0], "float32 dtype"),
    (np.zeros((3, 3072), np.uint8), [0, 0], "3 images but 2 labels"),
    (np.zeros((3, 3072), np.uint8), [0, True, 0], "list of class numbers"),
    (np.zeros((3, 3072), np.uint8), [0, 2**70, 0], f"label {2**70} of record 1"),
], ids=["empty", "short rows", "int16", "float32", "count mismatch", "bool label", "huge label"])
def test_inconsistent_python_batch(data, labels, needle):
    raw = pickle.dumps({b"data": data, b"labels": labels}, protocol=4)
    with pytest.raises(DataError) as info:
        cifar.parse_python_batch(raw, "data_batch_2")
    assert_one_line(info.value, "data_batch_2", needle)


def test_batch_larger_than_an_official_one_is_refused(tmp_path):
    files = cifar_files(make_batches(), "binary")
    files["test_batch.bin"] = binary_batch(np.zeros((10_001, 3072), np.uint8),
                                           np.zeros(10_001, np.uint8))
    write_folder(tmp_path / cifar.BIN_DIR, files)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, "test_batch.bin", "holds 10,001 images", "1 to 10,000")


def test_oversized_batch_file_is_refused_unread(tmp_path):
    folder = python_folder(tmp_path, b"")
    with open(folder / "test_batch", "wb") as sparse:
        sparse.truncate(1 << 36)  # 64 GiB of nothing on disk
    error, peak = traced(lambda: load_dataset("cifar10", "test", data_dir=tmp_path))
    assert_one_line(error, str(folder / "test_batch"), "68,719,476,736 bytes", "not read")
    assert peak < MiB


def test_folder_where_a_batch_file_should_be(tmp_path):
    folder = python_folder(tmp_path, b"")
    (folder / "test_batch").unlink()
    (folder / "test_batch").mkdir()
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, str(folder / "test_batch"), "not a regular file")


def test_unsearchable_batch_folder(tmp_path, monkeypatch):
    folder = python_folder(tmp_path, b"")
    deny_search(monkeypatch, folder)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, str(folder))


# ---------------------------------------------------------------- CIFAR-10 archives


def raw_member(name: str, declared: int, data: bytes) -> bytes:
    """A tar member whose header declares ``declared`` bytes, followed by ``data``."""
    info = tarfile.TarInfo(name)
    info.size = declared
    return info.tobuf(format=tarfile.GNU_FORMAT) + data


def test_archive_member_declaring_a_huge_size_is_refused_unread(tmp_path):
    archive = tmp_path / cifar.PY_ARCHIVE
    archive.write_bytes(gzip.compress(raw_member(f"{cifar.PY_DIR}/test_batch", 1 << 40,
                                                 bytes(10 * 512))))
    error, peak = traced(lambda: load_dataset("cifar10", "test", data_dir=tmp_path))
    assert_one_line(error, f"{archive}:{cifar.PY_DIR}/test_batch", "1,099,511,627,776 bytes",
                    "not read")
    assert peak < MiB


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                  tarfile.FIFOTYPE, tarfile.DIRTYPE],
                         ids=["symlink", "hard link", "device", "fifo", "folder"])
def test_archive_link_or_device_where_a_batch_should_be(tmp_path, kind):
    archive = write_archive(tmp_path / cifar.PY_ARCHIVE, cifar.PY_DIR,
                            cifar_files(make_batches(), "python"))
    with tarfile.open(archive, "r:gz") as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar]
    with tarfile.open(archive, "w:gz") as tar:
        for member, data in members:
            if member.name.endswith("/test_batch"):
                member.type, member.linkname, member.size = kind, "/etc/passwd", 0
                data = b""
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, f"{archive}:{cifar.PY_DIR}/test_batch",
                    "a link, folder or device")


def test_archive_of_too_many_members_is_refused(tmp_path):
    files = cifar_files(make_batches(), "python")
    files.update({f"empty_{i}": b"" for i in range(cifar.MAX_MEMBERS)})
    archive = write_archive(tmp_path / cifar.PY_ARCHIVE, cifar.PY_DIR, files)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, str(archive), f"more than {cifar.MAX_MEMBERS} members")


def test_unreadable_archive_is_not_called_corrupt(tmp_path, monkeypatch):
    archive = write_archive(tmp_path / cifar.PY_ARCHIVE, cifar.PY_DIR,
                            cifar_files(make_batches(), "python"))
    deny_read(monkeypatch, archive)
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert_one_line(info.value, str(archive), "cannot read: Permission denied")
    assert "corrupt" not in str(info.value)


# ---------------------------------------------------------------- downloads


def test_download_larger_than_any_official_file_is_stopped(tmp_path, monkeypatch):
    source = tmp_path / "served" / "train-images-idx3-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5000))
    monkeypatch.setattr(sources, "MAX_DOWNLOAD", 3000)
    with pytest.raises(DataError) as info:
        sources.download([file_remote(source)], tmp_path / "dest")
    assert_one_line(info.value, source.as_uri(), "more than 3,000 bytes")
    assert os.listdir(tmp_path / "dest") == []


def test_download_onto_a_folder_is_a_data_error(tmp_path):
    source = tmp_path / "served" / "t10k-labels-idx1-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(os.urandom(100))
    dest = tmp_path / "dest" / source.name
    (dest / "inside").mkdir(parents=True)
    with pytest.raises(DataError) as info:
        sources.fetch(file_remote(source), dest)
    assert_one_line(info.value, str(dest), "cannot save the download")
    assert os.listdir(tmp_path / "dest") == [source.name]
