"""Real datasets, loaded whole into memory as uint8 tensors.

A dataset is named by a spec string, "KIND" or "KIND:PATH":

    synthetic-faces[:N]        N rendered faces (default 30000) with attributes and ground-truth factors
    fashion-mnist[:PATH]       the IDX files (default: Debian's /usr/share/datasets/fashion-mnist)
    celeba:PATH                aligned CelebA, official or Kaggle layout, with its 40 attributes
    folder:PATH                any image folder; >= 2 subfolders of images become class labels
    cifar10:PATH               the python batches (PATH/cifar-10-batches-py, or that folder itself)
    svhn:PATH                  SVHN cropped digits: PATH/train_32x32.mat and PATH/test_32x32.mat
    lsun:PATH[:cat,cat...]     LSUN LMDB databases (needs `lmdb`) or a folder of exported JPEGs

`parse_dataset_spec` validates a spec cheaply (the CLI calls it before any work); `load_dataset`
returns an `ImageDataset` whose `images` are uint8 (N, C, image_size, image_size). Each kind has
its reader module (celeba.py, folder.py, ...; shared pieces in common.py and decode.py), and every
load goes through the decoded-data cache (cache.py): decoded once, memory-mapped afterwards.
Training preloads the images (or, past its memory budget, reads batches from the cache's file)
instead of running a DataLoader; the explorer indexes them for real images.

Splits: "train", "val", "test" and "all" where the dataset has them (CelebA through
list_eval_partition; Fashion-MNIST, CIFAR-10 and SVHN have train/test; synthetic faces draw held-out splits
with another seed); a folder has no splits and returns all its images for any split.
"""
from __future__ import annotations

import os
import re

from explorer.datasets import cache as decoded_cache
from explorer.datasets import celeba, cifar10, fashion_mnist, folder, lsun, svhn, synthetic_faces
from explorer.datasets.common import (
    DatasetError,
    DatasetSpec,
    ImageDataset,
    Request,
    center_crop_resize,
    convert_channels,
    resize_batch,
)

__all__ = [
    "DatasetError", "DatasetSpec", "ImageDataset", "KINDS", "SPLITS", "center_crop_resize", "check_size", "convert_channels",
    "load_dataset", "parse_dataset_spec", "resize_batch",
]  # fmt: skip

READERS = {  # kind -> its reader module: inputs(request) for the cache key, read(request, ...)
    "synthetic-faces": synthetic_faces,
    "fashion-mnist": fashion_mnist,
    "celeba": celeba,
    "folder": folder,
    "cifar10": cifar10,
    "lsun": lsun,
    "svhn": svhn,
}
KINDS = tuple(READERS)
SPLITS = ("train", "val", "test", "all")
DEFAULT_FASHION_MNIST_DIR = fashion_mnist.DEFAULT_DIR
_USAGE = "synthetic-faces[:N], fashion-mnist[:PATH], celeba:PATH, folder:PATH, cifar10:PATH, lsun:PATH[:category,...], svhn:PATH"
_CATEGORIES = re.compile(r"[A-Za-z0-9_]+(,[A-Za-z0-9_]+)*")


