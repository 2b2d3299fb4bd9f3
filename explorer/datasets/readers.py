"""Readers that load a whole image dataset into memory as one uint8 tensor.

Every reader returns an `ImageDataset` whose `images` are uint8 (N, C, S, S) with S = image_size and
C = 1 or 3, so training can keep the data on the device and the explorer can index it directly.
All geometry goes through `center_crop_resize` (torchvision.transforms.v2.functional on uint8 tensors),
all file decoding through PIL (`decode_image_file`), so every reader crops, resizes, converts colour
and reports broken files the same way.

Readers print nothing: files that cannot be used are counted in `ImageDataset.skipped` under one of
the SKIP_* reasons below, and the caller decides what to tell the user.
"""
from __future__ import annotations

import csv
import gzip
import math
import os
import struct
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the path, what was wrong and what to do."""


# ---------------------------------------------------------------------------------------------
# The in-memory dataset
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageDataset:
    images: torch.Tensor  # uint8 (N, C, H, W), C = 1 or 3, already cropped/resized to image_size
    spec: str  # the spec string it was loaded from, e.g. "celeba:/data/celeba"
    class_names: list[str] | None = None  # names for `labels`
    labels: torch.Tensor | None = None  # int64 (N,)
    attribute_names: list[str] | None = None
    attributes: torch.Tensor | None = None  # uint8 0/1 (N, A)
    factor_names: list[str] | None = None
    factors: torch.Tensor | None = None  # float32 (N, F) continuous ground-truth factors
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of files skipped

    def __post_init__(self) -> None:
        # Readers are the only producers; these checks catch a reader bug, not user input.
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, 1|3, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        n = self.images.shape[0]
        for name, names_name in (("labels", "class_names"), ("attributes", "attribute_names"), ("factors", "factor_names")):
            values = getattr(self, name)
            if values is not None and values.shape[0] != n:
                raise ValueError(f"{name} has {values.shape[0]} rows for {n} images")
            names = getattr(self, names_name)
            if values is not None and values.ndim == 2 and names is not None and len(names) != values.shape[1]:
                raise ValueError(f"{names_name} has {len(names)} names for {values.shape[1]} columns of {name}")

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def __len__(self) -> int:
        return int(self.images.shape[0])


# ---------------------------------------------------------------------------------------------
# Shared geometry and decoding
# ---------------------------------------------------------------------------------------------

# Skip reasons, the keys of ImageDataset.skipped.
SKIP_EMPTY = "empty file"
SKIP_NOT_IMAGE = "not an image"
SKIP_TOO_LARGE = "too large"
SKIP_TRUNCATED = "truncated"
SKIP_DECODE = "decode error"
SKIP_MISSING_IMAGE = "missing image"  # an annotation row whose image file is absent
SKIP_NO_ROW = "no attribute row"  # an image file with no annotation row
SKIP_OUTSIDE_CLASSES = "outside class folders"  # loose files next to the class folders

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")

# Images with more pixels than this are skipped before decoding (their header gives the size), so a
# stray panorama or a decompression bomb never takes the loader's memory: 50 M RGB pixels is 150 MB.
# PIL's own guard (Image.MAX_IMAGE_PIXELS, ~89 M: warning; twice that: DecompressionBombError at
# open) is left as it is; its error is caught and counted the same way.
MAX_IMAGE_PIXELS = 50_000_000

_RESIZE_CHUNK = 4096  # images per resize call for in-memory datasets: bounds the float scratch memory


def center_crop_resize(images: torch.Tensor, image_size: int, crop: int | None = None) -> torch.Tensor:
    """Centre-crop a square and resize it: uint8 (..., C, H, W) -> uint8 (..., C, image_size, image_size).

    The square has side `crop` (clamped to the image), or min(H, W) when crop is None. torchvision's
    center_crop puts the top-left corner at round((H - side) / 2), round((W - side) / 2), the same
    offsets as the DCGAN reference crop for CelebA. The resize is bilinear with antialiasing, so a
    downscale averages instead of aliasing; torchvision rounds back to uint8.
    """
    # torchvision is imported where used: `import torchvision` costs ~1.5 s (torch._dynamo), which
    # the explorer's cold start does not need (it reads datasets only on some pages).
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    height, width = images.shape[-2:]
    side = min(height, width) if crop is None else min(crop, height, width)
    if (height, width) != (side, side):
        images = TF.center_crop(images, [side, side])
    if side != image_size:
        images = TF.resize(images, [image_size, image_size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return images.contiguous()


def resize_batch(images: torch.Tensor, image_size: int, crop: int | None = None) -> torch.Tensor:
    """`center_crop_resize` for a whole in-memory dataset (N, C, H, W), in chunks to bound scratch memory."""
    if images.shape[-2:] == (image_size, image_size) and crop is None:
        return images.contiguous()
    parts = [center_crop_resize(images[i : i + _RESIZE_CHUNK], image_size, crop) for i in range(0, len(images), _RESIZE_CHUNK)]
    if not parts:
        return torch.empty((0, images.shape[1], image_size, image_size), dtype=torch.uint8)
    return torch.cat(parts)


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """uint8 (..., C, H, W) -> (..., channels, H, W); None keeps C. Grey uses ITU-R 601 luma like PIL's "L"."""
    if channels is None or images.shape[-3] == channels:
        return images
    from torchvision.transforms.v2 import functional as TF  # see center_crop_resize

    if channels == 3:
        return TF.grayscale_to_rgb(images).contiguous()
    return TF.rgb_to_grayscale(images, num_output_channels=1).contiguous()


