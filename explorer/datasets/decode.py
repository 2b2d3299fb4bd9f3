"""Image files -> uint8 tensors: one decoder (PIL) for every reader, on a thread pool, with a progress bar.

Every file goes through `decode_image_file`, so every reader crops, resizes, converts colour and
reports broken files the same way; `decode_files` runs it over a file list in parallel and writes
into one preallocated tensor (in memory, or a file the decoded-data cache maps).
"""
from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.datasets.common import (
    SKIP_DECODE,
    SKIP_EMPTY,
    SKIP_NOT_REGULAR,
    SKIP_NOT_IMAGE,
    SKIP_TOO_LARGE,
    SKIP_TRUNCATED,
    center_crop_resize,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")

# Images with more pixels than this are skipped before decoding (their header gives the size), so a
# stray panorama or a decompression bomb never takes the loader's memory: 50 M RGB pixels is 150 MB.
# PIL's own guard (Image.MAX_IMAGE_PIXELS, ~89 M: warning; twice that: DecompressionBombError at
# open) is left as it is; its error is caught and counted the same way.
MAX_IMAGE_PIXELS = 50_000_000

_CHUNK = 4096  # files per pool.map call: bounds the number of pending futures

# (shape) -> uint8 tensor to decode into; the decoded-data cache passes one backed by its file.
Allocate = Callable[[tuple[int, ...]], torch.Tensor]


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


def num_workers() -> int:
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
    progress: bool = False,
    allocate: Allocate | None = None,
) -> tuple[torch.Tensor, list[int], Counter]:
    """Decode `paths` in order with a thread pool, keeping the first `max_images` that decode.

    Returns (images uint8 (K, channels, S, S), indices into `paths` of the K kept files, skip counts
    for the files examined before the K-th kept one). PIL's decoders and torch's resize release the
    GIL, so threads use all cores without pickling images between processes. Output is written into
    one tensor from `allocate` (default: memory), never a list of N tensors + torch.stack, which
    would double peak memory. With `allocate` given, a short result is a view of its first K rows
    (the allocator's owner trims its file); in memory it is a copy, so the unused rows are freed.
    `progress` shows a tqdm bar on stderr with the skip counts so far.
    """
    limit = len(paths) if max_images is None else min(max_images, len(paths))
    out = (allocate or _allocate_in_memory)((limit, channels, image_size, image_size))
    kept: list[int] = []
    skipped: Counter = Counter()

    def work(path: str | os.PathLike) -> torch.Tensor | str:
        return decode_image_file(path, image_size, channels, crop)

    from tqdm import tqdm

    bar = tqdm(total=limit, desc="decoding images", unit="img", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    with bar, warnings.catch_warnings(), ThreadPoolExecutor(num_workers()) as pool:
        # PIL warns (DecompressionBombWarning) when opening images above its own limit; such files
        # are skipped as too large anyway, and readers print nothing. (The filter is process-wide
        # while the load runs.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        start = 0
        while start < len(paths) and len(kept) < limit:
            # When only a few images are still needed, decode a few more than that, not the rest.
            chunk = paths[start : start + min(max(limit - len(kept), 64), _CHUNK)]
            for offset, result in enumerate(pool.map(work, chunk)):
                if len(kept) == limit:
                    break  # leaving the map generator cancels the rest of the chunk
                if isinstance(result, str):
                    skipped[result] += 1
                    bar.set_postfix(skipped=sum(skipped.values()), refresh=False)
                else:
                    out[len(kept)] = result
                    kept.append(start + offset)
                    bar.update()
            start += len(chunk)
        if skipped:
            bar.set_postfix_str("skipped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items())))
    if len(kept) == limit:
        return out, kept, skipped
    return (out[: len(kept)] if allocate else out[: len(kept)].clone()), kept, skipped


def _allocate_in_memory(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.empty(shape, dtype=torch.uint8)


def scan_image_files(
    root: Path, recursive: bool = True, extensions: tuple[str, ...] = IMAGE_EXTENSIONS, not_regular: Counter | None = None
) -> list[tuple[str, int, int]]:
    """(POSIX path relative to root, size in bytes, mtime in ns) of the image files under root, sorted.

    Hidden files and folders are ignored: macOS copies leave "._name.jpg" AppleDouble files that
    are not images, and .git / .cache folders are not part of a dataset. One scandir walk: the
    sizes and mtimes (the decoded-data cache's key) come with the listing. Entries with an image
    name that are not regular files (FIFOs, devices, dangling links: opening one could block or never
    end) are left out, and counted in `not_regular` when given.
    """
    found = []
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):  # like os.walk: no loops through links
                    if recursive:
                        pending.append((Path(entry.path), prefix + entry.name + "/"))
                elif entry.name.lower().endswith(extensions):
                    if entry.is_file():
                        stat = entry.stat()
                        found.append((prefix + entry.name, stat.st_size, stat.st_mtime_ns))
                    elif not_regular is not None:
                        not_regular[SKIP_NOT_REGULAR] += 1
    return sorted(found)


def list_image_files(root: Path) -> list[str]:
    """Image files under root, as sorted POSIX paths relative to root (see scan_image_files)."""
    return [name for name, _, _ in scan_image_files(root)]


def stat_files(paths: Sequence[Path]) -> list[tuple[str, int, int]]:
    """(path, size in bytes, mtime in ns) of each file: what the decoded-data cache's key holds of it."""
    return [(str(path), (stat := os.stat(path)).st_size, stat.st_mtime_ns) for path in paths]
