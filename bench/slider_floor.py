"""The judge's view of a perfect slider: real synthetic faces rendered twice, once with one attribute switched on.

`python -m bench.slider_floor [--n 400] [--seed 7]`: for Smiling, Male, Eyeglasses and Wearing_Hat,
`explorer.evaluation.slider_floor.renderer_edit_floor` renders N faces with the attribute off and
the same faces with it on (the renderer's own disentangled edit) and reports what the eval net
sees change, computed by the directions evaluation's own `flip_statistics` (so "changed" means
either way, as there): the flip rate of the attribute, the largest flip share among the others,
and the skin-tone shift in SD of the factor. `training.evaluate --what directions` adds the same
row (N = 400, seed 7) beside each slider of a synthetic-faces checkpoint; this command varies N
and the seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.evaluation.eval_net import load_eval_net
from explorer.evaluation.slider_floor import FLOOR_FACES, FLOOR_SEED, renderer_edit_floor

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.slider_floor", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=FLOOR_FACES)
    p.add_argument("--seed", type=int, default=FLOOR_SEED)
    args = p.parse_args(argv)
    net, _ = load_eval_net(REPO / "checkpoints" / "eval-nets" / "synthetic-faces-64")
    results = renderer_edit_floor(net, n=args.n, seed=args.seed)
    for attribute, r in results.items():
        print(f"{attribute}: flip {r['flip_rate']:.3f}, max other {r['max_other_flip']:.3f} ({r['max_other_attribute']}), "
              f"skin {r['skin_tone_shift']:+.2f} SD, {r['faces']} faces")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
