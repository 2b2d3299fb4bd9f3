"""Vector arithmetic on concepts, Radford et al. (2015) Sec. 6.3 and Fig. 7.

"smiling woman - neutral woman + neutral man = smiling man": each concept is a bin of exemplar
images: generated ones named by their seeds, and real pictures by the z that inversion found for
them (`explorer.invert`, `explorer.real_exemplars`), so the arithmetic also runs on real photos. The z's of a bin are averaged, because single samples were
unstable in the paper while means of three exemplars gave consistent results; the weighted sum
of the means is Y. G(Y) is the centre of a 3x3 grid whose other 8 cells are G(Y + U(-0.25, 0.25)
noise), showing that the neighbourhood of Y renders the same concept. The same weighted sum of
the exemplars' pixels is the paper's baseline: misaligned, noisy overlaps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from explorer.generate import generate
from explorer.latent import validate_seed, z_from_seeds

MAX_BIN_SEEDS = 64  # exemplars per concept; more adds nothing to a mean and slows the page
STABLE_BIN_SEEDS = 3  # the paper's "averaging the Z vector for three exemplars" was stable
GRID_CENTRE = 4  # index of Y itself in the row-major 3x3 grid
DEFAULT_JITTER = 0.25  # the paper's noise scale, in latent units (the prior's std is 1)


@dataclass
class ConceptBin:
    name: str  # shown in messages, e.g. "smiling woman"
    seeds: list[int]  # generated exemplars' latents, z_from_seed(seed)
    weight: float  # +1 adds the concept, -1 subtracts it
    latents: list = field(default_factory=list)  # real exemplars: each the (z_dim,) z that inversion found for a picture


def bin_latents(b: ConceptBin, z_dim: int) -> torch.Tensor:
    """(k, z_dim) float32: the seeds' z, then the real exemplars' inverted z, in that order."""
    seeded = z_from_seeds(b.seeds, z_dim) if b.seeds else torch.empty(0, z_dim)
    real = torch.as_tensor(np.asarray(b.latents, dtype=np.float32)).reshape(-1, z_dim) if len(b.latents) else torch.empty(0, z_dim)
    return torch.cat([seeded, real])


@dataclass
class CombineResult:
    y: torch.Tensor  # (z_dim,) float32
    warnings: list[str] = field(default_factory=list)  # human-readable, for the UI to show next to Y


@dataclass
class ArithmeticResult:
    y: torch.Tensor  # (z_dim,)
    grid_latents: torch.Tensor  # (9, z_dim); row GRID_CENTRE is y
    grid_images: torch.Tensor  # (9, C, H, W) in [-1, 1]
    pixel_result: torch.Tensor  # (C, H, W) in [-1, 1], the pixel-space baseline
    warnings: list[str] = field(default_factory=list)


def concept_mean(zs: torch.Tensor) -> torch.Tensor:
    """Mean of a bin's latents: (k, z_dim) -> (z_dim,)."""
    if zs.dim() != 2 or zs.shape[0] == 0:
        raise ValueError(f"need a non-empty (k, z_dim) tensor of latents, got shape {tuple(zs.shape)}")
    return zs.float().mean(dim=0)


def _check_latents(b: ConceptBin, z_dim: int) -> None:
    for i, z in enumerate(b.latents):
        values = np.asarray(z, dtype=np.float64) if not isinstance(z, str) else np.array([])
        if values.shape != (z_dim,) or not np.isfinite(values).all():
            raise ValueError(f"bin '{b.name}': real exemplar {i + 1} is not a finite z of {z_dim} values (shape {values.shape})")


def _check_bins(bins: list[ConceptBin], z_dim: int | None = None) -> list[str]:
    """ValueError for bins that cannot be combined; warnings for ones that can but are unreliable."""
    if not bins:
        raise ValueError("no concept bins: add at least one bin, e.g. 'smiling woman' with weight +1")
    warnings = []
    for b in bins:
        count = len(b.seeds) + len(b.latents)
        if count == 0:
            raise ValueError(f"bin '{b.name}' is empty: drag at least one image into it")
        if count > MAX_BIN_SEEDS:
            raise ValueError(f"bin '{b.name}' has {count} images; at most {MAX_BIN_SEEDS} are allowed")
        if z_dim is not None:
            _check_latents(b, z_dim)
        try:
            weight = float(b.weight)
        except (TypeError, ValueError):
            raise ValueError(f"bin '{b.name}' has weight {b.weight!r}, which is not a number") from None
        if not math.isfinite(weight):
            raise ValueError(f"bin '{b.name}' has weight {b.weight!r}; weights must be finite numbers")
        for seed in b.seeds:
            try:
                validate_seed(seed)
            except ValueError as exc:
                raise ValueError(f"bin '{b.name}': {exc}") from None
        if count < STABLE_BIN_SEEDS:
            warnings.append(
                f"bin '{b.name}' has {count} image{'s' if count > 1 else ''}: single samples are "
                f"unstable in the paper, which averages {STABLE_BIN_SEEDS} exemplars per concept; the result may "
                "carry that image's pose or background rather than the concept"
            )
    return warnings