def pil_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """Any PIL image -> uint8 (channels, H, W).

    Transparent images (RGBA, LA, palette or RGB with a transparency key) are composited on white:
    dropping alpha would expose whatever colour the transparent pixels happen to store. 16-bit grey
    (mode I;16 / I) keeps its top 8 bits; PIL's convert("L") would clip everything above 255 to white.
    """
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    elif image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.int64)
        image = Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8), "L")
    image = image.convert("L" if channels == 1 else "RGB")
    array = np.array(image)  # a writable copy: (H, W) for L, (H, W, 3) for RGB
    tensor = torch.from_numpy(array)
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def decode_image_file(path: str | os.PathLike, image_size: int, channels: int, crop: int | None = None) -> torch.Tensor | str:
    """Decode, crop and resize one file: uint8 (channels, image_size, image_size), or a SKIP_* reason."""
    try:
        if os.path.getsize(path) == 0:
            return SKIP_EMPTY
        with Image.open(path) as image:  # lazy: only the header has been read so far
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return SKIP_TOO_LARGE
            if crop is None and min(width, height) > 2 * image_size:
                # JPEG can decode at 1/2, 1/4 or 1/8 scale for almost free (DCT scaling); ask for the
                # smallest scale that still leaves >= image_size pixels across, so a 12 MP photo is
                # not fully decoded just to become 64x64. No-op for other formats. Not with a fixed
                # crop (CelebA): its box would land between the pixels of the scaled image.
                scale = image_size / min(width, height)
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            image.load()  # the real decode: raises on truncated or corrupt data
            ImageOps.exif_transpose(image, in_place=True)  # phone photos store their rotation in EXIF
            tensor = pil_to_tensor(image, channels)
    except Image.DecompressionBombError:
        return SKIP_TOO_LARGE
    except UnidentifiedImageError:
        return SKIP_NOT_IMAGE
    except Exception as error:  # noqa: BLE001 - PIL plugins raise OSError, SyntaxError, ValueError, struct.error...
        return SKIP_TRUNCATED if "truncated" in str(error).lower() else SKIP_DECODE
    return center_crop_resize(tensor, image_size, crop)


