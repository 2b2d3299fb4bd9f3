"""The judge's view of a perfect slider: real synthetic faces rendered twice, once with one attribute switched on.

`python -m bench.slider_floor [--n 400] [--seed 7]`: for Smiling, Male, Eyeglasses and Wearing_Hat,
renders N faces with the attribute off and the same faces with it on (the renderer's own
disentangled edit), and reports what the eval net sees change, computed by the directions
evaluation's own `flip_statistics` (so "changed" means either way, as there): the flip rate of the
attribute, the largest flip share among the others, and the skin-tone shift in SD of the factor.
A slider on a generator is judged by the same eval net, so it cannot be expected to do better than
this; BENCHMARKS.md compares the shipped sliders with it.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from explorer.datasets.synthetic_faces import render, sample_parameters
from explorer.evaluation.arithmetic_eval import ground_truth
from explorer.evaluation.directions_eval import flip_statistics
from explorer.evaluation.eval_net import load_eval_net, predict

REPO = Path(__file__).resolve().parents[1]
ATTRIBUTES = ("Smiling", "Male", "Eyeglasses", "Wearing_Hat")


def _images(params: dict[str, np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(render(params)).permute(0, 3, 1, 2)  # (N, 64, 64, 3) uint8 -> (N, 3, 64, 64)


def slider_floor(n: int, seed: int) -> dict:
    net, _ = load_eval_net(REPO / "checkpoints" / "eval-nets" / "synthetic-faces-64")
    params = sample_parameters(n, seed=seed)
    results = {}
    for attribute in ATTRIBUTES:
        off = {key: value.copy() for key, value in params.items()}
        off[attribute][:] = False
        if attribute == "Male":
            off["Mustache"][:] = False  # the renderer draws a moustache only on men
        on = {key: value.copy() for key, value in off.items()}
        on[attribute][:] = True
        images_off, images_on = _images(off), _images(on)
        before, after = ground_truth(net, images_off), ground_truth(net, images_on)
        without = ~before[attribute]  # as the directions evaluation: faces the judge sees without it
        stats = flip_statistics({k: v[without] for k, v in before.items()}, {k: v[without] for k, v in after.items()}, attribute)
        skin = net.config.factor_names.index("skin_tone")
        shift = predict(net, images_on[without]).factors[:, skin] - predict(net, images_off[without]).factors[:, skin]
        results[attribute] = {**stats, "skin_tone_shift": float(shift.mean() / params["skin_tone"].std()),
                              "faces": int(without.sum())}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.slider_floor", description=__doc__)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    results = slider_floor(args.n, args.seed)
    for attribute, r in results.items():
        print(f"{attribute}: flip {r['flip_rate']:.3f}, max other {r['max_other_flip']:.3f} ({r['max_other_attribute']}), "
              f"skin {r['skin_tone_shift']:+.2f} SD, {r['faces']} faces")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
