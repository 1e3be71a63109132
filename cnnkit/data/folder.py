"""Own images: a folder of class subfolders, as torchvision's ImageFolder and Keras'
``image_dataset_from_directory`` read them, decoded once into cnnkit's cache.

    PATH/cat/*.png, PATH/dog/*.jpg          one pool; a seeded 20% of each class is the test split
    PATH/train/cat/..., PATH/test/cat/...   those splits (``val/`` serves when there is no ``test/``)

Class names are the subfolder names, sorted; images may sit deeper inside a class folder,
and links are followed (a folder reached twice, as by a link loop, is read once).  Files
that are not images by their suffix, and hidden ones, are passed over.  An image that
cannot be decoded is skipped, and the dataset's notice counts and names them; an empty
class folder, a single class or a split with no class of the training split stop with a
DataError.  Nothing in the folder is written: decoded pixels go to
``cache_root()/folders/KEY.npz``, where KEY digests every file's path, size and mtime and
the target size, channels and resize mode, so a later run with the same files and settings
loads them instead of decoding again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .dataset import Dataset, split_validation
from .errors import DataError
from .images import is_image_name, read_image
from .sources import cache_root

HELD_OUT = 0.2  # of each class, as the test split of a folder without train/ and test/
HELD_OUT_SEED = 0  # fixed, so that training and `cnnkit evaluate` hold out the same images
CACHE_VERSION = 1  # part of every cache key: raise it when decoding changes
SHOWN_SKIPPED = 3  # names given in the notice about undecodable files
# on_decode(images decoded so far, images to decode)
DecodeProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class _File:
    split: int  # 0: train (or the pool to split), 1: test
    label: int  # index into the sorted class names of the train split
    path: Path

    def key(self, root: Path) -> str:
        stat = self.path.stat()
        return f"{self.split}\0{self.label}\0{self.path.relative_to(root)}\0{stat.st_size}\0" \
               f"{stat.st_mtime_ns}"


def load_folder(root: Path, split: str, shape: tuple[int, int, int], resize: str,
                classes: tuple[str, ...] | None = None,
                on_decode: DecodeProgress | None = None) -> Dataset:
    """One split of the image folder ``root`` as uint8 images of ``shape`` (H, W, C).
    ``classes`` (a trained run's) fixes the label of each class name; by default they are
    the folder's own, sorted."""
    if shape[2] not in (1, 3):
        raise DataError(f"{root}: cannot make {shape[2]}-channel inputs from image files "
                        "(only 1 or 3): change the spec's INPUT")
    splits = _split_folders(root)
    names, files, ignored = _scan(splits)
    cache = cache_root() / "folders" / f"{_cache_key(root, files, shape, resize)}.npz"
    images, labels, parts, skipped = _cached(cache, len(files), shape)
    if images is None:
        images, labels, parts, skipped = _decode(root, files, shape, resize, on_decode)
        _store(cache, images, labels, parts, skipped)
    _check_classes(root, names, labels, parts, len(splits))
    every = Dataset(root.name, "train", images, labels, names,
                    f"{root} (decoded images cached in {cache})")
    chosen, notice = _split(root, every, parts, splits, split)
    if classes is not None:  # after the split, which must not depend on the numbering
        chosen = replace(chosen, labels=_relabel(root, names, chosen.labels, classes),
                         class_names=tuple(classes))
    notes = [notice] if notice else []
    notes += _skip_notes(root, skipped, ignored)
    return replace(chosen, notice="; ".join(notes) or None)


def _split(root: Path, every: Dataset, parts: np.ndarray, splits: list[Path], split: str):
    """(the ``split`` of the folder's images, a notice on where it came from or None)."""
    if len(splits) == 2:
        keep = parts == (0 if split == "train" else 1)
        chosen = replace(every, split=split, images=every.images[keep], labels=every.labels[keep])
        test_name = splits[1].name
        return chosen, f"{test_name}/ serves as the test split" if test_name != "test" else None
    try:
        train, test = split_validation(every, fraction=HELD_OUT, seed=HELD_OUT_SEED)
    except ValueError:
        raise DataError(f"{root}: {len(every)} images are too few to hold out a test split; "
                        "add images, or put them in train/ and test/ subfolders") from None
    chosen = train if split == "train" else replace(test, split="test")
    return chosen, (f"{root} has no train/ and test/ subfolders: {HELD_OUT:.0%} of each class "
                    "(always the same images) is held out as the test split")


def _split_folders(root: Path) -> list[Path]:
    """[train or pool folder] or [train folder, test folder]."""
    try:
        if not root.is_dir():
            raise DataError(f"{root} is not a folder of class subfolders (nor a .npz file)")
        train = root / "train"
        if not train.is_dir():
            return [root]
        test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    except OSError as error:
        raise DataError(f"{root}: cannot look inside: {error.strerror or error}") from None
    return [train] if test is None else [train, test]


def _scan(splits: list[Path]) -> tuple[tuple[str, ...], list[_File], list[Path]]:
    """The class names (of the train split), every image file, and the files passed over."""
    ignored: list[Path] = []
    per_split = [_class_files(folder, ignored) for folder in splits]
    names = tuple(sorted(per_split[0]))
    if len(names) < 2:
        found = f"only the class {names[0]!r}" if names else "no class subfolders"
        raise DataError(f"{splits[0]}: {found}; a classifier needs 2 classes at least, each "
                        "a subfolder of images (e.g. cat/ and dog/)")
    unknown = sorted(set(per_split[-1]) - set(names)) if len(splits) == 2 else []
    if unknown:
        raise DataError(f"{splits[1]}: class folder(s) {', '.join(unknown)} are not in "
                        f"{splits[0]}, so the model would never learn them")
    files = [_File(split, names.index(name), path)
             for split, found in enumerate(per_split)
             for name in sorted(found) for path in found[name]]
    return names, files, ignored


def _class_files(folder: Path, ignored: list[Path]) -> dict[str, list[Path]]:
    """{class name: its image files, sorted} for the subfolders of ``folder``."""
    classes = {}
    for entry in _entries(folder):
        if entry.name.startswith("."):
            continue
        if not _is_dir(entry):
            ignored.append(entry)
            continue
        found = sorted(_images_under(entry, ignored, set()))
        if not found:
            raise DataError(f"{entry}: the class folder {entry.name!r} holds no images (PNG, "
                            "JPEG, BMP, GIF, WebP, TIFF); add some or remove the folder")
        classes[entry.name] = found
    return classes


def _images_under(folder: Path, ignored: list[Path], seen: set) -> list[Path]:
    """Image files in ``folder`` and below, following links; ``seen`` holds the (device,
    inode) of every folder read, so a link back up (a loop) is not followed again."""
    try:
        stat = folder.stat()
    except OSError:
        return []
    if (stat.st_dev, stat.st_ino) in seen:
        return []
    seen.add((stat.st_dev, stat.st_ino))
    found = []
    for entry in _entries(folder):
        if entry.name.startswith("."):
            continue
        if _is_dir(entry):
            found += _images_under(entry, ignored, seen)
        elif is_image_name(entry):
            found.append(entry)
        else:
            ignored.append(entry)
    return found


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError as error:
        raise DataError(f"{folder}: cannot look inside: {error.strerror or error}") from None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a link loop: ELOOP
        return False


def _cache_key(root: Path, files: list[_File], shape, resize: str) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{shape}\0{resize}\0".encode())
    for file in files:
        try:
            digest.update(file.key(root).encode("utf-8", "surrogateescape") + b"\n")
        except OSError:  # vanished or a broken link: decoding will skip it and say so
            digest.update(f"{file.path}\0unreadable\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:40]


def _decode(root: Path, files: list[_File], shape, resize: str,
            on_decode: DecodeProgress | None):
    """Every file decoded (in threads: Pillow lets go of the GIL while it decodes)."""
    images = np.zeros((len(files), *shape), dtype=np.uint8)
    good = np.zeros(len(files), dtype=bool)
    skipped = []
    every = max(1, len(files) // 100)

    def decode(file: _File):
        try:
            return read_image(file.path, shape, resize)
        except DataError as error:
            return error

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for i, result in enumerate(pool.map(decode, files)):
            if isinstance(result, DataError):
                skipped.append(str(files[i].path.relative_to(root)))
            else:
                images[i], good[i] = result, True
            if on_decode is not None and ((i + 1) % every == 0 or i + 1 == len(files)):
                on_decode(i + 1, len(files))
    labels = np.array([f.label for f in files], dtype=np.int64)[good]
    parts = np.array([f.split for f in files], dtype=np.int8)[good]
    return images[good], labels, parts, skipped


def _cached(cache: Path, count: int, shape):
    """What an earlier run decoded, or Nones when the cache lacks it or does not fit."""
    from ..training.rundir import RunError, load_arrays

    if not cache.is_file():
        return None, None, None, None
    try:
        arrays = load_arrays(cache)
        images, labels, parts = arrays["images"], arrays["labels"], arrays["parts"]
        skipped = [str(name) for name in arrays["skipped"]]
    except (RunError, KeyError):
        return None, None, None, None
    n = len(images)
    if (images.dtype != np.uint8 or images.shape[1:] != tuple(shape) or labels.shape != (n,)
            or parts.shape != (n,) or n + len(skipped) != count):
        return None, None, None, None
    return images, labels.astype(np.int64), parts, skipped


def _store(cache: Path, images, labels, parts, skipped) -> None:
    """Saves the decoded pixels; a cache that cannot be written only costs a later decode."""
    from ..training.rundir import RunWriteError, save_arrays

    try:
        save_arrays(cache, {"images": images, "labels": labels, "parts": parts,
                            "skipped": np.array(skipped, dtype=str)})
    except RunWriteError:
        pass


def _check_classes(root: Path, names, labels, parts, splits: int) -> None:
    """Every class keeps a readable image in the training split."""
    train_labels = labels[parts == 0]
    empty = [name for i, name in enumerate(names) if not (train_labels == i).any()]
    if empty:
        where = root / "train" if splits == 2 else root
        raise DataError(f"{where}: no image of class {empty[0]!r} could be decoded "
                        "(see the files it holds)")


def _relabel(root: Path, names, labels: np.ndarray, classes) -> np.ndarray:
    """Labels re-numbered by a trained run's ``classes``, matched by name."""
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise DataError(f"{root}: class folder(s) {', '.join(unknown)} are not among the "
                        f"classes the model was trained on ({', '.join(classes)})")
    index = np.array([list(classes).index(name) for name in names], dtype=np.int64)
    return index[labels]


def _skip_notes(root: Path, skipped: list[str], ignored: list[Path]) -> list[str]:
    notes = []
    if skipped:
        shown = ", ".join(skipped[:SHOWN_SKIPPED]) + (", ..." if len(skipped) > SHOWN_SKIPPED
                                                      else "")
        notes.append(f"skipped {len(skipped)} file(s) that are not readable images: {shown}")
    if ignored:
        shown = ", ".join(str(p.relative_to(root)) for p in ignored[:SHOWN_SKIPPED])
        notes.append(f"passed over {len(ignored)} file(s) that are not in a class folder or "
                     f"not images by their name: {shown}" + (", ..." if len(ignored) >
                                                             SHOWN_SKIPPED else ""))
    return notes
