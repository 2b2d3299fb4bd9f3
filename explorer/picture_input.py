"""A user's picture as model input: any size and mode -> the checkpoint's channels and size, uint8.

Inputs are centre-cropped to a square and resized with the dataset readers' rule
(`explorer.datasets.common.center_crop_resize`) and converted to the model's channel count;
non-images, truncated files and images over MAX_INPUT_PIXELS (decompression bombs) are refused
with a message (`InputImageError`).
"""
from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.checkpoint import Checkpoint
from explorer.datasets.common import center_crop_resize
from explorer.datasets.decode import MAX_IMAGE_PIXELS, pil_to_tensor
from explorer.fsio import UnsafeFileError, read_regular_bytes

# An input with more pixels than this is refused from its header, before decoding: a decompression
# bomb (a few KB of PNG that inflate to gigabytes) or a huge panorama. The dataset readers' limit
# (50 M pixels, 150 MB as RGB), stricter than PIL's own default (~89 M, a warning only).
MAX_INPUT_PIXELS = MAX_IMAGE_PIXELS
MAX_INPUT_BYTES = 100 * 1024 * 1024  # a byte string larger than this is refused before PIL sees it


class InputImageError(ValueError):
    """An input that cannot be inverted; the message names it and says why."""


# ----------------------------------------------------------------------------------------------- input images


def load_image_for(checkpoint: Checkpoint, source: bytes | str | os.PathLike, name: str | None = None) -> np.ndarray:
    """An image file (path) or its bytes (an upload) -> uint8 (C, S, S) at the checkpoint's size and channels.

    Any size and mode: EXIF rotation applied, transparency composited on white, centre-cropped to a
    square and resized as the dataset readers do, grey <-> RGB as the model needs. Raises
    InputImageError for an empty, unreadable, non-image, truncated or too large input; `name`
    (default: the path) is what the message calls it.
    """
    config = checkpoint.config
    label = name or (f"{len(source)}-byte upload" if isinstance(source, (bytes, bytearray)) else str(source))
    if not isinstance(source, (bytes, bytearray)):
        path = Path(source)
        if not path.exists():
            raise InputImageError(f"{label}: no such file")
        try:  # regular files only (a FIFO or /dev/zero would hang the read), at most MAX_INPUT_BYTES
            source = read_regular_bytes(path, MAX_INPUT_BYTES)
        except UnsafeFileError as exc:
            raise InputImageError(f"{label}: not a file ({exc})") from exc
        except OSError as exc:
            raise InputImageError(f"{label}: cannot be read ({exc.strerror or exc})") from exc
    if len(source) > MAX_INPUT_BYTES:
        raise InputImageError(f"{label}: {len(source):,} bytes is more than the {MAX_INPUT_BYTES:,} accepted")
    opened, size = io.BytesIO(source), len(source)
    if size == 0:
        raise InputImageError(f"{label}: the file is empty")
    try:
        with warnings.catch_warnings():
            # PIL warns at open above its own limit; such inputs are refused below anyway.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(opened) as image:  # lazy: only the header has been read
                width, height = image.size
                if width * height > MAX_INPUT_PIXELS:
                    raise InputImageError(
                        f"{label}: {width}x{height} is {width * height:,} pixels, more than the {MAX_INPUT_PIXELS:,} accepted "
                        "(a decompression bomb or a huge image); refused before decoding"
                    )
                if min(width, height) > 2 * config.image_size:
                    # JPEG decodes at 1/2..1/8 scale almost free; the smallest that keeps >= image_size across
                    scale = config.image_size / min(width, height)
                    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
                image.load()  # the real decode: raises on truncated or corrupt data
                ImageOps.exif_transpose(image, in_place=True)
                tensor = pil_to_tensor(image, config.channels)
    except InputImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputImageError(f"{label}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputImageError(f"{label}: not an image (no image format recognises it)") from exc
    except Exception as exc:  # noqa: BLE001 - PIL's plugins raise OSError, SyntaxError, ValueError, struct.error...
        what = "truncated" if "truncated" in str(exc).lower() else "cannot be decoded"
        raise InputImageError(f"{label}: the image is {what} ({type(exc).__name__}: {exc})") from exc
    return center_crop_resize(tensor, config.image_size).numpy()


def display_layout(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) or (C, H, W) -> (N, H, W, C) / (H, W, C), grey as (N, H, W) / (H, W): for st.image and PNGs."""
    images = np.moveaxis(np.asarray(images), -3, -1)
    return images[..., 0] if images.shape[-1] == 1 else images
