"""How much memory a training step needs, estimated before anything is allocated, and whether the machine has it.

`--g-width 100000` asks for ~10^13 parameters: building that model to find out would try to allocate
terabytes. The estimate builds G and D on PyTorch's meta device (shapes only, no memory) and follows
the activation shapes layer by layer, in well under a second for any size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from explorer.model import DCGANConfig, Discriminator, Generator, meta_model

_FLOAT_BYTES = 4  # parameters, gradients, Adam moments and activations are float32


@dataclass(frozen=True)
class MemoryEstimate:
    g_parameters: int
    d_parameters: int
    bytes: int  # one process's training step, lower bound

    def summary(self) -> str:
        return f"G {self.g_parameters:,} params, D {self.d_parameters:,} params, about {human_bytes(self.bytes)} to train"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _activations(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """(elements output by `module`'s layers, output shape) for an input of `shape` (N, C, H, W).

    Walks the layers in order (G and D are chains of convolutions, batchnorms and activations) and
    computes each convolution's output shape from its kernel, stride and padding: running the layers,
    even on the meta device, would import torch._dynamo (a minute on a loaded machine). In-place
    activations add no memory.
    """
    count = 0
    for layer in module.modules():
        if any(True for _ in layer.children()):
            continue
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            (k, _), (s, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
            side = (shape[2] - 1) * s - 2 * p + k if isinstance(layer, nn.ConvTranspose2d) else (shape[2] + 2 * p - k) // s + 1
            shape = (shape[0], layer.out_channels, side, side)
        if not getattr(layer, "inplace", False):
            count += math.prod(shape)
    return count, shape


def estimate(config: DCGANConfig, batch_size: int, ema: bool) -> MemoryEstimate:
    """Parameters of G and D and the bytes of one training step at `batch_size`.

    Per parameter: the weight, its gradient and Adam's two moments (+ the EMA copy of G). Activations:
    G's forward (kept for the G step) and two of D's (one live graph at a time, plus its gradients).
    """
    generator, discriminator = meta_model(Generator, config), meta_model(Discriminator, config)
    g_acts, fake_shape = _activations(generator, (batch_size, config.z_dim, 1, 1))
    d_acts, _ = _activations(discriminator, fake_shape)
    g_params = sum(p.numel() for p in generator.parameters())
    d_params = sum(p.numel() for p in discriminator.parameters())
    elements = 4 * (g_params + d_params) + (g_params if ema else 0) + g_acts + 2 * d_acts
    return MemoryEstimate(g_params, d_params, elements * _FLOAT_BYTES)


def available_bytes(device: torch.device) -> int | None:
    """Free memory for training on `device`: the GPU's free memory, or the host's MemAvailable; None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits(config: DCGANConfig, batch_size: int, ema: bool, device: torch.device, processes_sharing: int = 1) -> MemoryEstimate:
    """The estimate, or ValueError when the step needs more than the device has free (host memory is
    shared by `processes_sharing` processes on CPU)."""
    needed = estimate(config, batch_size, ema)
    free = available_bytes(device)
    total = needed.bytes * (processes_sharing if device.type == "cpu" else 1)
    if free is not None and total > free:
        raise ValueError(
            f"this model would need at least {human_bytes(total)} to train ({needed.g_parameters:.3g} generator and "
            f"{needed.d_parameters:.3g} discriminator parameters, batch {batch_size}), more than the "
            f"{human_bytes(free)} free on {device}: use a smaller --g-width, --d-width, --batch-size or --image-size"
        )
    return needed
