"""CIFAR-10: the python batches of cifar-10-python.tar.gz, read by torchvision."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from explorer.datasets.common import DatasetError, ImageDataset, Request, check_split, resized_dataset
from explorer.datasets.decode import stat_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)
_FILES = {
    "train": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
    "test": ["test_batch"],
}
_ALL_FILES = _FILES["train"] + _FILES["test"] + ["batches.meta"]  # torchvision verifies all seven whichever split


def _folder(request: Request) -> Path:
    from torchvision.datasets import CIFAR10

    check_split("cifar10", request.split, ("train", "test", "all"))
    root = Path(request.spec.path)
    folder = root / CIFAR10.base_folder if (root / CIFAR10.base_folder).is_dir() else root
    missing = [name for name in _ALL_FILES if not (folder / name).is_file()]
    if missing:
        raise DatasetError(
            f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)}; extract cifar-10-python.tar.gz "
            "(the python version) and pass its cifar-10-batches-py folder or the folder that holds it"
        )
    return folder


def inputs(request: Request) -> tuple[list[tuple[str, int, int]], dict]:
    """(path, size, mtime) of the batch files (the decoded-data cache's key)."""
    folder = _folder(request)
    return stat_files([folder / name for name in _ALL_FILES]), {}


def read(request: Request, progress: bool = False, allocate=None) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    folder = _folder(request)
    # torchvision looks in root/base_folder; a subclass lets PATH be that folder whatever its name.
    dataset_class = type("CIFAR10", (CIFAR10,), {"base_folder": folder.name})
    images, labels, classes = [], [], None
    for part in ("train", "test") if request.split == "all" else (request.split,):
        try:
            # torchvision checks the official md5 sums, then unpickles the batches: pickle is the
            # format CIFAR-10 is distributed in, acceptable for files the user downloaded themselves
            # (never point this at batches from an untrusted source).
            dataset = dataset_class(root=str(folder.parent), train=part == "train", download=False)
        except Exception as error:  # RuntimeError on md5 mismatch, pickle/KeyError on odd contents
            raise DatasetError(
                f"{folder}: torchvision could not read the CIFAR-10 python batches ({error}); they must be the "
                "unmodified files of cifar-10-python.tar.gz, download and extract it again"
            ) from error
        images.append(np.asarray(dataset.data, dtype=np.uint8))  # (N, 32, 32, 3) HWC
        labels.append(np.asarray(dataset.targets, dtype=np.int64))
        classes = list(dataset.classes)
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if request.max_images is not None:
        all_images, all_labels = all_images[: request.max_images], all_labels[: request.max_images]
    return resized_dataset(
        torch.from_numpy(all_images).permute(0, 3, 1, 2), request, class_names=classes, labels=torch.from_numpy(all_labels)
    )