def _num_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def decode_files(
    paths: Sequence[str | os.PathLike],
    image_size: int,
    channels: int,
    crop: int | None = None,
    max_images: int | None = None,
) -> tuple[torch.Tensor, list[int], Counter]:
    """Decode `paths` in order with a thread pool, keeping the first `max_images` that decode.

    Returns (images uint8 (K, channels, S, S), indices into `paths` of the K kept files, skip counts
    for the files examined before the K-th kept one). PIL's decoders and torch's resize release the
    GIL, so threads use all cores without pickling images between processes. Output is written into
    one preallocated tensor (no list of N tensors + torch.stack, which would double peak memory).
    """
    limit = len(paths) if max_images is None else min(max_images, len(paths))
    out = torch.empty((limit, channels, image_size, image_size), dtype=torch.uint8)
    kept: list[int] = []
    skipped: Counter = Counter()

    def work(path: str | os.PathLike) -> torch.Tensor | str:
        return decode_image_file(path, image_size, channels, crop)

    with warnings.catch_warnings(), ThreadPoolExecutor(_num_workers()) as pool:
        # PIL warns (DecompressionBombWarning) when opening images above its own limit; such files
        # are skipped as too large anyway, and readers print nothing. (The filter is process-wide
        # while the load runs.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        start = 0
        while start < len(paths) and len(kept) < limit:
            # Chunks bound the number of pending futures; when only a few images are still needed,
            # decode a few more than that, not the rest of the dataset.
            chunk = paths[start : start + min(max(limit - len(kept), 64), _RESIZE_CHUNK)]
            for offset, result in enumerate(pool.map(work, chunk)):
                if len(kept) == limit:
                    break  # leaving the map generator cancels the rest of the chunk
                if isinstance(result, str):
                    skipped[result] += 1
                else:
                    out[len(kept)] = result
                    kept.append(start + offset)
            start += len(chunk)
    images = out if len(kept) == limit else out[: len(kept)].clone()
    return images, kept, skipped


