"""Datasets for cnnkit: MNIST, Fashion-MNIST, CIFAR-10 and the shipped mnist-sample.

``load_dataset`` finds the official files (data_dir, cache, system copy, checksum-verified
download) and returns a :class:`Dataset` of uint8 (N, H, W, C) images and int64 labels;
``to_float``, ``channel_stats`` and ``split_validation`` prepare it for training.
"""

from .catalog import DATASETS, DatasetInfo
from .dataset import Dataset, channel_stats, split_validation, to_float
from .errors import DataError, DownloadError
from .load import load_dataset

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "DownloadError",
    "channel_stats",
    "load_dataset",
    "split_validation",
    "to_float",
]
