"""The DCGAN generator/discriminator pair: the one model definition used by training and the explorer.

Radford, Metz & Chintala (2015), "architecture guidelines for stable Deep Convolutional GANs":
  * strided convolutions instead of pooling (D) and fractional-strided convolutions (G);
  * batchnorm in both nets, except on the generator output and the discriminator input layer;
  * no fully connected hidden layers;
  * ReLU in G (Tanh on the output), LeakyReLU(0.2) in D;
  * weights drawn from N(0, 0.02).

Image sizes 32, 64 and 128 come from adding/removing stride-2 blocks: a 4x4 seed is doubled
log2(image_size / 4) times, so the 64 px net is exactly the paper's (and pytorch/examples') one.
The discriminator returns logits (no Sigmoid) so the losses can use the numerically safe
`binary_cross_entropy_with_logits`, which also behaves under bf16/fp16 autocast.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

SUPPORTED_IMAGE_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class DCGANConfig:
    image_size: int = 64  # pixels per side of the square images (32, 64 or 128)
    channels: int = 3  # 3 for RGB, 1 for grayscale (Fashion-MNIST)
    z_dim: int = 100  # the paper's z in R^100, drawn from N(0, I)
    g_width: int = 64  # generator channels at the last hidden block ("ngf")
    d_width: int = 64  # discriminator channels at the first block ("ndf")

    def __post_init__(self) -> None:
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {SUPPORTED_IMAGE_SIZES}, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("z_dim", "g_width", "d_width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def num_upsamplings(self) -> int:
        """Stride-2 layers between the 4x4 seed and the output (4 at 64 px)."""
        return int(math.log2(self.image_size // 4))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DCGANConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**{k: int(v) for k, v in data.items()})


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), BN shift 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """z (N, z_dim) -> image (N, channels, S, S) in [-1, 1].

    `blocks[0]` maps z (as a 1x1 map) to a 4x4 map of g_width * 2**(n-1) channels; each later
    block doubles the resolution and halves the channels; the last block outputs the image.
    Early-layer activations (used by the explorer for GANSpace directions) are `blocks[i]`'s output.
    """

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        n = config.num_upsamplings
        widths = [config.g_width * 2 ** (n - 1 - i) for i in range(n)]  # 64 px: 512, 256, 128, 64
        blocks = [
            nn.Sequential(
                nn.ConvTranspose2d(config.z_dim, widths[0], 4, 1, 0, bias=False),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(True),
            )
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks.append(
                nn.Sequential(
                    nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(True),
                )
            )
        # No batchnorm on the output layer (the paper: it caused sample oscillation and instability).
        blocks.append(nn.Sequential(nn.ConvTranspose2d(widths[-1], config.channels, 4, 2, 1, bias=False), nn.Tanh()))
        self.blocks = nn.ModuleList(blocks)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.reshape(z.shape[0], self.config.z_dim, 1, 1)
        for block in self.blocks:
            x = block(x)
        return x


class Discriminator(nn.Module):
    """image (N, channels, S, S) in [-1, 1] -> realness logit (N,).

    `blocks` halve the resolution down to 4x4 (64 px: 64, 128, 256, 512 channels); `head` is the
    final 4x4 conv to a single logit. `features()` returns every block's activation, the input of
    the paper's feature extractor (each layer max-pooled to 4x4 and concatenated).
    """

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        n = config.num_upsamplings
        widths = [config.d_width * 2**i for i in range(n)]
        # No batchnorm on the input layer (the paper's guideline).
        blocks = [nn.Sequential(nn.Conv2d(config.channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True))]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.LeakyReLU(0.2, True),
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)
        self.apply(init_weights)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each block: [(N, d_width, S/2, S/2), ..., (N, d_width*2**(n-1), 4, 4)]."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x).flatten()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class _SkipInit(TorchFunctionMode):
    """Makes nn.init's in-place fills no-ops: a model built on the meta device needs shapes, not values."""

    _FILLS = frozenset({"normal_", "uniform_", "zeros_", "zero_", "ones_", "fill_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self._FILLS:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def meta_model(cls: type[nn.Module], config: DCGANConfig) -> nn.Module:
    """`cls(config)` on PyTorch's meta device: every parameter's shape, no memory, whatever the size.

    The random init is skipped: on meta tensors it runs through torch._refs, whose first use imports
    torch._dynamo (~2 s on an idle 2-core machine, a minute on a loaded one).
    """
    with torch.device("meta"), _SkipInit():
        return cls(config)
