"""``load_dataset``: find a dataset's files, read them in their format, or explain the miss.

A name that is not a dataset's is the user's own data: a folder of class subfolders
(folder.py) or an .npz file (npz.py).

Offline and with nothing local, ``mnist`` falls back to the shipped ``mnist-sample`` so that
a first run always has real digits to train on; the result then says so in ``notice`` (no
warning is emitted, so that the CLI decides how to show it once).  Every other dataset stops
with an error naming the folder and files it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import cifar, idx, sources
from .catalog import DATASETS, DatasetInfo, canonical_name
from .dataset import Dataset
from .errors import DataError, DownloadError
from .folder import DecodeProgress, load_folder
from .npz import load_npz

ASSETS = Path(__file__).with_name("assets")
SPLITS = ("train", "test")


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    on_progress: sources.Progress | None = None,
    own: OwnData | None = None,
) -> Dataset:
    """Load one split ("train" or "test") of a dataset named in DATASETS, or of the user's
    own data when ``name`` is a folder of class subfolders or an .npz file (see ``OwnData``).

    Looks in ``data_dir``, then the cache, then a system-installed copy; downloads into the
    cache (checksum-verified) only when none of them has the files and ``download`` is true,
    telling ``on_progress(filename, bytes, total)`` how it goes.
    Raises DataError for unknown names, corrupt files and datasets that cannot be had.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    key = canonical_name(name)
    if key is None:
        return _load_own(name, split, own or OwnData())
    info = DATASETS[key]
    if info.layout == "sample":
        return _load_sample(split)

    folders = sources.search_folders(key, data_dir)
    for folder, origin in folders:
        found = _find(info, folder, split)
        if found is not None:
            return _read(info, split, found, origin)

    if not download:
        reason = "downloading is turned off"
    else:
        cache = sources.cache_dir(key)
        remotes = info.downloads[split]
        try:
            sources.download(remotes, cache, on_progress)
        except DownloadError as e:
            reason = f"the download failed: {e}"
        else:
            found = _find(info, cache, split)
            if found is None:
                raise DataError(f"{cache}: downloaded files are not where they should be")
            mirror = remotes[0].url.rsplit("/", 1)[0]
            return _read(info, split, found, f"downloaded from {mirror}")

    missing = f"{info.title} ({key}, {split} split) was not found locally and {reason}."
    if key == "mnist":
        sample = _load_sample(split)
        notice = (f"{missing} Using mnist-sample instead: {len(sample):,} real MNIST digits "
                  f"shipped with cnnkit. For the full dataset, "
                  f"{_where_to_put(info, urls=False)}.")
        return replace(sample, notice=notice)
    looked = ", ".join(str(folder) for folder, _ in folders)
    raise DataError(f"{missing} To use it, {_where_to_put(info)} (Looked in: {looked}.)")


@dataclass(frozen=True)
class OwnData:
    """How to read the user's own data: ``shape`` is the INPUT (H, W, C) that a folder's
    images are converted to with ``resize`` (see images.py); ``classes``, a trained model's
    class names, number the labels; ``on_decode(done, total)`` follows the decoding."""

    shape: tuple[int, int, int] | None = None
    resize: str = "crop"
    classes: tuple[str, ...] | None = None
    on_decode: DecodeProgress | None = None


def is_own_data(name: str) -> bool:
    """Whether ``name`` names a path (a folder or an .npz file) rather than a dataset."""
    return canonical_name(name) is None and (Path(name).expanduser().exists() or os.sep in name
                                             or name.endswith(".npz"))


def _load_own(name: str, split: str, own: OwnData) -> Dataset:
    if not is_own_data(name):
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}, or "
                        "give a folder of class subfolders or an .npz file")
    path = Path(name).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such folder or .npz file")
    if path.suffix.lower() == ".npz" and not path.is_dir():
        return load_npz(path, split, own.classes)
    if own.shape is None:
        raise ValueError("reading an image folder needs the INPUT shape to convert to")
    return load_folder(path, split, own.shape, own.resize, own.classes, own.on_decode)


def _find(info: DatasetInfo, folder: Path, split: str) -> tuple[Path, Path] | Path | None:
    """The dataset's files in ``folder``, or None; a folder that cannot be searched is an
    error, not a miss."""
    try:
        if info.layout == "idx":
            return idx.find_pair(folder, split)
        return cifar.find_cifar10(folder)
    except OSError as e:
        raise DataError(f"{folder}: cannot look inside: {e.strerror or e}") from e


def _read(info: DatasetInfo, split: str, found: tuple[Path, Path] | Path, origin: str) -> Dataset:
    if info.layout == "idx":
        images_path, labels_path = found
        images, labels = idx.read_pair(images_path, labels_path, len(info.class_names))
        where = images_path.parent
    else:
        images, labels = cifar.read_cifar10(found, split)
        where = found
    _check_shape(info, images, str(where))
    return Dataset(info.name, split, images, labels, info.class_names, f"{where} ({origin})")


def _check_shape(info: DatasetInfo, images: np.ndarray, where: str) -> None:
    if images.shape[1:] != info.shape:
        raise DataError(f"{where}: images are {images.shape[1:]} (H, W, C), but {info.name} "
                        f"images are {info.shape}")


def _load_sample(split: str) -> Dataset:
    info = DATASETS["mnist-sample"]
    prefix = idx.SPLIT_PREFIX[split]
    images, labels = idx.read_pair(ASSETS / f"mnist-sample-{prefix}-{idx.IMAGES}.gz",
                                   ASSETS / f"mnist-sample-{prefix}-{idx.LABELS}.gz",
                                   len(info.class_names))
    source = f"{ASSETS} (shipped with cnnkit; MNIST subset, CC BY-SA 3.0)"
    return Dataset(info.name, split, images, labels, info.class_names, source)


def _where_to_put(info: DatasetInfo, urls: bool = True) -> str:
    """Which files to put in which folder, phrased for a person; ``urls`` adds where the
    official files are (a fallback's notice leaves them out: it names the files once)."""
    cache = sources.cache_dir(info.name)
    if info.layout == "idx":
        names = [f"{name}.gz" for split in SPLITS for name in idx.file_names(split)]
        text = (f"put {', '.join(names)} (gzipped or not) into {cache}/ or into a folder "
                f"passed as data_dir (--data-dir)")
        if info.name in sources.SYSTEM_DIRS:
            text += (f", or install the Debian package {sources.SYSTEM_PACKAGES[info.name]}, "
                     f"which puts them in {sources.SYSTEM_DIRS[info.name]}")
    else:
        text = (f"put {cifar.PY_ARCHIVE}, or its extracted folder {cifar.PY_DIR}/ "
                f"(data_batch_1 .. data_batch_5, test_batch), or the binary version "
                f"{cifar.BIN_ARCHIVE} or {cifar.BIN_DIR}/ (data_batch_1.bin .. "
                f"data_batch_5.bin, test_batch.bin) into {cache}/ or into a folder passed as "
                f"data_dir (--data-dir)")
    if not urls:
        return text
    official = sorted({r.url for remotes in info.downloads.values() for r in remotes})
    return f"{text}. Official files: {', '.join(official)}"
