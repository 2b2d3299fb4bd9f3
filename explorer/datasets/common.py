"""What every dataset reader shares: the in-memory dataset, the request it answers, geometry.

Every reader returns an `ImageDataset` whose `images` are uint8 (N, C, S, S) with S = image_size and
C = 1 or 3, so training can keep the data on the device and the explorer can index it directly.
All geometry goes through `center_crop_resize` (torchvision.transforms.v2.functional on uint8
tensors), so every reader crops, resizes and converts colour the same way.

Readers print nothing (a progress bar only when asked): files that cannot be used are counted in
`ImageDataset.skipped` under one of the SKIP_* reasons below, and the caller decides what to tell
the user.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch


class DatasetError(ValueError):
    """A dataset that cannot be read; the message names the path, what was wrong and what to do."""


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
    # The decoded-data cache's .npy file `images` is memory-mapped from (None: plain memory). Training
    # reads batches straight from it when the set is larger than its memory budget.
    images_file: Path | None = None

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

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded images (what preloading them costs)."""
        return self.images.numel()

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class DatasetSpec:
    kind: str  # one of explorer.datasets.KINDS
    path: str | None  # None for synthetic-faces and for the default fashion-mnist folder
    count: int | None = None  # synthetic-faces:N; None = the default count
    categories: tuple[str, ...] | None = None  # lsun:PATH:bedroom,church_outdoor

    def __str__(self) -> str:
        if self.kind == "synthetic-faces":
            return self.kind if self.count is None else f"{self.kind}:{self.count}"
        text = self.kind if self.path is None else f"{self.kind}:{self.path}"
        return f"{text}:{','.join(self.categories)}" if self.categories else text


@dataclass(frozen=True)
class Request:
    """What load_dataset asks a reader for: everything (with the input files) that decides its output."""

    spec: DatasetSpec
    image_size: int
    channels: int | None  # None: the dataset's own
    max_images: int | None
    split: str

    @property
    def text(self) -> str:
        return str(self.spec)

    @property
    def decode_channels(self) -> int:
        """Channels to decode image files to: grey only when grey is asked for."""
        return 1 if self.channels == 1 else 3


# Skip reasons, the keys of ImageDataset.skipped.
SKIP_EMPTY = "empty file"
SKIP_NOT_IMAGE = "not an image"
SKIP_TOO_LARGE = "too large"
SKIP_TRUNCATED = "truncated"
SKIP_DECODE = "decode error"
SKIP_MISSING_IMAGE = "missing image"  # an annotation row whose image file is absent
SKIP_NO_ROW = "no attribute row"  # an image file with no annotation row
SKIP_OUTSIDE_CLASSES = "outside class folders"  # loose files next to the class folders
SKIP_NOT_REGULAR = "not a regular file"  # a FIFO, a device, a dangling link under an image name: never opened

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


def resized_dataset(images_nchw: torch.Tensor, request: Request, **fields) -> ImageDataset:
    """An ImageDataset of whole in-memory images (N, C, H, W), resized and converted as `request` asks."""
    images = convert_channels(resize_batch(images_nchw, request.image_size), request.channels)
    return ImageDataset(images=images, spec=request.text, **fields)


def check_split(kind: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise DatasetError(f"{kind} has no {split!r} split; use one of {', '.join(allowed)}")


def user_cache_dir() -> Path:
    """The project's cache folder: $LATENT_LAB_CACHE, else ~/.cache/latent-lab."""
    return Path(os.environ.get("LATENT_LAB_CACHE") or Path.home() / ".cache" / "latent-lab")


def available_memory_bytes() -> int:
    """Memory the system can give without swapping: MemAvailable on Linux, else free physical pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on this platform: no bound we can trust
        return 1 << 62


def format_bytes(nbytes: float) -> str:
    """3 significant digits in MB or GB, so a crafted size never prints hundreds of digits."""
    return f"{nbytes / 1e6:.3g} MB" if nbytes < 1e9 else f"{nbytes / 1e9:.3g} GB"


def check_fits_memory(nbytes: float, what: str, advice: str) -> None:
    """DatasetError, before any work, when `what` needs more bytes than the system has available."""
    available = available_memory_bytes()
    if nbytes > available:
        raise DatasetError(f"{what} needs {format_bytes(nbytes)}, more than the {format_bytes(available)} of memory available; {advice}")
