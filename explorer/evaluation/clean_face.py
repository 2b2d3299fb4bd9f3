"""The single-clean-face check: is an image one face, or a ghostly overlay of several?

The arithmetic judge (the eval net's attribute heads) reads attributes, not whether the picture
is one face: the pixel-space result of "smiling woman - neutral woman + neutral man" is three
faces on top of each other, and a smiling mouth in one layer can be enough for "Smiling". Counting
that as a success is unfair to z-space arithmetic, whose point is that it gives one coherent face.
So results must also pass this check before they count.

The checker is an `EvalNet` (the same small CNN, one sigmoid head "Single_Clean_Face") trained
on real renders (positives) against pixel blends of real renders (negatives) of every kind the
arithmetic baseline produces: a - b + c with bins of 1 to 3 exemplars averaged, and two- or three-
face overlays with random weights. It never sees a generated image, so it favours neither side:
a generated face passes when it looks like a render, a blend fails because it is a blend.
Its held-out accuracy (real vs blends of held-out renders) ships with it in evalnet.json.
"""
from __future__ import annotations

import numpy as np
import torch

from explorer.datasets import ImageDataset
from explorer.images import from_uint8, to_uint8

CLEAN_ATTRIBUTE = "Single_Clean_Face"
CLEAN_NET_SUFFIX = "-clean"  # shipped beside the eval net: checkpoints/eval-nets/synthetic-faces-64-clean


def blends(images_uint8: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n pixel blends of the given real images, uint8 (n, C, H, W), in the arithmetic baseline's styles.

    Half are the baseline itself: mean(bin a) - mean(bin b) + mean(bin c), clipped, with k = 1, 2
    or 3 images per bin; the rest are overlays of 2 or 3 faces with weights drawn from a Dirichlet
    (a mean of exemplars, or a fade between two faces).
    """
    rng = np.random.default_rng(seed)
    count = images_uint8.shape[0]
    if count < 9:
        raise ValueError(f"need at least 9 real images to blend, got {count}")
    out = torch.empty((n, *images_uint8.shape[1:]), dtype=torch.uint8)
    for i in range(n):
        if i % 2 == 0:
            k = int(rng.integers(1, 4))
            picks = rng.choice(count, size=3 * k, replace=False)
            a, b, c = (from_uint8(images_uint8[picks[j * k:(j + 1) * k]]).mean(0) for j in range(3))
            blend = (a - b + c).clamp(-1, 1)
        else:
            faces = int(rng.integers(2, 4))
            picks = rng.choice(count, size=faces, replace=False)
            weights = torch.from_numpy(rng.dirichlet(np.full(faces, 2.0))).float()
            blend = (from_uint8(images_uint8[picks]) * weights[:, None, None, None]).sum(0)
        out[i] = torch.from_numpy(to_uint8(blend[None], channels_first=True)[0])
    return out


def clean_face_dataset(real: ImageDataset, n_blends: int | None = None, seed: int = 0) -> ImageDataset:
    """Real images (label 1) followed by as many blends of them (label 0): the checker's training set."""
    n_blends = len(real) if n_blends is None else n_blends
    fake = blends(real.images, n_blends, seed)
    labels = torch.cat([torch.ones(len(real), 1), torch.zeros(n_blends, 1)]).to(torch.uint8)
    return ImageDataset(images=torch.cat([real.images, fake]), spec=f"{real.spec} + {n_blends} blends",
                        attribute_names=[CLEAN_ATTRIBUTE], attributes=labels)


def is_clean(net, images: torch.Tensor) -> np.ndarray:
    """bool (N,): the checker calls each image ([-1, 1] float or uint8, (N, C, H, W)) a single clean face."""
    from explorer.evaluation.eval_net import predict

    if tuple(net.config.attribute_names) != (CLEAN_ATTRIBUTE,):
        raise ValueError(f"not a clean-face checker: its heads are {net.config.attribute_names}")
    return predict(net, images).attribute_probabilities[:, 0] >= 0.5
