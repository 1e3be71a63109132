"""Datasets for cnnkit: MNIST, Fashion-MNIST, CIFAR-10, the shipped mnist-sample, own data.

``load_dataset`` finds the official files (data_dir, cache, system copy, checksum-verified
download), or reads the user's own image folder or .npz file, and returns a :class:`Dataset`
of uint8 (N, H, W, C) images and int64 labels; ``to_float``, ``channel_stats`` and
``split_validation`` prepare it for training, ``augment`` varies its batches.
"""

from .catalog import DATASETS, DatasetInfo
from .dataset import Dataset, channel_stats, split_validation, to_float
from .errors import DataError, DownloadError
from .load import OwnData, is_own_data, load_dataset

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "DownloadError",
    "channel_stats",
    "OwnData",
    "is_own_data",
    "load_dataset",
    "split_validation",
    "to_float",
]
