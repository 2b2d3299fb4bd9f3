"""How far can any linear slider get on a generator? An upper bound, found with the judge itself as the reader.

`python -m bench.linear_slider_bound [--checkpoint checkpoints/synthetic-faces-64]
[--attribute Wearing_Hat] [--weights 5 8 12 20] [--steps 150] [--seed-offsets 3000000 7000000] [--n 200]`

The explorer's `cond:` sliders are refined by `explorer.refine_directions`, which reads the moved
images with the probe (a linear map of D's features) so that the eval net stays an independent
judge. Here the same optimiser, from the same projected start, reads them with the eval net: it
aims at the very verdicts `training.evaluate --what directions` scores. The product never does
this. It measures what a unit direction in z can reach on this G at all: for each weight on the
other attributes (the trade-off between the attribute appearing and everything else staying), the
refined direction is scored by `evaluate_direction`, exactly as the sliders are, on the
evaluation's seeds and on a held-out sample. If no weight gives flip >= 0.7 with max other <= 0.15,
no reader (probe or otherwise) will give such a linear slider either, up to the optimiser's reach.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch
from torch import nn

from explorer.analysis import cached_directions, cached_probe
from explorer.checkpoint import load_checkpoint
from explorer.datasets import load_dataset
from explorer.directions import conditional_directions
from explorer.evaluation.arithmetic_eval import ground_truth
from explorer.evaluation.directions_eval import DIRECTIONS_SEED_OFFSET, TARGETS, evaluate_direction, seeds_without, skin_tone_judge
from explorer.evaluation.eval_net import EvalNet, find_eval_net, load_eval_net
from explorer.refine_directions import RefineSettings, refine_conditional_directions


class JudgeReader(nn.Module):
    """images in [-1, 1] -> (the eval net's attribute logits, its factor estimates in data units): the refinement's reader."""

    def __init__(self, net: EvalNet):
        super().__init__()
        self.net = net.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heads = self.net.heads(self.net(images))
        return heads["attributes"], heads["factors"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.linear_slider_bound", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/synthetic-faces-64")
    parser.add_argument("--attribute", default="Wearing_Hat")
    parser.add_argument("--weights", type=float, nargs="*", default=[5.0, 8.0, 12.0, 20.0],
                        help="other-attribute weights to refine with (the explorer's default is %g)" % RefineSettings().other_weight)
    parser.add_argument("--steps", type=int, default=RefineSettings().steps, help="Adam steps per refinement (default %(default)s, the explorer's)")
    parser.add_argument("--seed-offsets", type=int, nargs="+", default=[DIRECTIONS_SEED_OFFSET, 7_000_000])
    parser.add_argument("--n", type=int, default=200, help="seeds without the attribute per sample (default 200)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    checkpoint = load_checkpoint(args.checkpoint)
    train = load_dataset(checkpoint.dataset["spec"], checkpoint.config.image_size, checkpoint.config.channels, split="train")
    directions, probe = cached_directions(checkpoint, train), cached_probe(checkpoint)
    if directions is None or probe is None:
        parser.error(f"{args.checkpoint} has no cached directions and probe: run python -m explorer.precompute first")
    net_folder = find_eval_net(checkpoint.dataset["spec"], checkpoint.config.image_size, checkpoint.config.channels)
    if net_folder is None:
        parser.error(f"no eval net for {checkpoint.dataset['spec']}")
    net, _ = load_eval_net(net_folder)
    if list(net.config.attribute_names) != list(probe.names) or list(net.config.factor_names) != list(probe.factor_names):
        parser.error("the eval net's heads are not in the probe's order")
    if f"attr:{args.attribute}" not in directions:
        parser.error(f"no attr:{args.attribute} direction in the cache")

    G, judge = checkpoint.generator, (lambda images: ground_truth(net, images))
    skin, skin_std = skin_tone_judge(net, train)
    dependence = probe.dependence.get(args.attribute)
    # The refinement's start, as compute_directions makes it: the projected cond: (the cache holds the refined one).
    start = {d.name: d for d in conditional_directions(directions, dependence=probe.dependence)}[f"cond:{args.attribute}"]
    samples = {offset: seeds_without(G, judge, args.attribute, args.n, offset=offset) for offset in args.seed_offsets}

    rows = []
    candidates = [("shipped cond: (probe reader)", directions[f"cond:{args.attribute}"], None),
                  ("projection only", start, None)]
    for weight in args.weights:
        began = time.perf_counter()
        (refined,) = refine_conditional_directions(G, checkpoint.discriminator, probe, {start.name: start},
                                                   RefineSettings(other_weight=weight, steps=args.steps), reader=JudgeReader(net))
        candidates.append((f"judge reader, other weight {weight:g}, {args.steps} steps", refined, time.perf_counter() - began))
    for label, direction, seconds in candidates:
        row = {"direction": label, "refine_seconds": seconds, "by_seed_offset": {}}
        for offset, sample in samples.items():
            r = evaluate_direction(G, direction, args.attribute, judge, skin, skin_std, dependence, args.n, 3.0, sample)
            row["by_seed_offset"][offset] = {k: r.get(k) for k in ("flip_rate", "max_other_flip", "max_other_attribute", "skin_tone_shift",
                                                                "meets_targets", "other_flips", "other_gained", "other_lost")}
            print(f"{label:45s} seeds {offset:>9,}: flip {r['flip_rate']:.2f}  max other {r['max_other_flip']:.2f} "
                  f"({r['max_other_attribute']})  skin {r.get('skin_tone_shift', float('nan')):+.2f}  {'meets' if r['meets_targets'] else 'misses'}", flush=True)
        rows.append(row)
    out = {"checkpoint": args.checkpoint, "attribute": args.attribute, "steps": args.steps, "targets": TARGETS, "n": args.n, "rows": rows,
           "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "any_meets": any(v["meets_targets"] for row in rows[2:] for v in row["by_seed_offset"].values())}
    print(json.dumps(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
