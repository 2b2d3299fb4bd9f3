"""Does the generator copy its training images? Nearest neighbours in pixel and D-feature space.

For n generated samples (seeds MEMO_SEED_OFFSET ..) the nearest training images are found by
brute force in two spaces: raw pixels (RMS distance in [0, 1] pixel units) and the
discriminator's features (the paper's max-pooled activations, `explorer.features`, PCA to 50-d
fitted on the training pool; Euclidean there). A copy is only meaningful against a reference, so
the same search runs for held-out real images (the test split): a new real image is as close to
the training set as genuine novelty gets.

Reported: median nearest distances for generated and held-out sets; the *duplicate rate*, the share
of generated samples closer to a training image than 99 % of held-out real images are (calibrated
threshold = the held-out 1st percentile; a generator that copies pushes this far above the
~1 % a held-out-like sample would show); and the near-copy rate at a fixed RMS of
NEAR_COPY_RMS (2 % of the pixel range), for generated and held-out images alike (Fashion-MNIST's
own test set has near-duplicates of training images, so that rate is not zero for real data).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn

from explorer.features import discriminator_features
from explorer.images import from_uint8
from explorer.generate import generate
from explorer.latent import z_from_seeds

MEMO_SEED_OFFSET = 3_000_000
NEAR_COPY_RMS = 0.02  # RMS pixel distance in [0, 1] units (~5 grey levels): visually the same image
DUPLICATE_PERCENTILE = 1.0  # held-out percentile that calibrates the duplicate threshold
FEATURE_COMPONENTS = 50
QUERY_CHUNK = 256


def _pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [-1, 1] images (N, C, H, W) -> float32 (N, C*H*W) in [0, 1]."""
    x = from_uint8(images) if images.dtype == torch.uint8 else images.float()
    return ((x + 1.0) / 2.0).flatten(1)


def nearest(query: torch.Tensor, pool: torch.Tensor, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean k nearest rows of pool (P, F) for each query row (Q, F): (distances (Q, k), indices (Q, k))."""
    k = min(k, pool.shape[0])
    pool_sq = (pool * pool).sum(1)
    distances, indices = [], []
    for start in range(0, query.shape[0], QUERY_CHUNK):
        q = query[start : start + QUERY_CHUNK]
        # ||q - p||^2 = |q|^2 - 2 q.p + |p|^2, as one matmul per chunk: (chunk, P)
        d2 = (q * q).sum(1, keepdim=True) - 2.0 * q @ pool.T + pool_sq
        d, i = torch.topk(d2, k, dim=1, largest=False)
        distances.append(d.clamp_min(0).sqrt())
        indices.append(i)
    return torch.cat(distances).numpy(), torch.cat(indices).numpy()


@dataclass
class MemorizationResult:
    summary: dict  # JSON-ready numbers (see the module docstring)
    generated: torch.Tensor  # (n, C, H, W) in [-1, 1]
    pixel_neighbours: np.ndarray  # (n, k) training indices, nearest first
    feature_neighbours: np.ndarray  # (n, k)
    pixel_rms: np.ndarray  # (n,) RMS distance in [0, 1] units to the nearest training image


def memorization(
    G: nn.Module,
    D: nn.Module,
    train_images: torch.Tensor,
    held_out_images: torch.Tensor,
    n: int = 1000,
    feature_pool: int = 10000,
    k: int = 3,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> MemorizationResult:
    """Nearest training images of n samples and of held-out real images, in pixels (whole train set) and D features.

    train_images / held_out_images: uint8 (N, C, H, W). The D-feature search uses a random
    `feature_pool` of the training images (D features of all of CelebA would take long on a CPU).
    """
    say = progress or (lambda message: None)
    if train_images.dtype != torch.uint8 or held_out_images.dtype != torch.uint8:
        raise ValueError("training and held-out images must be uint8 (N, C, H, W)")
    n_held = min(n, held_out_images.shape[0])
    held = held_out_images[np.sort(np.random.default_rng(seed).permutation(held_out_images.shape[0])[:n_held])]
    say(f"generating {n} samples")
    generated = generate(G, z_from_seeds(range(MEMO_SEED_OFFSET, MEMO_SEED_OFFSET + n), G.config.z_dim))

    say(f"pixel nearest neighbours among {train_images.shape[0]} training images")
    pool_pixels = _pixels(train_images)
    scale = pool_pixels.shape[1] ** 0.5  # Euclidean -> RMS per pixel value
    gen_d, gen_i = nearest(_pixels(generated), pool_pixels, k)
    held_d, _ = nearest(_pixels(held), pool_pixels, 1)
    gen_rms, held_rms = gen_d[:, 0] / scale, held_d[:, 0] / scale

    say(f"D-feature nearest neighbours among {min(feature_pool, train_images.shape[0])} training images")
    pool_index = np.sort(np.random.default_rng(seed + 1).permutation(train_images.shape[0])[:feature_pool])
    pool_features = discriminator_features(D, train_images[pool_index])
    pca = PCA(min(FEATURE_COMPONENTS, *pool_features.shape), random_state=seed).fit(pool_features)
    project = lambda f: torch.from_numpy(pca.transform(f).astype(np.float32))  # noqa: E731
    pool_projected = project(pool_features)
    gen_fd, gen_fi = nearest(project(discriminator_features(D, generated)), pool_projected, k)
    held_fd, _ = nearest(project(discriminator_features(D, held)), pool_projected, 1)

    threshold = float(np.percentile(held_rms, DUPLICATE_PERCENTILE))
    feature_threshold = float(np.percentile(held_fd[:, 0], DUPLICATE_PERCENTILE))
    summary = {
        "generated": n,
        "held_out": n_held,
        "train_pool_pixels": int(train_images.shape[0]),
        "train_pool_features": int(len(pool_index)),
        "pixel_rms_median": {"generated": float(np.median(gen_rms)), "held_out": float(np.median(held_rms))},
        "feature_distance_median": {"generated": float(np.median(gen_fd[:, 0])), "held_out": float(np.median(held_fd[:, 0]))},
        "duplicate_threshold_rms": threshold,
        "duplicate_rate": float((gen_rms < threshold).mean()),
        "feature_duplicate_rate": float((gen_fd[:, 0] < feature_threshold).mean()),
        "near_copy_rms": NEAR_COPY_RMS,
        "near_copy_rate": {"generated": float((gen_rms < NEAR_COPY_RMS).mean()), "held_out": float((held_rms < NEAR_COPY_RMS).mean())},
        "expected_duplicate_rate_if_like_held_out": DUPLICATE_PERCENTILE / 100,
    }
    return MemorizationResult(summary, generated, gen_i, pool_index[gen_fi], gen_rms)


def neighbour_figure_rows(result: MemorizationResult, train_images: torch.Tensor, rows: int = 8) -> torch.Tensor:
    """Images for a figure, (rows * (1 + 2k), C, H, W) in [-1, 1]: each row a sample, its k pixel and k D-feature neighbours.

    The samples shown are the `rows` closest to the training set in pixels: the ones to check.
    """
    out = []
    for i in np.argsort(result.pixel_rms, kind="stable")[:rows]:
        out.append(result.generated[i : i + 1])
        out.append(from_uint8(train_images[result.pixel_neighbours[i]]))
        out.append(from_uint8(train_images[result.feature_neighbours[i]]))
    return torch.cat(out)