def _check_split(kind: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise DatasetError(f"{kind} has no {split!r} split; use one of {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST (IDX files)
# ---------------------------------------------------------------------------------------------

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_FASHION_MNIST_STEMS = {  # split -> (images, labels) file stems, as in the official release
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) of unsigned bytes as a uint8 array of its dimensions.

    IDX layout (LeCun's MNIST format): two zero bytes, a type code (0x08 = unsigned byte), the number
    of dimensions, one big-endian uint32 per dimension, then the data in C order.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(
            f"{path}: cannot read this IDX file ({error}); the file is truncated or corrupt, download it again"
        ) from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}); "
            "expected e.g. train-images-idx3-ubyte[.gz] from the Fashion-MNIST release"
        )
    if raw[2] != 0x08:
        raise DatasetError(f"{path}: IDX data type 0x{raw[2]:02x} is not supported; only unsigned bytes (0x08) are")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header; download the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise DatasetError(
            f"{path}: IDX header says {'x'.join(map(str, dims))} = {expected} bytes of data but the file holds "
            f"{len(raw) - header}; the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx_file(root: Path, stem: str) -> Path:
    # Accept the official gzip names, already-gunzipped files, and MNIST's "x.idx3-ubyte" spelling.
    names = [stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: no {stem}[.gz] file; a Fashion-MNIST folder holds the four IDX files of the official release")


def read_fashion_mnist(
    path: str | None, spec: str, image_size: int, channels: int | None, max_images: int | None, split: str
) -> ImageDataset:
    _check_split("fashion-mnist", split, ("train", "test", "all"))
    root = Path(path or DEFAULT_FASHION_MNIST_DIR)
    if not root.is_dir():
        raise DatasetError(
            f"{root}: Fashion-MNIST folder not found; install Debian's dataset-fashion-mnist or pass fashion-mnist:PATH"
        )
    images, labels = [], []
    for part in ("train", "test") if split == "all" else (split,):
        image_file, label_file = (_find_idx_file(root, stem) for stem in _FASHION_MNIST_STEMS[part])
        part_images, part_labels = read_idx(image_file), read_idx(label_file)
        if part_images.ndim != 3 or part_labels.ndim != 1:
            raise DatasetError(
                f"{image_file}: expected (N, H, W) images and (N,) labels, got {part_images.shape} and {part_labels.shape}"
            )
        if len(part_images) != len(part_labels):
            raise DatasetError(f"{image_file}: {len(part_images)} images but {label_file.name} has {len(part_labels)} labels")
        if len(part_labels) and part_labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DatasetError(f"{label_file}: label {part_labels.max()} out of range 0..9")
        images.append(part_images)
        labels.append(part_labels)
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if max_images is not None:  # copies, so the full split is not kept alive by a view
        all_images, all_labels = all_images[:max_images].copy(), all_labels[:max_images].copy()
    # (N, 28, 28) -> (N, 1, 28, 28) -> resize. 28 -> 32 is a (slightly blurring) resize rather than the
    # LeNet-style 2 px zero padding, so every image size goes through the same code and the garment
    # fills the frame the same way at 32, 64 and 128 px.
    tensor = resize_batch(torch.from_numpy(all_images).unsqueeze(1), image_size)
    return ImageDataset(
        images=convert_channels(tensor, channels),
        spec=spec,
        class_names=list(FASHION_MNIST_CLASSES),
        labels=torch.from_numpy(all_labels.astype(np.int64)),
    )


# ---------------------------------------------------------------------------------------------
# CelebA (official or Kaggle layout)
# ---------------------------------------------------------------------------------------------

# DCGAN-tensorflow (carpedm20), `main.py --dataset celebA --input_height=108 --crop`: the centred
# 108x108 square of the 178x218 aligned image (rows 55..162, columns 35..142: the face, little
# background) resized to the output size. Same offsets as torchvision's center_crop.
CELEBA_CROP = 108
_CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}


def _celeba_base(root: Path) -> Path:
    # torchvision's CelebA keeps everything under root/celeba; accept that too.
    for base in (root, root / "celeba"):
        if (base / "img_align_celeba").is_dir():
            return base
    raise DatasetError(
        f"{root}: no img_align_celeba/ folder. Expected the official layout (img_align_celeba/*.jpg + "
        "list_attr_celeba.txt) or the Kaggle one (img_align_celeba/img_align_celeba/*.jpg + list_attr_celeba.csv)"
    )


def read_celeba_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image file names, uint8 0/1 values (rows, A)) from list_attr_celeba.txt or .csv.

    .txt (official): a count line, a line of names, then "000001.jpg -1  1 ..." (runs of spaces).
    .csv (Kaggle): a header "image_id,5_o_Clock_Shadow,...", then "000001.jpg,-1,1,...".
    Values are -1/1 (0 is read as -1); they become 0/1.
    """
    with open(path, newline="") as file:
        if path.suffix == ".csv":
            rows = [[token.strip() for token in row] for row in csv.reader(file)]
            if not rows or not rows[0] or rows[0][0] != "image_id":
                raise DatasetError(f"{path}: expected a header line starting with image_id")
            names, body, first_line = rows[0][1:], rows[1:], 2
        else:
            lines = file.read().splitlines()
            if len(lines) < 2:
                raise DatasetError(f"{path}: expected a count line and a line of attribute names")
            names, body, first_line = lines[1].split(), [line.split() for line in lines[2:]], 3
    allowed = {"1", "-1", "0"}
    files, values = [], []
    for line_number, row in enumerate(body, start=first_line):
        if not row:
            continue
        if len(row) != len(names) + 1:
            raise DatasetError(f"{path}:{line_number}: expected a file name and {len(names)} values, got {len(row)} fields")
        if not allowed.issuperset(row[1:]):
            bad = next(token for token in row[1:] if token not in allowed)
            raise DatasetError(f"{path}:{line_number}: attribute value {bad!r} is not -1 or 1")
        files.append(row[0])
        values.append(row[1:])
    # 202,599 rows x 40 strings -> int8 in one numpy call (~1 s), then -1/0 -> 0 and 1 -> 1.
    signs = np.array(values, dtype=np.int8).reshape(len(files), len(names))
    return names, files, (signs > 0).astype(np.uint8)


def _read_celeba_partition(base: Path) -> dict[str, int] | None:
    """file name -> 0 train / 1 val / 2 test, from list_eval_partition.txt or .csv; None when absent."""
    for path in (base / "list_eval_partition.txt", base / "list_eval_partition.csv"):
        if path.is_file():
            with open(path, newline="") as file:
                rows = list(csv.reader(file)) if path.suffix == ".csv" else [line.split() for line in file]
            if rows and rows[0] and rows[0][0] == "image_id":
                rows = rows[1:]
            try:
                return {row[0].strip(): int(row[1]) for row in rows if row}
            except (IndexError, ValueError) as error:
                raise DatasetError(f"{path}: expected lines '<file> <0|1|2>' ({error})") from error
    return None


def read_celeba(
    path: str, spec: str, image_size: int, channels: int | None, max_images: int | None, split: str
) -> ImageDataset:
    _check_split("celeba", split, ("train", "val", "test", "all"))
    base = _celeba_base(Path(path))
    image_dir = base / "img_align_celeba"
    if (image_dir / "img_align_celeba").is_dir():  # the Kaggle archive nests the folder in itself
        image_dir = image_dir / "img_align_celeba"
    attribute_file = next((p for p in (base / "list_attr_celeba.txt", base / "list_attr_celeba.csv") if p.is_file()), None)
    if attribute_file is None:
        raise DatasetError(
            f"{base}: no list_attr_celeba.txt (official) or list_attr_celeba.csv (Kaggle) next to img_align_celeba/"
        )
    names, rows, values = read_celeba_attributes(attribute_file)

    on_disk = {
        name for name in os.listdir(image_dir) if not name.startswith(".") and name.lower().endswith((".jpg", ".jpeg", ".png"))
    }
    row_of = {name: i for i, name in enumerate(rows)}
    # Mismatches are counted over the whole dataset, before the split is applied.
    skipped = Counter({SKIP_MISSING_IMAGE: len(row_of.keys() - on_disk), SKIP_NO_ROW: len(on_disk - row_of.keys())})
    selected = sorted(row_of.keys() & on_disk)
    partition = _read_celeba_partition(base)
    if partition is not None and split != "all":  # without a partition file every split is all images
        selected = [name for name in selected if partition.get(name) == _CELEBA_SPLITS[split]]
    if not selected:
        raise DatasetError(
            f"{image_dir}: no image matches a row of {attribute_file.name} in split {split!r} "
            f"({len(on_disk)} images on disk, {len(rows)} attribute rows)"
        )

    images, kept, decode_skipped = decode_files(
        [image_dir / name for name in selected], image_size, 1 if channels == 1 else 3, CELEBA_CROP, max_images
    )
    skipped.update(decode_skipped)
    if not kept:
        raise DatasetError(f"{image_dir}: none of the {len(selected)} matching images could be decoded ({dict(+skipped)})")
    row_indices = [row_of[selected[i]] for i in kept]
    return ImageDataset(
        images=images,
        spec=spec,
        attribute_names=names,
        attributes=torch.from_numpy(values[row_indices]),
        skipped=dict(+skipped),  # unary + drops zero counts
    )


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def list_image_files(root: Path) -> list[str]:
    """Image files under root, as sorted POSIX paths relative to root.

    Hidden files and folders are ignored: macOS copies leave "._name.jpg" AppleDouble files that
    are not images, and .git / .cache folders are not part of a dataset.
    """
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = Path(folder).relative_to(root)
        found += [
            (relative / name).as_posix()
            for name in files
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def read_folder(
    path: str,
    spec: str,
    image_size: int,
    channels: int | None,
    max_images: int | None,
    split: str,
    only_classes: Sequence[str] | None = None,
) -> ImageDataset:
    """A folder of images, searched recursively. A folder has no splits: every split gives all images.

    With >= 2 top-level subfolders holding images (or `only_classes` given), the subfolder names are
    class labels (sorted, torchvision ImageFolder style) and loose files at the top are skipped;
    otherwise the images are unlabelled.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    files = list_image_files(root)
    top_folders = sorted({name.split("/", 1)[0] for name in files if "/" in name})
    skipped: Counter = Counter()
    class_names = None
    if only_classes:
        missing = [name for name in only_classes if name not in top_folders]
        if missing:
            raise DatasetError(
                f"{root}: no image subfolder named {', '.join(missing)} (found: {', '.join(top_folders) or 'none'})"
            )
        class_names = sorted(set(only_classes))
    elif len(top_folders) >= 2:
        class_names = top_folders
    if class_names is not None:
        in_classes = [name for name in files if "/" in name and name.split("/", 1)[0] in class_names]
        skipped[SKIP_OUTSIDE_CLASSES] = sum("/" not in name for name in files)
        files = in_classes
    if not files:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder or below it")

    images, kept, decode_skipped = decode_files(
        [root / name for name in files], image_size, 1 if channels == 1 else 3, None, max_images
    )
    skipped.update(decode_skipped)
    if not kept:
        raise DatasetError(f"{root}: none of the {len(files)} image files could be decoded ({dict(+skipped)})")
    labels = None
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[files[i].split("/", 1)[0]] for i in kept], dtype=torch.int64)
    return ImageDataset(images=images, spec=spec, class_names=class_names, labels=labels, skipped=dict(+skipped))


