"""How smooth are walks through z? Frame-to-frame change along lerp and slerp walks.

The paper (Sec. 6.1) walks through 9 random points and reads smooth transitions as evidence that
the generator has not memorised: no sharp jumps. Here each walk visits KEYPOINTS seeds with
`frames_per_segment` frames between consecutive ones, by `explorer.latent.walk` (lerp or the
guarded slerp). Per walk: the mean and the max frame-to-frame change (mean absolute pixel change,
[0, 1] units - the same measure the Walks page plots) and max / mean, which is 1 for a perfectly
even walk and large where one step jumps. Lerp also cuts through the low-density middle of the
Gaussian (|z| falls from ~sqrt(z_dim) towards 0.7 sqrt(z_dim) halfway between two points); slerp
keeps |z| on the shell, so the mean |z| along the walk is reported too.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from explorer.generate import generate
from explorer.images import to_uint8
from explorer.latent import walk, z_from_seeds

KEYPOINTS = 9  # the paper's 9-point walks
SMOOTH_SEED_OFFSET = 4_000_000


def frame_distances(frames_u8: np.ndarray) -> np.ndarray:
    """Mean absolute pixel change between consecutive frames, in [0, 1] of the pixel range: (F - 1,).

    frames_u8: uint8 frames (F, ...) in any layout (HWC, HW or CHW); only consecutive pairs are compared.
    """
    x = np.asarray(frames_u8).astype(np.float32).reshape(len(frames_u8), -1) / 255.0
    return np.abs(np.diff(x, axis=0)).mean(axis=1)


def walk_smoothness(G: nn.Module, walks: int = 10, frames_per_segment: int = 16, modes=("lerp", "slerp")) -> dict:
    """{mode: {"mean", "max", "max_over_mean", "z_norm_mean", "z_norm_min"}} averaged over `walks` random 9-point walks.

    Walk w visits seeds SMOOTH_SEED_OFFSET + w * KEYPOINTS + (0..8); lerp and slerp walk the same points.
    """
    if walks < 1 or frames_per_segment < 2:
        raise ValueError("need walks >= 1 and frames_per_segment >= 2")
    out = {}
    for mode in modes:
        means, maxima, ratios, norms, norm_minima = [], [], [], [], []
        for w in range(walks):
            start = SMOOTH_SEED_OFFSET + w * KEYPOINTS
            keypoints = z_from_seeds(range(start, start + KEYPOINTS), G.config.z_dim)
            z = walk(keypoints, frames_per_segment, mode=mode)
            distances = frame_distances(to_uint8(generate(G, z), channels_first=True))
            means.append(distances.mean())
            maxima.append(distances.max())
            ratios.append(distances.max() / max(distances.mean(), 1e-12))
            norm = torch.linalg.vector_norm(z, dim=1).numpy() / np.sqrt(G.config.z_dim)  # in units of the shell radius
            norms.append(norm.mean())
            norm_minima.append(norm.min())
        out[mode] = {
            "mean": float(np.mean(means)),
            "max": float(np.max(maxima)),
            "max_over_mean": float(np.mean(ratios)),
            "z_norm_mean": float(np.mean(norms)),
            "z_norm_min": float(np.min(norm_minima)),
        }
    out["_protocol"] = {"walks": walks, "keypoints": KEYPOINTS, "frames_per_segment": frames_per_segment,
                        "distance": "mean absolute pixel change between consecutive frames, [0, 1] units",
                        "z_norm": "|z| / sqrt(z_dim): 1 is the prior's shell"}
    return out
