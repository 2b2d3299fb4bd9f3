"""Any folder of images, searched recursively; two or more image subfolders become class labels."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from explorer.datasets.common import SKIP_OUTSIDE_CLASSES, DatasetError, ImageDataset, Request
from explorer.datasets.decode import IMAGE_EXTENSIONS, decode_files, scan_image_files

VERSION = 1  # bump when the output for the same files changes (the decoded-data cache's key)


def _root(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    return root


def inputs(request: Request, only_classes: Sequence[str] | None = None) -> tuple[list[tuple[str, int, int]], dict]:
    """(name, size, mtime) of every image file under the folder (the decoded-data cache's key): one walk, no decoding.

    Files outside the chosen classes are listed too: they change the skip counts.
    """
    return scan_image_files(_root(request.spec.path)), {"classes": list(only_classes or [])}


def read(
    request: Request, progress: bool = False, allocate=None, only_classes: Sequence[str] | None = None
) -> ImageDataset:
    """A folder of images, searched recursively. A folder has no splits: every split gives all images.

    With >= 2 top-level subfolders holding images (or `only_classes` given), the subfolder names are
    class labels (sorted, torchvision ImageFolder style) and loose files at the top are skipped;
    otherwise the images are unlabelled.
    """
    root = _root(request.spec.path)
    skipped: Counter = Counter()
    files = [name for name, _, _ in scan_image_files(root, not_regular=skipped)]
    top_folders = sorted({name.split("/", 1)[0] for name in files if "/" in name})
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
        [root / name for name in files], request.image_size, request.decode_channels, None, request.max_images,
        progress=progress, allocate=allocate,
    )
    skipped.update(decode_skipped)
    if not kept:
        raise DatasetError(f"{root}: none of the {len(files)} image files could be decoded ({dict(+skipped)})")
    labels = None
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        labels = torch.tensor([index[files[i].split("/", 1)[0]] for i in kept], dtype=torch.int64)
    return ImageDataset(images=images, spec=request.text, class_names=class_names, labels=labels, skipped=dict(+skipped))
