"""Memorization (nearest training images) and walk smoothness on hand-made generators with known answers."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from explorer.evaluation.memorization import memorization, nearest, neighbour_figure_rows
from explorer.evaluation.smoothness import frame_distances, walk_smoothness


class _Toy(nn.Module):
    """Base of the hand-made generators below: `generate` finds the device from a parameter."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))


# ----------------------------------------------------------------------------------------------- memorization


class _Copier(nn.Module):
    """A generator that memorised: sample i is training image argmax(z[:N])."""

    def __init__(self, train: torch.Tensor):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.train_images = train.float() / 127.5 - 1
        self.config = SimpleNamespace(z_dim=100, channels=1, image_size=train.shape[-1])

    def forward(self, z):
        return self.train_images[z[:, : len(self.train_images)].argmax(1)]


class _Noise(_Toy):
    config = SimpleNamespace(z_dim=100, channels=1, image_size=8)

    def forward(self, z):
        return torch.tanh(z[:, :64].reshape(-1, 1, 8, 8))


def _tiny_d():
    from explorer.model import DCGANConfig, Discriminator

    return Discriminator(DCGANConfig(image_size=32, channels=1, d_width=4)).eval()


def test_memorization_flags_a_copier_and_not_noise():
    g = torch.Generator().manual_seed(0)
    train = (torch.rand(60, 1, 32, 32, generator=g) * 255).to(torch.uint8)
    held = (torch.rand(60, 1, 32, 32, generator=g) * 255).to(torch.uint8)
    D = _tiny_d()
    copier = memorization(_Copier(train), D, train, held, n=40, feature_pool=60, k=2)
    assert copier.summary["duplicate_rate"] == 1.0 and copier.summary["near_copy_rate"]["generated"] == 1.0
    assert copier.summary["near_copy_rate"]["held_out"] == 0.0
    assert copier.pixel_rms.max() < 1e-3  # float32 rounding of the matmul distance only
    rows = neighbour_figure_rows(copier, train, rows=3)
    assert rows.shape == (3 * 5, 1, 32, 32)
    assert torch.allclose(rows[0], rows[1], atol=1e-6)  # a copied sample next to its source

    class Noise32(_Noise):
        config = SimpleNamespace(z_dim=100, channels=1, image_size=32)

        def forward(self, z):
            return torch.nn.functional.interpolate(super().forward(z), size=32)

    noise = memorization(Noise32(), D, train, held, n=40, feature_pool=60)
    assert noise.summary["near_copy_rate"]["generated"] == 0.0


def test_nearest_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    pool, query = torch.randn(50, 7, generator=g), torch.randn(9, 7, generator=g)
    d, i = nearest(query, pool, k=3)
    brute = torch.cdist(query, pool)
    np.testing.assert_array_equal(i, brute.topk(3, largest=False).indices.numpy())
    np.testing.assert_allclose(d, brute.topk(3, largest=False).values.numpy(), rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------- smoothness


def test_frame_distances_known_values():
    frames = np.stack([np.zeros((2, 2), np.uint8), np.full((2, 2), 255, np.uint8), np.full((2, 2), 255, np.uint8)])
    np.testing.assert_allclose(frame_distances(frames), [1.0, 0.0])


def test_slerp_walks_stay_on_the_shell_and_lerp_dips():
    class Linear(_Toy):
        config = SimpleNamespace(z_dim=100, channels=1, image_size=4)

        def forward(self, z):
            return torch.tanh(z[:, :16].reshape(-1, 1, 4, 4) / 3)

    result = walk_smoothness(Linear(), walks=2, frames_per_segment=8)
    assert result["lerp"]["z_norm_min"] < 0.8 < result["slerp"]["z_norm_min"]
    assert result["slerp"]["z_norm_mean"] > result["lerp"]["z_norm_mean"]
    assert result["lerp"]["mean"] > 0 and result["lerp"]["max_over_mean"] >= 1.0
