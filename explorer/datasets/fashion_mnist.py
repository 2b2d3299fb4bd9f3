"""Fashion-MNIST: the IDX files of the official release (gzip-compressed or not)."""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from explorer.datasets.common import DatasetError, ImageDataset, Request, check_fits_memory, check_split, resized_dataset
from explorer.datasets.decode import MAX_IMAGE_PIXELS, stat_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)
DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_STEMS = {  # split -> (images, labels) file stems, as in the official release
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_READ_CHUNK = 1 << 22  # bytes per read: the decompressed data streams into one preallocated array


def _read(path: Path, body):
    """body(stream) over the file's bytes, gunzipped when it starts with gzip's magic (whatever it is
    called); gzip, zlib and I/O errors become a DatasetError that names the file."""
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if not compressed:
                return body(raw)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return body(stream)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(
            f"{path}: cannot read this IDX file ({error}); the file is truncated or corrupt, download it again"
        ) from error


def _read_header(path: Path, stream) -> tuple[int, ...]:
    """The dimensions from an IDX header (two zero bytes, type 0x08 = unsigned byte, ndim, big-endian uint32 dims)."""
    head = stream.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file (bad magic number {head.hex() or 'empty'}); "
            "expected e.g. train-images-idx3-ubyte[.gz] from the Fashion-MNIST release"
        )
    if head[2] != 0x08:
        raise DatasetError(f"{path}: IDX data type 0x{head[2]:02x} is not supported; only unsigned bytes (0x08) are")
    ndim = head[3]
    dims_bytes = stream.read(4 * ndim)
    if ndim == 0 or len(dims_bytes) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header; download the file again")
    return struct.unpack(f">{ndim}I", dims_bytes)


def idx_dims(path: str | os.PathLike) -> tuple[int, ...]:
    """The dimensions an IDX file's header declares, reading (and decompressing) only the header."""
    return _read(Path(path), lambda stream: _read_header(Path(path), stream))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) of unsigned bytes as a uint8 array of its dimensions.

    IDX layout (LeCun's MNIST format): two zero bytes, a type code (0x08 = unsigned byte), the number
    of dimensions, one big-endian uint32 per dimension, then the data in C order. The data streams
    into an array of the size the header declares (checked against the memory available first), so
    a small gzip file that inflates to gigabytes is never decompressed whole: reading stops one
    byte past the declared size.
    """
    path = Path(path)

    def body(stream) -> np.ndarray:
        dims = _read_header(path, stream)
        expected = math.prod(dims)
        check_fits_memory(expected, f"{path}: its IDX header declares {'x'.join(map(str, dims))} bytes of data, which",
                          "the file is corrupt or not an IDX file of this dataset")
        data = np.empty(expected, np.uint8)
        view, filled = memoryview(data), 0
        while filled < expected:
            got = stream.readinto(view[filled : filled + _READ_CHUNK])
            if not got:
                break
            filled += got
        if filled != expected or stream.read(1):
            held = f"{filled}" if filled != expected else "more than that"
            raise DatasetError(
                f"{path}: IDX header says {'x'.join(map(str, dims))} = {expected} bytes of data but the file holds "
                f"{held}; the file is truncated or corrupt, download it again"
            )
        return data.reshape(dims)

    return _read(path, body)


def _find_idx_file(root: Path, stem: str) -> Path:
    # Accept the official gzip names, already-gunzipped files, and MNIST's "x.idx3-ubyte" spelling.
    names = [stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: no {stem}[.gz] file; a Fashion-MNIST folder holds the four IDX files of the official release")


def _root(request: Request) -> Path:
    root = Path(request.spec.path or DEFAULT_DIR)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: Fashion-MNIST folder not found; install Debian's dataset-fashion-mnist or pass fashion-mnist:PATH"
        )
    return root


def _parts(request: Request) -> tuple[str, ...]:
    check_split("fashion-mnist", request.split, ("train", "test", "all"))
    return ("train", "test") if request.split == "all" else (request.split,)


def inputs(request: Request) -> tuple[list[tuple[str, int, int]], dict]:
    """(path, size, mtime) of the files the output is read from (the decoded-data cache's key)."""
    root = _root(request)
    return stat_files([_find_idx_file(root, stem) for part in _parts(request) for stem in _STEMS[part]]), {}


def read(request: Request, progress: bool = False, allocate=None) -> ImageDataset:
    root = _root(request)
    files = [tuple(_find_idx_file(root, stem) for stem in _STEMS[part]) for part in _parts(request)]
    # Headers first: shapes and memory are checked before any data is decompressed.
    count, needed = 0, 0
    for image_file, label_file in files:
        image_dims, label_dims = idx_dims(image_file), idx_dims(label_file)
        if len(image_dims) != 3 or len(label_dims) != 1:
            raise DatasetError(f"{image_file}: expected (N, H, W) images and (N,) labels, got {image_dims} and {label_dims}")
        if image_dims[0] != label_dims[0]:
            raise DatasetError(f"{image_file}: {image_dims[0]} images but {label_file.name} has {label_dims[0]} labels")
        if image_dims[1] * image_dims[2] > MAX_IMAGE_PIXELS:
            raise DatasetError(f"{image_file}: images of {image_dims[1]}x{image_dims[2]} pixels are too large for an IDX image set")
        count += image_dims[0]
        needed += math.prod(image_dims) + label_dims[0] * 9  # raw images, raw + int64 labels
    kept = count if request.max_images is None else min(count, request.max_images)
    needed += kept * (1 if request.channels in (None, 1) else 3) * request.image_size**2
    check_fits_memory(needed, f"{request.text}: {count} images read and resized to {request.image_size} px",
                      "the IDX headers are corrupt or the dataset is larger than this machine can load")

    images, labels = [], []
    for image_file, label_file in files:
        part_images, part_labels = read_idx(image_file), read_idx(label_file)
        if len(part_labels) and part_labels.max() >= len(CLASSES):
            raise DatasetError(f"{label_file}: label {part_labels.max()} out of range 0..9")
        images.append(part_images)
        labels.append(part_labels)
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if request.max_images is not None:  # copies, so the full split is not kept alive by a view
        all_images, all_labels = all_images[: request.max_images].copy(), all_labels[: request.max_images].copy()
    # (N, 28, 28) -> (N, 1, 28, 28) -> resize. 28 -> 32 is a (slightly blurring) resize rather than the
    # LeNet-style 2 px zero padding, so every image size goes through the same code and the garment
    # fills the frame the same way at 32, 64 and 128 px.
    return resized_dataset(
        torch.from_numpy(all_images).unsqueeze(1), request,
        class_names=list(CLASSES), labels=torch.from_numpy(all_labels.astype(np.int64)),
    )
