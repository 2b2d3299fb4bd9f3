"""Image conversions: the one place where generator output becomes displayable pixels."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor, channels_first: bool = False) -> np.ndarray:
    """Generator output in [-1, 1], (N, C, H, W) or (C, H, W) -> uint8 HWC array(s), grayscale as (H, W).

    channels_first=True keeps the tensor layout instead, (N, C, H, W) or (C, H, W) uint8, for code
    that feeds the images back to a network (FID, the eval net) rather than to a display.
    Values outside [-1, 1] (possible under bf16 or with a foreign checkpoint) are clipped.
    """
    single = images.dim() == 3
    if single:
        images = images.unsqueeze(0)
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    if channels_first:
        array = pixels.numpy()
        return array[0] if single else array
    array = pixels.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
    if array.shape[-1] == 1:
        array = array[..., 0]
    return array[0] if single else array


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W) in [0, 255] -> float32 in [-1, 1], the generator's (Tanh's) range: the inverse of `to_uint8`'s scaling.

    Used for training batches, discriminator features of real images and UI images alike.
    """
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W[, C]) as produced by `to_uint8` -> float (N, C, H, W) in [-1, 1]: its inverse."""
    x = from_uint8(torch.from_numpy(np.ascontiguousarray(images)))
    return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


def enlarge(image: np.ndarray, side: int) -> np.ndarray:
    """Integer nearest-neighbour enlargement of a uint8 HWC/HW image to about `side` pixels: crisp pixels, not browser blur."""
    factor = max(1, side // max(image.shape[0], image.shape[1]))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one uint8 HWC (or HW) mosaic via torchvision's make_grid."""
    # Imported here: `import torchvision` pulls in torch._dynamo (~1.3 s), which the explorer's cold start skips.
    from torchvision.utils import make_grid

    n = images.shape[0]
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    mosaic = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=1.0)
    # make_grid repeats 1-channel input to 3 channels; keep grayscale as one channel.
    if images.shape[1] == 1:
        mosaic = mosaic[:1]
    return to_uint8(mosaic)


def save_png(array: np.ndarray, path: str | os.PathLike) -> None:
    """Atomic PNG write (temp + rename) so a viewer never reads half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    Image.fromarray(array).save(tmp, format="PNG")
    os.replace(tmp, path)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()