def combine(bins: list[ConceptBin], z_dim: int) -> CombineResult:
    """Y = sum_i weight_i * mean(z of bin i), (z_dim,), with warnings for bins of fewer than 3 images."""
    warnings = _check_bins(bins, z_dim)
    y = sum(float(b.weight) * concept_mean(bin_latents(b, z_dim)) for b in bins)
    return CombineResult(y=y, warnings=warnings)


def arithmetic_grid_latents(y: torch.Tensor, seed: int, jitter: float = DEFAULT_JITTER) -> torch.Tensor:
    """(9, z_dim): row GRID_CENTRE is y, the others y + U(-jitter, jitter) noise drawn from `seed`."""
    if y.dim() != 1:
        raise ValueError(f"y must be (z_dim,), got shape {tuple(y.shape)}")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
    generator = torch.Generator().manual_seed(validate_seed(seed))
    noise = (torch.rand(8, y.shape[0], generator=generator) * 2 - 1) * jitter  # U[-jitter, jitter)
    noise = torch.cat([noise[:GRID_CENTRE], torch.zeros(1, y.shape[0]), noise[GRID_CENTRE:]])
    return y.float() + noise


def pixel_arithmetic(images_per_bin: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """The pixel-space baseline: sum_i weight_i * mean image of bin i, each (k_i, C, H, W) -> (C, H, W) in [-1, 1]."""
    if len(images_per_bin) == 0 or len(images_per_bin) != len(weights):
        raise ValueError(f"need one weight per bin and at least one bin, got {len(images_per_bin)} bins and {len(weights)} weights")
    shapes = {tuple(images.shape[1:]) for images in images_per_bin}
    if len(shapes) != 1 or any(images.dim() != 4 or images.shape[0] == 0 for images in images_per_bin):
        raise ValueError(f"every bin needs a non-empty (k, C, H, W) stack of one image size, got {[tuple(i.shape) for i in images_per_bin]}")
    result = sum(float(w) * images.float().mean(dim=0) for images, w in zip(images_per_bin, weights))
    return result.clamp(-1.0, 1.0)


def bin_consistency(features: np.ndarray) -> float:
    """Mean pairwise cosine similarity of a bin's exemplar features (k, F); 1.0 for a single exemplar.

    Close to 1: the exemplars look alike to the feature extractor (normally
    `explorer.features.discriminator_features`, the paper's Sec. 5.1 features), so their mean z
    is a clean concept. Lower: the bin mixes unlike images and its mean is blurrier.
    Post-(leaky-)ReLU features are mostly positive, so unrelated images already score well
    above 0: compare a bin with a bin of random seeds, not with 0. A zero feature vector counts
    as similarity 0.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (k, F) array, got shape {x.shape}")
    k = x.shape[0]
    if k == 1:
        return 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    similarity = unit @ unit.T  # (k, k)
    return float(similarity[np.triu_indices(k, 1)].mean())


def arithmetic(G: nn.Module, bins: list[ConceptBin], z_dim: int, seed: int = 0, jitter: float = DEFAULT_JITTER) -> ArithmeticResult:
    """The whole Fig. 7 computation for the UIs: Y, its 3x3 neighbourhood grid, and the pixel baseline."""
    if z_dim != G.config.z_dim:
        raise ValueError(f"z_dim {z_dim} does not match the generator's {G.config.z_dim}")
    combined = combine(bins, z_dim)
    grid_latents = arithmetic_grid_latents(combined.y, seed, jitter)
    exemplar_z = [bin_latents(b, z_dim) for b in bins]  # a real exemplar is shown as its reconstruction G(z)
    # One generate call for the grid and every exemplar (eval-mode BN: batching does not change images).
    images = generate(G, torch.cat([grid_latents, *exemplar_z]))
    exemplar_images = images[len(grid_latents):].split([len(z) for z in exemplar_z])
    return ArithmeticResult(
        y=combined.y,
        grid_latents=grid_latents,
        grid_images=images[: len(grid_latents)],
        pixel_result=pixel_arithmetic(list(exemplar_images), [b.weight for b in bins]),
        warnings=combined.warnings,
    )
