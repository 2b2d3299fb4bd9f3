"""Batched, gradient-free inference: images from latents, realism scores from the discriminator.

Both run the model in eval mode, where BatchNorm uses its running statistics, so an image depends
only on its own z, never on which other latents share the batch; that is what makes chunking
(and seed addressing) safe. Models loaded by `explorer.checkpoint.load_checkpoint` are already in
eval mode and are then never mutated, so one cached model can serve concurrent UI sessions.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from explorer.latent import MAX_SEED, validate_seed, z_from_seeds

MAX_GRID = 256  # images per seed grid: 256 x 64 px RGB is ~12 MB of float32, and a page of thumbnails


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run `module` in eval mode. Already in eval (the normal case): nothing is touched. In train mode
    (a model mid-training): switch for the call and restore, so the caller's mode survives and no
    BatchNorm running statistics are updated by inference."""
    if not module.training:
        yield
        return
    module.eval()
    try:
        yield
    finally:
        module.train()


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """G(z) for z (N, z_dim) -> float32 CPU images (N, C, S, S) in [-1, 1], `batch_size` latents per forward pass."""
    config = G.config
    if z.dim() != 2 or z.shape[1] != config.z_dim:
        raise ValueError(f"z must be (N, {config.z_dim}) for this generator, got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ValueError("z holds NaN or infinite values")
    _check_batch_size(batch_size)
    if z.shape[0] == 0:
        return torch.empty(0, config.channels, config.image_size, config.image_size)
    device = _device(G)
    with eval_mode(G):
        chunks = [G(chunk.to(device, torch.float32)).float().cpu() for chunk in z.split(batch_size)]
    return torch.cat(chunks)


@torch.no_grad()
def realism(D: nn.Module | None, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """sigmoid(D(x)) for images (N, C, S, S) in [-1, 1] -> float64 (N,) in [0, 1].

    This is the discriminator's probability that an image is a training image. A trained D is not
    a calibrated judge (at equilibrium it hovers near 0.5 on everything, and it was trained against
    this G's own samples), so the number is for ranking images of one checkpoint, not an absolute
    quality score.
    """
    if D is None:
        raise ValueError("this checkpoint has no discriminator, so there is no realism score")
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    _check_batch_size(batch_size)
    if images.shape[0] == 0:
        return np.empty(0)
    device = _device(D)
    with eval_mode(D):
        logits = torch.cat([D(chunk.to(device, torch.float32)).float().cpu() for chunk in images.split(batch_size)])
    return torch.sigmoid(logits.double()).numpy()


def seed_grid(G: nn.Module, first_seed: int, count: int) -> tuple[torch.Tensor, list[int]]:
    """Images for seeds first_seed, first_seed + 1, ..., first_seed + count - 1: ((count, C, S, S), seeds)."""
    first_seed = validate_seed(first_seed)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_GRID:
        raise ValueError(f"count must be a whole number from 1 to {MAX_GRID}, got {count!r}")
    if first_seed + count - 1 > MAX_SEED:
        raise ValueError(f"seeds {first_seed}..{first_seed + count - 1} go past the largest seed {MAX_SEED}")
    seeds = list(range(first_seed, first_seed + count))
    return generate(G, z_from_seeds(seeds, G.config.z_dim)), seeds