# ---------------------------------------------------------------------------------------------
# CIFAR-10 (torchvision, python batches)
# ---------------------------------------------------------------------------------------------

_CIFAR_FILES = {
    "train": ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
    "test": ["test_batch"],
}


def read_cifar10(
    path: str, spec: str, image_size: int, channels: int | None, max_images: int | None, split: str
) -> ImageDataset:
    from torchvision.datasets import CIFAR10

    _check_split("cifar10", split, ("train", "test", "all"))
    root = Path(path)
    folder = root / CIFAR10.base_folder if (root / CIFAR10.base_folder).is_dir() else root
    parts = ("train", "test") if split == "all" else (split,)
    # torchvision verifies all seven files whichever split is asked for
    missing = [name for name in _CIFAR_FILES["train"] + _CIFAR_FILES["test"] + ["batches.meta"] if not (folder / name).is_file()]
    if missing:
        raise DatasetError(
            f"{folder}: missing CIFAR-10 file(s) {', '.join(missing)}; extract cifar-10-python.tar.gz "
            "(the python version) and pass its cifar-10-batches-py folder or the folder that holds it"
        )
    # torchvision looks in root/base_folder; a subclass lets PATH be that folder whatever its name.
    dataset_class = type("CIFAR10", (CIFAR10,), {"base_folder": folder.name})
    images, labels, classes = [], [], None
    for part in parts:
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
    if max_images is not None:
        all_images, all_labels = all_images[:max_images], all_labels[:max_images]
    tensor = resize_batch(torch.from_numpy(all_images).permute(0, 3, 1, 2), image_size)  # -> (N, 3, S, S)
    return ImageDataset(
        images=convert_channels(tensor, channels), spec=spec, class_names=classes, labels=torch.from_numpy(all_labels)
    )