def parse_dataset_spec(spec: str, check_exists: bool = True) -> DatasetSpec:
    """Parse "KIND[:PATH]" into a DatasetSpec; with check_exists, PATH must be an existing folder.

    Raises DatasetError for an unknown kind, a missing or empty PATH, a bad count, or (with
    check_exists) a PATH that is not an existing folder. Reads no data.
    """
    if isinstance(spec, DatasetSpec):
        return spec
    kind, has_rest, rest = str(spec).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r} in {spec!r}; valid kinds: {', '.join(KINDS)} (as {_USAGE})")

    if kind == "synthetic-faces":
        if not has_rest:
            return DatasetSpec(kind, None)
        try:
            count = int(rest)
        except ValueError:
            count = 0
        if count < 1:
            raise DatasetError(f"{spec!r}: synthetic-faces:N needs a positive number of images, got {rest!r}")
        return DatasetSpec(kind, None, count=count)

    if has_rest and not rest.strip():
        raise DatasetError(f"{spec!r}: empty path after '{kind}:'; use {kind}:PATH")
    path = rest.strip() or None
    categories = None
    if kind == "lsun" and path is not None:
        # lsun:PATH:bedroom,tower -- unless the whole thing is an existing path containing ':'.
        head, colon, tail = path.rpartition(":")
        if colon and head and _CATEGORIES.fullmatch(tail) and not os.path.exists(os.path.expanduser(path)):
            path, categories = head, tuple(tail.split(","))
    if path is None:
        if kind != "fashion-mnist":
            raise DatasetError(f"{spec!r}: {kind} needs the dataset folder: {kind}:PATH")
        if check_exists and not os.path.isdir(DEFAULT_FASHION_MNIST_DIR):
            raise DatasetError(
                f"fashion-mnist: the default folder {DEFAULT_FASHION_MNIST_DIR} does not exist; install Debian's "
                "dataset-fashion-mnist package or pass fashion-mnist:PATH"
            )
        return DatasetSpec(kind, None)

    path = os.path.expanduser(path)
    if check_exists and not os.path.isdir(path):
        what = "is not a folder" if os.path.exists(path) else "does not exist"
        raise DatasetError(f"{spec!r}: {path} {what}; {kind}:PATH needs the folder that holds the dataset")
    return DatasetSpec(kind, path, categories=categories)


def check_size(spec: str | DatasetSpec, image_size: int, channels: int | None = None, max_images: int | None = None) -> None:
    """DatasetError, without reading any data, when a dataset's size is known to exceed the memory
    available before it is loaded (synthetic faces: count x image size); a no-op for the others,
    whose size is checked as they load."""
    parsed = parse_dataset_spec(spec) if not isinstance(spec, DatasetSpec) else spec
    reader = READERS[parsed.kind]
    if hasattr(reader, "check_size"):
        reader.check_size(Request(parsed, image_size, channels, max_images, "train"))


def load_dataset(
    spec: str | DatasetSpec,
    image_size: int = 64,
    channels: int | None = None,
    max_images: int | None = None,
    split: str = "train",
    cache: str | os.PathLike | None = "auto",
    progress: bool = False,
) -> ImageDataset:
    """Load a whole dataset as uint8 (N, C, image_size, image_size), C = channels or the natural count.

    channels=None keeps the dataset's own channel count (1 for Fashion-MNIST, 3 otherwise); 1 or 3
    converts. max_images keeps the first N (in file order, sorted for folders and CelebA) that
    decode. Broken files are skipped and counted in `.skipped`.

    cache: "auto" (the default) keeps the decoded result in $LATENT_LAB_DATA_CACHE or
    ~/.cache/latent-lab/decoded (see explorer.datasets.cache) and memory-maps it on later loads;
    a folder keeps it there; "off" or None decodes every time. progress shows a bar on stderr
    while image files decode; otherwise nothing is printed.
    """
    parsed = parse_dataset_spec(spec) if not isinstance(spec, DatasetSpec) else spec
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise DatasetError(f"image_size must be a positive integer, got {image_size!r}")
    if channels not in (None, 1, 3):
        raise DatasetError(f"channels must be 1, 3 or None (the dataset's own), got {channels!r}")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise DatasetError(f"max_images must be a positive integer or None, got {max_images!r}")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if parsed.kind not in READERS:
        raise DatasetError(f"unknown dataset kind {parsed.kind!r}; valid kinds: {', '.join(KINDS)}")
    if parsed.path is None and parsed.kind not in ("synthetic-faces", "fashion-mnist"):  # a hand-built DatasetSpec
        raise DatasetError(f"{parsed.kind} needs the dataset folder: {parsed.kind}:PATH")

    reader = READERS[parsed.kind]
    request = Request(parsed, image_size, channels, max_images, split)
    cache_dir = decoded_cache.resolve_cache_dir(cache)
    if cache_dir is None:
        return reader.read(request, progress=progress)
    return decoded_cache.load_or_decode(reader, request, cache_dir, progress=progress)
