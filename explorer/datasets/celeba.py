"""Aligned CelebA, official or Kaggle layout, with its 40 attributes and (when present) its splits."""
from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from explorer.datasets.common import (
    SKIP_MISSING_IMAGE,
    SKIP_NO_ROW,
    DatasetError,
    ImageDataset,
    Request,
    check_split,
)
from explorer.datasets.decode import decode_files, scan_image_files, stat_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)

# DCGAN-tensorflow (carpedm20), `main.py --dataset celebA --input_height=108 --crop`: the centred
# 108x108 square of the 178x218 aligned image (rows 55..162, columns 35..142: the face, little
# background) resized to the output size. Same offsets as torchvision's center_crop.
CROP = 108
_SPLITS = {"train": 0, "val": 1, "test": 2}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _base(root: Path) -> Path:
    # torchvision's CelebA keeps everything under root/celeba; accept that too.
    for base in (root, root / "celeba"):
        if (base / "img_align_celeba").is_dir():
            return base
    raise DatasetError(
        f"{root}: no img_align_celeba/ folder. Expected the official layout (img_align_celeba/*.jpg + "
        "list_attr_celeba.txt) or the Kaggle one (img_align_celeba/img_align_celeba/*.jpg + list_attr_celeba.csv)"
    )


def read_text(path: Path) -> str:
    """An annotation file as text: UTF-8 (a byte-order mark is dropped), else Latin-1.

    The official files are ASCII; a copy re-saved by an editor may start with a BOM (which would
    otherwise glue itself to the first field) or be Latin-1 (any byte is a Latin-1 character, so
    such a file always reads, and its non-ASCII names keep their characters).
    """
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(attribute names, image file names, uint8 0/1 values (rows, A)) from list_attr_celeba.txt or .csv.

    .txt (official): a count line, a line of names, then "000001.jpg -1  1 ..." (runs of spaces).
    .csv (Kaggle): a header "image_id,5_o_Clock_Shadow,...", then "000001.jpg,-1,1,...".
    Values are -1/1 (0 is read as -1); they become 0/1.
    """
    text = read_text(path)
    if path.suffix == ".csv":
        rows = [[token.strip() for token in row] for row in csv.reader(io.StringIO(text, newline=""))]
        if not rows or not rows[0] or rows[0][0] != "image_id":
            found = repr(rows[0][0][:40]) if rows and rows[0] else "an empty first line"
            raise DatasetError(f"{path}: expected a header line starting with image_id, found {found}")
        names, body, first_line = rows[0][1:], rows[1:], 2
    else:
        lines = text.splitlines()
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
            raise DatasetError(f"{path}:{line_number}: attribute value {bad[:40]!r} is not -1 or 1")
        files.append(row[0])
        values.append(row[1:])
    # 202,599 rows x 40 strings -> int8 in one numpy call (~1 s), then -1/0 -> 0 and 1 -> 1.
    signs = np.array(values, dtype=np.int8).reshape(len(files), len(names))
    return names, files, (signs > 0).astype(np.uint8)


def _partition_file(base: Path) -> Path | None:
    return next((p for p in (base / "list_eval_partition.txt", base / "list_eval_partition.csv") if p.is_file()), None)


def _read_partition(path: Path) -> dict[str, int]:
    """file name -> 0 train / 1 val / 2 test, from list_eval_partition.txt or .csv."""
    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text, newline=""))) if path.suffix == ".csv" else [line.split() for line in text.splitlines()]
    if rows and rows[0] and rows[0][0] == "image_id":
        rows = rows[1:]
    try:
        return {row[0].strip(): int(row[1]) for row in rows if row}
    except (IndexError, ValueError) as error:
        raise DatasetError(f"{path}: expected lines '<file> <0|1|2>' ({str(error)[:80]})") from error


def _layout(request: Request) -> tuple[Path, Path, Path]:
    """(base folder, image folder, attribute file) of the CelebA tree at the request's path."""
    check_split("celeba", request.split, ("train", "val", "test", "all"))
    base = _base(Path(request.spec.path))
    image_dir = base / "img_align_celeba"
    if (image_dir / "img_align_celeba").is_dir():  # the Kaggle archive nests the folder in itself
        image_dir = image_dir / "img_align_celeba"
    attribute_file = next((p for p in (base / "list_attr_celeba.txt", base / "list_attr_celeba.csv") if p.is_file()), None)
    if attribute_file is None:
        raise DatasetError(
            f"{base}: no list_attr_celeba.txt (official) or list_attr_celeba.csv (Kaggle) next to img_align_celeba/"
        )
    return base, image_dir, attribute_file


def _images_on_disk(image_dir: Path) -> list[tuple[str, int, int]]:
    return scan_image_files(image_dir, recursive=False, extensions=_IMAGE_SUFFIXES)


def inputs(request: Request) -> tuple[list[tuple[str, int, int]], dict]:
    """(name, size, mtime) of the files the output is read from (the decoded-data cache's key): a listing, no decoding."""
    base, image_dir, attribute_file = _layout(request)
    partition = _partition_file(base)
    return stat_files([attribute_file] + ([partition] if partition else [])) + _images_on_disk(image_dir), {"crop": CROP}


def read(request: Request, progress: bool = False, allocate=None) -> ImageDataset:
    base, image_dir, attribute_file = _layout(request)
    names, rows, values = read_attributes(attribute_file)
    on_disk = {name for name, _, _ in _images_on_disk(image_dir)}
    row_of = {name: i for i, name in enumerate(rows)}
    # Mismatches are counted over the whole dataset, before the split is applied.
    skipped = Counter({SKIP_MISSING_IMAGE: len(row_of.keys() - on_disk), SKIP_NO_ROW: len(on_disk - row_of.keys())})
    selected = sorted(row_of.keys() & on_disk)
    partition_file = _partition_file(base)
    if partition_file is not None and request.split != "all":  # without a partition file every split is all images
        partition = _read_partition(partition_file)
        selected = [name for name in selected if partition.get(name) == _SPLITS[request.split]]
    if not selected:
        raise DatasetError(
            f"{image_dir}: no image matches a row of {attribute_file.name} in split {request.split!r} "
            f"({len(on_disk)} images on disk, {len(rows)} attribute rows)"
        )

    images, kept, decode_skipped = decode_files(
        [image_dir / name for name in selected], request.image_size, request.decode_channels, CROP,
        request.max_images, progress=progress, allocate=allocate,
    )
    skipped.update(decode_skipped)
    if not kept:
        raise DatasetError(f"{image_dir}: none of the {len(selected)} matching images could be decoded ({dict(+skipped)})")
    row_indices = [row_of[selected[i]] for i in kept]
    return ImageDataset(
        images=images,
        spec=request.text,
        attribute_names=names,
        attributes=torch.from_numpy(values[row_indices]),
        skipped=dict(+skipped),  # unary + drops zero counts
    )
