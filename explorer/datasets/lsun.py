"""LSUN scenes: torchvision's reader of the LMDB databases (needs `lmdb`), or a folder of exported JPEGs."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from explorer.datasets import folder
from explorer.datasets.common import SKIP_DECODE, DatasetError, ImageDataset, Request, center_crop_resize, check_split
from explorer.datasets.decode import list_image_files, pil_to_tensor, stat_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)


def _databases(root: Path, categories: Sequence[str] | None, split: str) -> tuple[Path, list[str]] | None:
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


def _class_names(classes: list[str]) -> list[str]:
    """"bedroom_train" -> "bedroom", unless that would merge two databases (split "all")."""
    names = [name if name == "test" else name.rsplit("_", 1)[0] for name in classes]
    return names if len(set(names)) == len(names) else list(classes)


def _layout(request: Request) -> tuple[Path, list[str]] | None:
    """The LMDB databases to read (checked to exist), or None for a folder of exported images."""
    root = Path(request.spec.path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    databases = _databases(root, request.spec.categories, request.split)
    if databases is None:
        if not list_image_files(root):
            raise DatasetError(f"{root}: neither LSUN LMDB folders (e.g. bedroom_train_lmdb/) nor image files")
        return None
    check_split("lsun", request.split, ("train", "val", "test", "all"))
    db_root, classes = databases
    missing = [name for name in classes if not (db_root / f"{name}_lmdb").is_dir()]
    if not classes or missing:
        wanted = ", ".join(f"{name}_lmdb" for name in missing) or f"for split {request.split!r}"
        raise DatasetError(f"{db_root}: no LSUN database folder {wanted}")
    return db_root, classes


def inputs(request: Request) -> tuple[list[tuple[str, int, int]], dict]:
    """(path, size, mtime) of the database files or exported images (the decoded-data cache's key)."""
    layout = _layout(request)
    if layout is None:
        return folder.inputs(request, only_classes=request.spec.categories)
    db_root, classes = layout
    # lock.mdb is rewritten by every reader that opens the database: not part of the content.
    files = [p for name in classes for p in sorted((db_root / f"{name}_lmdb").iterdir()) if p.is_file() and p.name != "lock.mdb"]
    return stat_files(files), {"classes": classes}


def read(request: Request, progress: bool = False, allocate=None) -> ImageDataset:
    layout = _layout(request)
    if layout is None:  # a folder of images exported from the LMDBs
        return folder.read(request, progress, allocate, only_classes=request.spec.categories)
    db_root, classes = layout
    try:
        import lmdb  # noqa: F401 - torchvision imports it lazily; check first for a clear message
    except ImportError as error:
        raise DatasetError(
            f"{db_root}: reading LSUN LMDB databases needs the lmdb package, which is not installed: run "
            "`pip install lmdb`, or export the images as JPEGs and use lsun:FOLDER (or folder:FOLDER)"
        ) from error
    from torchvision.datasets import LSUN
    from tqdm import tqdm

    try:
        # Note: torchvision caches each database's key list in a "_cache_<path letters>" file in the
        # current directory (and reuses it on the next run).
        dataset = LSUN(str(db_root), classes=classes)
    except Exception as error:
        raise DatasetError(f"{db_root}: torchvision could not open the LSUN databases {classes} ({error})") from error

    # Sequential: torchvision opens each LMDB with max_readers=1, so no thread pool here.
    limit = len(dataset) if request.max_images is None else min(request.max_images, len(dataset))
    shape = (limit, request.decode_channels, request.image_size, request.image_size)
    out = allocate(shape) if allocate else torch.empty(shape, dtype=torch.uint8)
    labels: list[int] = []
    skipped: Counter = Counter()
    index = 0
    with tqdm(total=limit, desc="decoding LSUN", unit="img", disable=not progress, mininterval=1.0) as bar:
        while index < len(dataset) and len(labels) < limit:
            try:
                image, label = dataset[index]  # PIL RGB image, index of its database in `classes`
            except Exception:  # noqa: BLE001 - a corrupt record; count it like a broken file
                skipped[SKIP_DECODE] += 1
            else:
                out[len(labels)] = center_crop_resize(pil_to_tensor(image, out.shape[1]), request.image_size)
                labels.append(label)
                bar.update()
            index += 1
    if not labels:
        raise DatasetError(f"{db_root}: the LSUN databases {classes} hold no decodable image")
    if len(labels) < limit:
        out = out[: len(labels)] if allocate else out[: len(labels)].clone()
    return ImageDataset(
        images=out,
        spec=request.text,
        class_names=_class_names(classes),
        labels=torch.tensor(labels, dtype=torch.int64),
        skipped=dict(skipped),
    )
