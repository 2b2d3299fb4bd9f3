"""What a perfect slider scores: the renderer's own one-attribute edit, judged exactly as the sliders are.

Synthetic faces can be re-rendered with one attribute switched on and everything else identical
(`explorer.datasets.synthetic_faces.render`): a perfectly disentangled edit. Scoring those pairs with
the directions evaluation's own `flip_statistics` gives the floor of each figure under this judge.
A slider on a generator cannot be expected to do better; where the floor is high, the judge, not
the slider, sets it (a hat's brim hides bangs, so the judge loses them on ~10 % of faces).

Only datasets with a renderer have this floor: callers check `has_renderer(spec)` first.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explorer.datasets.synthetic_faces import render, sample_parameters
from explorer.evaluation.arithmetic_eval import ground_truth
from explorer.evaluation.directions_eval import DEFAULT_ATTRIBUTES, flip_statistics
from explorer.evaluation.eval_net import EvalNet, predict

FLOOR_FACES = 400  # rendered pairs per attribute (~2 s per attribute on 2 cores at 64 px)
FLOOR_SEED = 7  # renderer seed of the faces; the training split is seed 0


def has_renderer(spec: str) -> bool:
    """Whether the dataset named by `spec` can re-render a face with one attribute changed."""
    return str(spec).split(":", 1)[0] == "synthetic-faces"


def renderer_edit_floor(
    net: EvalNet, attributes: Sequence[str] = DEFAULT_ATTRIBUTES, n: int = FLOOR_FACES, seed: int = FLOOR_SEED,
    image_size: int | None = None,
) -> dict:
    """{attribute: flip_statistics of the renderer's own edit + skin_tone_shift (SD) + faces, or "skipped"}, at the eval net's size.

    For each attribute: n faces rendered with it off, the same faces with it on; the faces the judge
    reads without it (as the evaluation's seeds are) are compared before and after.
    """
    size = image_size or net.config.image_size
    params = sample_parameters(n, seed=seed)
    skin = net.config.factor_names.index("skin_tone") if "skin_tone" in net.config.factor_names else None
    images = lambda p: torch.from_numpy(render(p, size)).permute(0, 3, 1, 2)  # noqa: E731  (N, S, S, 3) -> (N, 3, S, S) uint8
    results = {}
    for attribute in attributes:
        off = {key: value.copy() for key, value in params.items()}
        off[attribute][:] = 0
        if attribute == "Male":
            off["Mustache"][:] = 0  # the renderer draws a moustache on men only: switch Male alone
        on = {key: value.copy() for key, value in off.items()}
        on[attribute][:] = 1
        images_off, images_on = images(off), images(on)
        before, after = ground_truth(net, images_off), ground_truth(net, images_on)
        without = ~before[attribute]
        if not without.any():
            results[attribute] = {"skipped": f"the judge reads {attribute} on all {n} faces rendered without it", "seed": seed}
            continue
        stats = flip_statistics({k: v[without] for k, v in before.items()}, {k: v[without] for k, v in after.items()}, attribute)
        if skin is not None:
            shift = predict(net, images_on[without]).factors[:, skin] - predict(net, images_off[without]).factors[:, skin]
            stats["skin_tone_shift"] = float(np.mean(shift) / np.std(params["skin_tone"]))
        results[attribute] = {**stats, "faces": int(without.sum()), "seed": seed}
    return results
