"""SVHN cropped digits: train_32x32.mat and test_32x32.mat, read by torchvision."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from explorer.datasets.common import DatasetError, ImageDataset, Request, check_split, resized_dataset
from explorer.datasets.decode import stat_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)
CLASSES = [str(digit) for digit in range(10)]  # torchvision maps the files' label 10 to digit 0


def _files(request: Request) -> tuple[Path, dict[str, Path]]:
    """(folder, split part -> .mat file) for the request's split."""
    from torchvision.datasets import SVHN

    check_split("svhn", request.split, ("train", "test", "all"))
    root = Path(request.spec.path)
    parts = ("train", "test") if request.split == "all" else (request.split,)
    files = {part: root / SVHN.split_list[part][1] for part in parts}
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise DatasetError(
            f"{root}: missing SVHN file(s) {', '.join(missing)}; download the cropped-digits format 2 files "
            "(train_32x32.mat, test_32x32.mat) from http://ufldl.stanford.edu/housenumbers/ into this folder"
        )
    return root, files


def inputs(request: Request) -> tuple[list[tuple[str, int, int]], dict]:
    """(path, size, mtime) of the .mat files (the decoded-data cache's key)."""
    return stat_files(list(_files(request)[1].values())), {}


def read(request: Request, progress: bool = False, allocate=None) -> ImageDataset:
    from torchvision.datasets import SVHN

    root, files = _files(request)
    images, labels = [], []
    for part, path in files.items():
        try:
            # torchvision checks the official md5 sums, then reads X (32, 32, 3, N) and y (N, 1) with scipy.io.
            dataset = SVHN(root=str(root), split=part, download=False)
        except Exception as error:  # RuntimeError on md5 mismatch, scipy errors on odd contents
            raise DatasetError(
                f"{root}: torchvision could not read {path.name} ({error}); it must be the unmodified "
                "file from http://ufldl.stanford.edu/housenumbers/, download it again"
            ) from error
        images.append(np.asarray(dataset.data, dtype=np.uint8))  # (N, 3, 32, 32) CHW
        labels.append(np.asarray(dataset.labels, dtype=np.int64).reshape(-1))
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if request.max_images is not None:  # copies, so the full split is not kept alive by a view
        all_images, all_labels = all_images[: request.max_images].copy(), all_labels[: request.max_images].copy()
    return resized_dataset(
        torch.from_numpy(np.ascontiguousarray(all_images)), request,
        class_names=list(CLASSES), labels=torch.from_numpy(all_labels),
    )
