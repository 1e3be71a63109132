"""cnnkit.data: file formats, where data comes from, downloads, fallback and preparation.

Everything runs on small files generated here in the official formats, plus the shipped
mnist-sample and (when Debian's dataset-fashion-mnist is installed) the real Fashion-MNIST.
No test touches the network: ``urlopen`` is guarded to serve file:// URLs only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from cnnkit.data import (
    DATASETS,
    DataError,
    Dataset,
    DownloadError,
    channel_stats,
    cifar,
    idx,
    load_dataset,
    sources,
    split_validation,
    to_float,
)
from cnnkit.data.catalog import Remote, canonical_name

REAL_FASHION = sources.SYSTEM_DIRS["fashion-mnist"]
_REAL_URLOPEN = urllib.request.urlopen


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Empty cache and system folders under tmp_path; the network is off limits."""
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion-mnist", tmp_path / "system")

    def local_only(url, *args, **kwargs):
        assert url.startswith("file:"), f"a test tried the network: {url}"
        return _REAL_URLOPEN(url, *args, **kwargs)

    monkeypatch.setattr(sources, "urlopen", local_only)


def offline(monkeypatch):
    def unreachable(url, *args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(sources, "urlopen", unreachable)


# ---------------------------------------------------------------- IDX files


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_set(folder: Path, n_train: int, n_test: int, gz: bool = True, seed: int = 0):
    """A complete MNIST-style folder; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sets = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        image_name, label_name = idx.file_names(split)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{image_name}{suffix}", images, gz)
        write_idx(folder / f"{label_name}{suffix}", labels, gz)
        sets[split] = (images, labels)
    return sets


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_round_trip(tmp_path, gz):
    sets = write_idx_set(tmp_path / "fm", n_train=7, n_test=3, gz=gz)
    for split, (images, labels) in sets.items():
        ds = load_dataset("fashion-mnist", split, data_dir=tmp_path / "fm")
        assert ds.images.dtype == np.uint8 and ds.images.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(ds.images[..., 0], images)
        assert ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.shape == (28, 28, 1) and ds.split == split and ds.notice is None
        assert ds.name == "fashion-mnist" and ds.class_names[0] == "T-shirt/top"


def test_idx_gzip_recognised_by_content_not_name(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).reshape(2, 28, 28) % 256
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(gzip.compress(write_idx(tmp_path / "raw", images).read_bytes()))
    np.testing.assert_array_equal(idx.read_idx(path), images)


@pytest.mark.parametrize(
    "header, message",
    [
        (b"\x12\x34\x08\x03", "wrong magic number 0x12340803"),
        (b"\x00\x00\x42\x03", "wrong magic number 0x00004203"),
        (b"\x00\x00\x0d\x03", "holds float32"),
    ],
)
def test_idx_wrong_magic(tmp_path, header, message):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    path.write_bytes(header + path.read_bytes()[4:])
    with pytest.raises(DataError, match=message) as info:
        idx.read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_idx_truncated(tmp_path, gz):
    folder = tmp_path / "fm"
    write_idx_set(folder, n_train=5, n_test=2, gz=gz)
    path = folder / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_dataset("fashion-mnist", "train", data_dir=folder)
    assert str(path) in str(info.value)


def test_idx_trailing_bytes(tmp_path):
    path = write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="trailing bytes"):
        idx.read_idx(path)


def test_idx_count_mismatch(tmp_path):
    images = write_idx(tmp_path / "i", np.zeros((7, 28, 28)))
    labels = write_idx(tmp_path / "l", np.zeros(6))
    with pytest.raises(DataError, match="count mismatch: .* 7 images .* 6 labels") as info:
        idx.read_pair(images, labels, 10)
    assert str(images) in str(info.value) and str(labels) in str(info.value)


def test_idx_swapped_files_and_bad_labels(tmp_path):
    images = write_idx(tmp_path / "i", np.zeros((3, 28, 28)))
    labels = write_idx(tmp_path / "l", np.array([1, 10, 2]))
    with pytest.raises(DataError, match="expected images"):
        idx.read_pair(labels, images, 10)
    with pytest.raises(DataError, match="label 10 is out of range"):
        idx.read_pair(images, labels, 10)


# ---------------------------------------------------------------- CIFAR-10


class Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING), like the official batches."""

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    def save_str(self, obj):
        self.save_bytes(obj.encode("latin1"))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def py2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def make_batches(seed: int = 0, per_batch: int = 3):
    """{batch name: (rows N x 3072, labels)} for all six batches."""
    rng = np.random.default_rng(seed)
    return {
        name: (rng.integers(0, 256, (per_batch + (name == "test_batch"), 3072), dtype=np.uint8),
               rng.integers(0, 10, per_batch + (name == "test_batch")))
        for name in cifar.BATCHES["train"] + cifar.BATCHES["test"]
    }


def python_batch(name: str, rows, labels, dumps=py2_dumps) -> bytes:
    return dumps({
        b"batch_label": f"{name} of CIFAR-10".encode(),
        b"labels": [int(label) for label in labels],
        b"data": rows,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    })


def binary_batch(rows, labels) -> bytes:
    return np.concatenate([labels[:, None].astype(np.uint8), rows], axis=1).tobytes()


def cifar_files(batches, layout: str, dumps=py2_dumps) -> dict[str, bytes]:
    if layout == "python":
        files = {name: python_batch(name, *batch, dumps) for name, batch in batches.items()}
        names = [name.encode() for name in DATASETS["cifar10"].class_names]
        files["batches.meta"] = dumps({b"num_cases_per_batch": 10000, b"label_names": names})
        return files
    return {f"{name}.bin": binary_batch(*batch) for name, batch in batches.items()}


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def write_archive(path: Path, inner: str, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(f"{inner}/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def assert_cifar(ds: Dataset, batches, split: str):
    rows = np.concatenate([batches[name][0] for name in cifar.BATCHES[split]])
    labels = np.concatenate([batches[name][1] for name in cifar.BATCHES[split]])
    assert ds.images.shape == (len(rows), 32, 32, 3) and ds.images.dtype == np.uint8
    # row layout: 1024 red, then 1024 green, then 1024 blue, each 32 rows of 32
    i, y, x, c = 1, 5, 7, 2
    assert ds.images[i, y, x, c] == rows[i, c * 1024 + y * 32 + x]
    np.testing.assert_array_equal(ds.images.transpose(0, 3, 1, 2).reshape(len(rows), -1), rows)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.labels.dtype == np.int64 and ds.class_names[0] == "airplane"


@pytest.mark.parametrize("layout", ["python", "binary"])
@pytest.mark.parametrize("packed", ["folder", "archive", "bare"])
def test_cifar_layouts(tmp_path, layout, packed):
    batches = make_batches()
    files = cifar_files(batches, layout)
    inner = cifar.PY_DIR if layout == "python" else cifar.BIN_DIR
    archive = cifar.PY_ARCHIVE if layout == "python" else cifar.BIN_ARCHIVE
    data_dir = tmp_path / "data"
    if packed == "folder":
        write_folder(data_dir / inner, files)
    elif packed == "archive":
        write_archive(data_dir / archive, inner, files)
    else:
        write_folder(data_dir, files)
    for split in ("train", "test"):
        ds = load_dataset("cifar10", split, data_dir=data_dir)
        assert_cifar(ds, batches, split)
        assert str(data_dir) in ds.source


def test_cifar_batches_pickled_by_python3(tmp_path):
    batches = make_batches()
    dumps = lambda obj: pickle.dumps(obj, protocol=2)  # noqa: E731
    write_folder(tmp_path / cifar.PY_DIR, cifar_files(batches, "python", dumps))
    assert_cifar(load_dataset("cifar10", "test", data_dir=tmp_path), batches, "test")


def test_cifar_missing_batch_and_bad_records(tmp_path):
    batches = make_batches()
    files = cifar_files(batches, "binary")
    del files["data_batch_4.bin"]
    files["test_batch.bin"] = files["test_batch.bin"][:-10]
    folder = write_folder(tmp_path / cifar.BIN_DIR, files)
    with pytest.raises(DataError, match="missing: data_batch_4.bin"):
        load_dataset("cifar10", "train", data_dir=tmp_path)
    with pytest.raises(DataError, match="not a whole number of 3073-byte records") as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert str(folder / "test_batch.bin") in str(info.value)


def test_cifar_corrupt_pickle_and_archive(tmp_path):
    batches = make_batches()
    files = cifar_files(batches, "python")
    files["test_batch"] = files["test_batch"][:200]
    write_folder(tmp_path / "a" / cifar.PY_DIR, files)
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR-10 batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "a")
    archive = write_archive(tmp_path / "b" / cifar.PY_ARCHIVE, cifar.PY_DIR,
                            cifar_files(batches, "python"))
    archive.write_bytes(archive.read_bytes()[:-500])
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "b")


def test_cifar_labels_out_of_range(tmp_path):
    batches = make_batches()
    batches["test_batch"][1][2] = 42
    write_folder(tmp_path / cifar.PY_DIR, cifar_files(batches, "python"))
    with pytest.raises(DataError, match="label 42 of record 2 is not a CIFAR-10 class"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


class _Payload:
    """Unpickling this calls ``function(*args)``: what a malicious batch would do."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "object array"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, attack):
    marker = tmp_path / "pwned"
    if attack == "os.system":
        payload = _Payload(os.system, f"touch {marker}")
        needle = "system"
    elif attack == "builtins.eval":
        payload = _Payload(eval, f"open({str(marker)!r}, 'w').close()")
        needle = "builtin__.eval"  # protocol 2 spells builtins the Python 2 way
    else:
        payload = np.array([_Payload(eval, f"open({str(marker)!r}, 'w').close()")], dtype=object)
        needle = "object dtype"
    batches = make_batches()
    files = cifar_files(batches, "python", lambda obj: pickle.dumps(obj, protocol=2))
    files["test_batch"] = pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2)
    write_folder(tmp_path / cifar.PY_DIR, files)
    with pytest.raises(DataError, match="refused to unpickle") as info:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert needle in str(info.value) and "test_batch" in str(info.value)
    assert not marker.exists()


# ---------------------------------------------------------------- downloads


def file_remote(path: Path, algorithm: str = "md5", digest: str | None = None) -> Remote:
    digest = digest or hashlib.new(algorithm, path.read_bytes()).hexdigest()
    return Remote(path.name, path.as_uri(), algorithm, digest)


@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_fetch_verifies_checksum(tmp_path, algorithm):
    source = tmp_path / "served" / "train-images-idx3-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(os.urandom(5000))
    dest_dir = tmp_path / "dest"
    sources.download([file_remote(source, algorithm)], dest_dir)
    assert (dest_dir / source.name).read_bytes() == source.read_bytes()
    assert os.listdir(dest_dir) == [source.name]


def test_download_reports_its_progress(tmp_path):
    source = tmp_path / "src" / "big.bin"
    source.parent.mkdir()
    source.write_bytes(bytes(range(256)) * 10_000)  # 2.56 MB: three pieces of up to 1 MiB
    heard = []
    sources.download([file_remote(source)], tmp_path / "dest",
                     on_progress=lambda *args: heard.append(args))
    size = source.stat().st_size
    assert heard[0] == ("big.bin", 0, size) and heard[-1] == ("big.bin", size, size)
    assert [done for _, done, _ in heard] == [0, 2**20, 2**21, size]


def test_download_without_announced_size_reports_its_end(tmp_path, monkeypatch):
    body = b"x" * 3000

    class Unsized(io.BytesIO):
        headers: dict = {}

        def __enter__(self):
            return self

    monkeypatch.setattr(sources, "urlopen", lambda url, timeout: Unsized(body))
    remote = Remote("x.bin", "https://mirror.invalid/x.bin", "md5", hashlib.md5(body).hexdigest())
    heard = []
    sources.download([remote], tmp_path / "dest", on_progress=lambda *args: heard.append(args))
    assert heard == [("x.bin", 0, None), ("x.bin", 3000, None), ("x.bin", 3000, 3000)]


def test_checksum_mismatch_deletes_download(tmp_path):
    source = tmp_path / "served" / "t10k-images-idx3-ubyte.gz"
    source.parent.mkdir()
    source.write_bytes(os.urandom(3 * 1024 * 1024))  # several chunks written before the check
    dest_dir = tmp_path / "dest"
    with pytest.raises(DataError, match="checksum mismatch") as info:
        sources.download([file_remote(source, digest="0" * 32)], dest_dir)
    assert not isinstance(info.value, DownloadError)
    assert source.as_uri() in str(info.value)
    assert os.listdir(dest_dir) == []


def test_broken_transfer_deletes_partial_file(tmp_path, monkeypatch):
    class Dropping(io.BytesIO):
        headers = {"Content-Length": "5000"}

        def read(self, size=-1):
            if self.tell():
                raise ConnectionResetError("connection reset by peer")
            return super().read(1000)

        def __enter__(self):
            return self

    monkeypatch.setattr(sources, "urlopen", lambda url, timeout: Dropping(b"x" * 5000))
    remote = Remote("train-labels-idx1-ubyte.gz", "https://mirror.invalid/x.gz", "md5", "0" * 32)
    with pytest.raises(DownloadError, match="could not download https://mirror.invalid/x.gz"):
        sources.download([remote], tmp_path / "dest")
    assert os.listdir(tmp_path / "dest") == []


def serve_idx(tmp_path, monkeypatch, name: str, digest: str | None = None):
    """Point the dataset's downloads at generated files behind file:// URLs."""
    served = tmp_path / "mirror"
    sets = write_idx_set(served, n_train=6, n_test=4, gz=True)
    downloads = {
        split: tuple(file_remote(served / f"{n}.gz", digest=digest)
                     for n in idx.file_names(split))
        for split in ("train", "test")
    }
    monkeypatch.setitem(DATASETS, name, replace(DATASETS[name], downloads=downloads))
    return sets


def test_download_lands_in_cache_and_is_reused(tmp_path, monkeypatch):
    sets = serve_idx(tmp_path, monkeypatch, "fashion-mnist")
    ds = load_dataset("fashion-mnist", "test")
    np.testing.assert_array_equal(ds.labels, sets["test"][1])
    assert "downloaded from file://" in ds.source
    cache = tmp_path / "cache" / "fashion-mnist"
    assert sorted(os.listdir(cache)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    offline(monkeypatch)
    again = load_dataset("fashion-mnist", "test")
    assert "cnnkit cache" in again.source and str(cache) in again.source


def test_training_reports_the_download(tmp_path, monkeypatch):
    """JSON lines carry each file's start and end; piped output names each file."""
    import json

    from typer.testing import CliRunner

    from cnnkit.cli import app

    serve_idx(tmp_path, monkeypatch, "fashion-mnist")
    spec = tmp_path / "tiny.txt"
    spec.write_text("INPUT 28x28x1 -> FC-10")
    result = CliRunner().invoke(app, [
        "train", str(spec), "--dataset", "fashion-mnist", "--epochs", "1", "--batch", "3",
        "--val-split", "0", "--output", "jsonl", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    downloads = [(e["file"], e["bytes"] > 0) for e in events if e["event"] == "download"]
    assert downloads == [(name, done) for name in ("train-images-idx3-ubyte.gz",
                                                   "train-labels-idx1-ubyte.gz")
                         for done in (False, True)]
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "downloading t10k-images-idx3-ubyte.gz" in result.stderr


def test_bad_download_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    serve_idx(tmp_path, monkeypatch, "mnist", digest="f" * 32)
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("mnist", "train")
    assert os.listdir(tmp_path / "cache" / "mnist") == []


def test_official_table():
    mnist = {r.filename: r for split in ("train", "test") for r in DATASETS["mnist"].downloads[split]}
    assert mnist["train-images-idx3-ubyte.gz"].digest == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist["t10k-labels-idx1-ubyte.gz"].url.startswith("https://ossci-datasets.s3")
    (archive,) = DATASETS["cifar10"].downloads["train"]
    assert DATASETS["cifar10"].downloads["test"] == (archive,)
    assert archive.url == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert archive.digest == "c58f30108f718f92721af3b95e74349a"


# ---------------------------------------------------------------- where data comes from


def test_search_order(tmp_path):
    given, cache, system = tmp_path / "given", tmp_path / "cache", tmp_path / "system"
    write_idx_set(given, n_train=3, n_test=1, gz=False)
    write_idx_set(cache / "fashion-mnist", n_train=4, n_test=1)
    write_idx_set(system, n_train=5, n_test=1)
    ds = load_dataset("fashion-mnist", data_dir=given)
    assert len(ds) == 3 and "data directory" in ds.source
    assert len(load_dataset("fashion-mnist")) == 4
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path / "cache")) == 4  # <dir>/<name>
    for path in (cache / "fashion-mnist").iterdir():
        path.unlink()
    ds = load_dataset("fashion-mnist")
    assert len(ds) == 5 and "installed by dataset-fashion-mnist" in ds.source
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNKIT_DATA_DIR", str(tmp_path / "own"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert sources.cache_dir("cifar10") == tmp_path / "own" / "cifar10"
    monkeypatch.delenv("CNNKIT_DATA_DIR")
    assert sources.cache_dir("cifar10") == tmp_path / "xdg" / "cnnkit" / "cifar10"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert sources.cache_dir("mnist") == tmp_path / "home" / ".cache" / "cnnkit" / "mnist"


@pytest.mark.parametrize("download", [True, False])
def test_mnist_falls_back_to_sample_when_offline(tmp_path, monkeypatch, download):
    offline(monkeypatch)
    ds = load_dataset("mnist", "test", download=download)
    assert ds.name == "mnist-sample" and len(ds) == 1000
    assert "mnist-sample" in ds.notice and str(tmp_path / "cache" / "mnist") in ds.notice
    assert "train-images-idx3-ubyte.gz" in ds.notice
    assert ("Name or service not known" if download else "turned off") in ds.notice
    assert "Official files" not in ds.notice and "\n" not in ds.notice  # one line, files once


def test_other_datasets_say_where_to_put_files(tmp_path, monkeypatch):
    offline(monkeypatch)
    with pytest.raises(DataError) as info:
        load_dataset("CIFAR-10", "train")
    message = str(info.value)
    for part in (str(tmp_path / "cache" / "cifar10"), "cifar-10-python.tar.gz",
                 "cifar-10-batches-py/", "data_batch_1", "test_batch", "--data-dir",
                 "Name or service not known"):
        assert part in message
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist", "test", download=False)
    message = str(info.value)
    for part in (str(tmp_path / "cache" / "fashion-mnist"), "t10k-labels-idx1-ubyte.gz",
                 "dataset-fashion-mnist", str(tmp_path / "system")):
        assert part in message


def test_catalog_names():
    assert list(DATASETS) == ["mnist", "fashion-mnist", "cifar10", "mnist-sample"]
    assert DATASETS["mnist"].class_names == tuple("0123456789")
    assert DATASETS["fashion-mnist"].class_names == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
        "Bag", "Ankle boot")
    assert DATASETS["cifar10"].class_names == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert DATASETS["cifar10"].shape == (32, 32, 3)
    assert canonical_name("Fashion_MNIST") == "fashion-mnist" and canonical_name("svhn") is None
    with pytest.raises(DataError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")


# ---------------------------------------------------------------- shipped and real data


def test_mnist_sample_is_real_balanced_digits():
    train = load_dataset("mnist-sample", "train")
    test = load_dataset("mnist-sample", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.shape == test.shape == (28, 28, 1)
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert len(np.unique(train.labels[:50])) == 10  # interleaved, not sorted by class
    # handwritten strokes: mostly black background, saturated ink, centred in the frame
    ink = train.images.astype(np.float64) / 255
    assert 0.08 < ink.mean() < 0.2 and train.images.max() == 255
    assert ink[:, :4].mean() < 0.01 and ink[:, 10:18, 10:18].mean() > 0.2
    seen = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in seen for image in test.images)
    assert "CC BY-SA 3.0" in train.source
    licence = Path(train.source.split(" (")[0]) / "MNIST_SAMPLE_LICENSE.txt"
    assert "Yann LeCun" in licence.read_text()


@pytest.mark.skipif(not REAL_FASHION.is_dir(), reason="Debian's dataset-fashion-mnist missing")
def test_real_fashion_mnist(monkeypatch):
    monkeypatch.setitem(sources.SYSTEM_DIRS, "fashion-mnist", REAL_FASHION)
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert str(REAL_FASHION) in train.source
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert test.labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    mean, std = channel_stats(train.images)
    np.testing.assert_allclose([mean[0], std[0]], [0.2860, 0.3530], atol=1e-3)


# ---------------------------------------------------------------- preparing for training


def test_to_float_range_and_standardizing():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 4, 4, 3), dtype=np.uint8)
    images[0] = 0
    images[1] = 255
    x = to_float(images)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, images / 255, rtol=1e-6)
    mean, std = channel_stats(images)
    z = to_float(images, mean, std)
    np.testing.assert_allclose(z.reshape(-1, 3).mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.reshape(-1, 3).std(axis=0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="both mean and std"):
        to_float(images, mean=mean)
    with pytest.raises(TypeError, match="uint8"):
        to_float(x)


def test_channel_stats_matches_numpy_across_chunks():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2500, 2, 3, 3), dtype=np.uint8)
    images[..., 2] = 7  # a constant channel: std 1, so standardizing it only shifts
    mean, std = channel_stats(images)
    scaled = images.reshape(-1, 3) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std[:2], scaled.std(axis=0)[:2], rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32 and std[2] == 1.0


