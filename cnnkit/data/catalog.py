"""What cnnkit knows about each dataset: shape, class names, layout and official downloads.

The checksums are the ones published for the official files (MD5s as torchvision lists them
for MNIST and Fashion-MNIST, the one on the CIFAR-10 page for its archive); a download is
kept only when it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Remote:
    """One official file: where to fetch it and the digest it must have."""

    filename: str
    url: str
    algorithm: str  # a hashlib name: "md5" or "sha256"
    digest: str


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as known before loading it (what a CLI can list or a model can be sized by)."""

    name: str
    title: str
    shape: tuple[int, int, int]  # H, W, C of one image
    class_names: tuple[str, ...]
    layout: str  # "idx", "cifar10" or "sample" (shipped inside cnnkit)
    downloads: Mapping[str, tuple[Remote, ...]] = field(default_factory=dict)  # per split


_MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/",
}

# dataset, splits the file serves, file name, algorithm, digest
CHECKSUMS: tuple[tuple[str, tuple[str, ...], str, str, str], ...] = (
    ("mnist", ("train",), "train-images-idx3-ubyte.gz", "md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("mnist", ("train",), "train-labels-idx1-ubyte.gz", "md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("mnist", ("test",), "t10k-images-idx3-ubyte.gz", "md5", "9fb629c4189551a2d022fa330f9573f3"),
    ("mnist", ("test",), "t10k-labels-idx1-ubyte.gz", "md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    ("fashion-mnist", ("train",), "train-images-idx3-ubyte.gz", "md5",
     "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    ("fashion-mnist", ("train",), "train-labels-idx1-ubyte.gz", "md5",
     "25c81989df183df01b3e8a0aad5dffbe"),
    ("fashion-mnist", ("test",), "t10k-images-idx3-ubyte.gz", "md5",
     "bef4ecab320f06d8554ea6380940ec79"),
    ("fashion-mnist", ("test",), "t10k-labels-idx1-ubyte.gz", "md5",
     "bb300cfdad3c16e7a12a480ee83cd310"),
    ("cifar10", ("train", "test"), "cifar-10-python.tar.gz", "md5",
     "c58f30108f718f92721af3b95e74349a"),
)


def _downloads(dataset: str) -> Mapping[str, tuple[Remote, ...]]:
    return MappingProxyType({
        split: tuple(
            Remote(filename, _MIRRORS[name] + filename, algorithm, digest)
            for name, splits, filename, algorithm, digest in CHECKSUMS
            if name == dataset and split in splits
        )
        for split in ("train", "test")
    })


DIGITS = tuple(str(d) for d in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck")

DATASETS: Mapping[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", "MNIST handwritten digits", (28, 28, 1), DIGITS, "idx",
                         _downloads("mnist")),
    "fashion-mnist": DatasetInfo("fashion-mnist", "Fashion-MNIST (Zalando article images)",
                                 (28, 28, 1), FASHION, "idx", _downloads("fashion-mnist")),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10 tiny colour images", (32, 32, 3), CIFAR10,
                           "cifar10", _downloads("cifar10")),
    "mnist-sample": DatasetInfo("mnist-sample",
                                "5,000 real MNIST digits shipped with cnnkit (4,000 train, "
                                "1,000 test)", (28, 28, 1), DIGITS, "sample"),
}

_ALIASES = {"cifar-10": "cifar10", "fmnist": "fashion-mnist"}


def canonical_name(name: str) -> str | None:
    """The catalog key for a user-typed name (any case, ``_`` for ``-``), or None."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    return key if key in DATASETS else None