# ---------------------------------------------------------------------------------------------
# SVHN (torchvision, the cropped-digits .mat files)
# ---------------------------------------------------------------------------------------------

SVHN_CLASSES = [str(digit) for digit in range(10)]  # torchvision maps the files' label 10 to digit 0


def read_svhn(
    path: str, spec: str, image_size: int, channels: int | None, max_images: int | None, split: str
) -> ImageDataset:
    from torchvision.datasets import SVHN

    _check_split("svhn", split, ("train", "test", "all"))
    root = Path(path)
    parts = ("train", "test") if split == "all" else (split,)
    missing = [SVHN.split_list[part][1] for part in parts if not (root / SVHN.split_list[part][1]).is_file()]
    if missing:
        raise DatasetError(
            f"{root}: missing SVHN file(s) {', '.join(missing)}; download the cropped-digits format 2 files "
            "(train_32x32.mat, test_32x32.mat) from http://ufldl.stanford.edu/housenumbers/ into this folder"
        )
    images, labels = [], []
    for part in parts:
        try:
            # torchvision checks the official md5 sums, then reads X (32, 32, 3, N) and y (N, 1) with scipy.io.
            dataset = SVHN(root=str(root), split=part, download=False)
        except Exception as error:  # RuntimeError on md5 mismatch, scipy errors on odd contents
            raise DatasetError(
                f"{root}: torchvision could not read {SVHN.split_list[part][1]} ({error}); it must be the unmodified "
                "file from http://ufldl.stanford.edu/housenumbers/, download it again"
            ) from error
        images.append(np.asarray(dataset.data, dtype=np.uint8))  # (N, 3, 32, 32) CHW
        labels.append(np.asarray(dataset.labels, dtype=np.int64).reshape(-1))
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if max_images is not None:  # copies, so the full split is not kept alive by a view
        all_images, all_labels = all_images[:max_images].copy(), all_labels[:max_images].copy()
    tensor = resize_batch(torch.from_numpy(np.ascontiguousarray(all_images)), image_size)
    return ImageDataset(
        images=convert_channels(tensor, channels), spec=spec, class_names=list(SVHN_CLASSES), labels=torch.from_numpy(all_labels)
    )