def numbered(n: int, split: str = "train") -> Dataset:
    """Images whose first pixel is their index (mod 256 over two pixels), labels n % 10."""
    images = np.zeros((n, 2, 2, 1), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 1, 0] = np.arange(n) // 256
    return Dataset("mnist", split, images, np.arange(n) % 10, DATASETS["mnist"].class_names,
                   "generated")


def ids(ds: Dataset) -> np.ndarray:
    return ds.images[:, 0, 0, 0].astype(int) + 256 * ds.images[:, 0, 1, 0].astype(int)


@pytest.mark.parametrize("stratify", [True, False])
def test_split_validation(stratify):
    ds = numbered(1000)
    train, val = split_validation(ds, fraction=0.2, seed=3, stratify=stratify)
    assert (len(train), len(val)) == (800, 200)
    assert not set(ids(train)) & set(ids(val))
    assert sorted(np.concatenate([ids(train), ids(val)])) == list(range(1000))
    np.testing.assert_array_equal(train.labels, ids(train) % 10)
    if stratify:
        assert np.bincount(val.labels).tolist() == [20] * 10
    assert (train.split, val.split) == ("train", "val")
    again = split_validation(ds, fraction=0.2, seed=3, stratify=stratify)[1]
    np.testing.assert_array_equal(ids(again), ids(val))
    other = split_validation(ds, fraction=0.2, seed=4, stratify=stratify)[1]
    assert set(ids(other)) != set(ids(val))


def test_split_validation_never_touches_test():
    with pytest.raises(ValueError, match="not the test split"):
        split_validation(numbered(100, split="test"))
    with pytest.raises(ValueError, match="fraction"):
        split_validation(numbered(100), fraction=1.0)
