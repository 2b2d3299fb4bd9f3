"""Fréchet distance between real and generated images, with torchmetrics.

`FrechetInceptionDistance(feature=module)` fits a Gaussian to each set's features and returns
||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)). The feature network is the project's eval
net by default (offline, trained on the dataset's labels, 128-d); `feature="inception"` is
Inception-v3's 2048-d pool features, the number papers report, which needs `torch-fidelity` and
downloads its weights on first use - real, optional, and refused here with a clear message when
either is missing. FIDs from different feature networks are different scales: compare within one.

Generated images are G(z_from_seed(s)) for seeds FID_SEED_OFFSET .. + n - 1, so a score is
reproducible and does not reuse the seeds the explorer shows by default (0, 1, 2, ...).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from explorer.generate import generate
from explorer.images import to_uint8
from explorer.latent import z_from_seeds

FID_SEED_OFFSET = 1_000_000
CHUNK = 500  # images per feature pass: bounds memory for 64 px RGB to ~6 MB of uint8


def make_fid_metric(feature: nn.Module | str):
    """A torchmetrics FID object over `feature` (an eval net) or the string "inception"."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    if isinstance(feature, str):
        if feature != "inception":
            raise ValueError(f"feature must be an eval net module or 'inception', got {feature!r}")
        try:
            return FrechetInceptionDistance(feature=2048, reset_real_features=False)
        except ModuleNotFoundError as exc:
            raise RuntimeError(
                "Inception FID needs the torch-fidelity package and a download of its weights "
                "(pip install torch-fidelity, online); the offline default is the eval net (--fid-net evalnet)"
            ) from exc
    return FrechetInceptionDistance(feature=feature, reset_real_features=False)


def _update(metric, images: torch.Tensor, real: bool, inception: bool) -> None:
    for start in range(0, images.shape[0], CHUNK):
        chunk = images[start : start + CHUNK]
        if inception and chunk.shape[1] == 1:
            chunk = chunk.expand(-1, 3, -1, -1)  # Inception reads RGB; grey images become grey RGB
        metric.update(chunk, real=real)


def generated_uint8(G: nn.Module, n: int, seed_offset: int = FID_SEED_OFFSET) -> torch.Tensor:
    """n generated images as uint8 (n, C, H, W), from seeds seed_offset .. seed_offset + n - 1."""
    out = []
    for start in range(0, n, CHUNK):
        seeds = range(seed_offset + start, seed_offset + min(n, start + CHUNK))
        out.append(torch.as_tensor(to_uint8(generate(G, z_from_seeds(seeds, G.config.z_dim)), channels_first=True)))
    return torch.cat(out) if out else torch.zeros((0, G.config.channels, G.config.image_size, G.config.image_size), dtype=torch.uint8)


class FID:
    """Real statistics computed once, then `score(fake)` for any number of generated sets.

    real_uint8 (N, C, H, W). torchmetrics keeps the real sums across `reset()` because it is built
    with reset_real_features=False, so scoring several snapshots costs one real pass.
    """

    def __init__(self, real_uint8: torch.Tensor, feature: nn.Module | str):
        if real_uint8.dtype != torch.uint8 or real_uint8.ndim != 4:
            raise ValueError(f"real images must be uint8 (N, C, H, W), got {real_uint8.dtype} {tuple(real_uint8.shape)}")
        if real_uint8.shape[0] < 2:
            raise ValueError("FID needs at least 2 real images (a covariance)")
        self.inception = isinstance(feature, str)
        self.metric = make_fid_metric(feature)
        self.n_real = int(real_uint8.shape[0])
        with torch.no_grad():
            _update(self.metric, real_uint8, real=True, inception=self.inception)

    @torch.no_grad()
    def score(self, fake_uint8: torch.Tensor) -> float:
        if fake_uint8.dtype != torch.uint8 or fake_uint8.ndim != 4 or fake_uint8.shape[0] < 2:
            raise ValueError(f"generated images must be uint8 (N >= 2, C, H, W), got {fake_uint8.dtype} {tuple(fake_uint8.shape)}")
        self.metric.reset()  # fake sums only
        _update(self.metric, fake_uint8, real=False, inception=self.inception)
        return float(self.metric.compute())


def real_vs_real(real_a: torch.Tensor, real_b: torch.Tensor, feature: nn.Module | str) -> float:
    """FID between two disjoint real sets of the same size: the floor a perfect generator would reach at that n."""
    return FID(real_a, feature).score(real_b)


def disjoint_real_sets(images: torch.Tensor, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint random draws of n images each (fewer when the dataset is small: half of it each)."""
    n = min(n, images.shape[0] // 2)
    order = np.random.default_rng(seed).permutation(images.shape[0])
    return images[np.sort(order[:n])], images[np.sort(order[n : 2 * n])]