# ---------------------------------------------------------------------------------------------
# LSUN (torchvision's LMDB reader, or a folder of exported JPEGs)
# ---------------------------------------------------------------------------------------------


def _lsun_databases(root: Path, categories: Sequence[str] | None, split: str) -> tuple[Path, list[str]] | None:
    """(root, torchvision class names like "bedroom_train") when root holds LMDB folders, else None."""
    if root.name.endswith("_lmdb"):  # PATH is one database folder
        return root.parent, [root.name[: -len("_lmdb")]]
    present = sorted(p.name[: -len("_lmdb")] for p in root.iterdir() if p.is_dir() and p.name.endswith("_lmdb"))
    if not present:
        return None
    if split == "all":  # every split of the chosen (or of all) categories
        return root, [name for name in present if not categories or name.rsplit("_", 1)[0] in categories]
    if categories:
        return root, [f"{category}_{split}" for category in categories]
    # No categories given: every database of this split that is actually there (torchvision's
    # default would be all ten categories, failing when only bedroom_train was downloaded).
    return root, [name for name in present if name == split or name.endswith(f"_{split}")]


def _lsun_class_names(classes: list[str]) -> list[str]:
    """"bedroom_train" -> "bedroom", unless that would merge two databases (split "all")."""
    names = [name if name == "test" else name.rsplit("_", 1)[0] for name in classes]
    return names if len(set(names)) == len(names) else list(classes)


def read_lsun(
    path: str,
    categories: Sequence[str] | None,
    spec: str,
    image_size: int,
    channels: int | None,
    max_images: int | None,
    split: str,
) -> ImageDataset:
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    databases = _lsun_databases(root, categories, split)
    if databases is None:  # a folder of images exported from the LMDBs
        if not list_image_files(root):
            raise DatasetError(f"{root}: neither LSUN LMDB folders (e.g. bedroom_train_lmdb/) nor image files")
        return read_folder(path, spec, image_size, channels, max_images, split, only_classes=categories)
    _check_split("lsun", split, ("train", "val", "test", "all"))
    try:
        import lmdb  # noqa: F401 - torchvision imports it lazily; check first for a clear message
    except ImportError as error:
        raise DatasetError(
            f"{root}: reading LSUN LMDB databases needs the lmdb package, which is not installed: run "
            "`pip install lmdb`, or export the images as JPEGs and use lsun:FOLDER (or folder:FOLDER)"
        ) from error
    from torchvision.datasets import LSUN

    db_root, classes = databases
    missing = [name for name in classes if not (db_root / f"{name}_lmdb").is_dir()]
    if not classes or missing:
        wanted = ", ".join(f"{name}_lmdb" for name in missing) or f"for split {split!r}"
        raise DatasetError(f"{db_root}: no LSUN database folder {wanted}")
    try:
        # Note: torchvision caches each database's key list in a "_cache_<path letters>" file in the
        # current directory (and reuses it on the next run).
        dataset = LSUN(str(db_root), classes=classes)
    except Exception as error:
        raise DatasetError(f"{db_root}: torchvision could not open the LSUN databases {classes} ({error})") from error

    # Sequential: torchvision opens each LMDB with max_readers=1, so no thread pool here.
    limit = len(dataset) if max_images is None else min(max_images, len(dataset))
    out = torch.empty((limit, 1 if channels == 1 else 3, image_size, image_size), dtype=torch.uint8)
    labels: list[int] = []
    skipped: Counter = Counter()
    index = 0
    while index < len(dataset) and len(labels) < limit:
        try:
            image, label = dataset[index]  # PIL RGB image, index of its database in `classes`
        except Exception:  # noqa: BLE001 - a corrupt record; count it like a broken file
            skipped[SKIP_DECODE] += 1
        else:
            out[len(labels)] = center_crop_resize(pil_to_tensor(image, out.shape[1]), image_size)
            labels.append(label)
        index += 1
    if not labels:
        raise DatasetError(f"{db_root}: the LSUN databases {classes} hold no decodable image")
    return ImageDataset(
        images=out[: len(labels)].clone() if len(labels) < limit else out,
        spec=spec,
        class_names=_lsun_class_names(classes),
        labels=torch.tensor(labels, dtype=torch.int64),
        skipped=dict(skipped),
    )


# ---------------------------------------------------------------------------------------------
# Synthetic faces (rendered by explorer.datasets.synthetic_faces)
# ---------------------------------------------------------------------------------------------

DEFAULT_SYNTHETIC_FACES = 30_000
# Held-out splits are independent draws: a different seed, never overlapping the training faces.
_SYNTHETIC_SEEDS = {"train": 0, "all": 0, "test": 1, "val": 2}


def read_synthetic_faces(
    count: int | None, spec: str, image_size: int, channels: int | None, max_images: int | None, split: str
) -> ImageDataset:
    _check_split("synthetic-faces", split, tuple(_SYNTHETIC_SEEDS))
    try:
        from explorer.datasets import synthetic_faces  # imported here: optional until it is used
    except ModuleNotFoundError as error:
        if error.name != "explorer.datasets.synthetic_faces":
            raise
        raise DatasetError(
            "synthetic-faces needs explorer/datasets/synthetic_faces.py, which is missing from this checkout"
        ) from error
    n = count or DEFAULT_SYNTHETIC_FACES
    if max_images is not None:
        n = min(n, max_images)  # assumes (as load_cached documents) face i depends only on (seed, i)
    faces = synthetic_faces.load_cached(n, seed=_SYNTHETIC_SEEDS[split], size=image_size)
    # (N, S, S, 3) HWC -> (N, 3, S, S)
    images = torch.as_tensor(np.asarray(faces.images), dtype=torch.uint8).permute(0, 3, 1, 2)
    images = resize_batch(images, image_size)  # no-op: rendered at image_size already
    return ImageDataset(
        images=convert_channels(images, channels),
        spec=spec,
        attribute_names=list(synthetic_faces.ATTRIBUTE_NAMES),
        attributes=torch.as_tensor(np.asarray(faces.attributes), dtype=torch.uint8),
        factor_names=list(synthetic_faces.FACTOR_NAMES),
        factors=torch.as_tensor(np.asarray(faces.factors), dtype=torch.float32),
    )

