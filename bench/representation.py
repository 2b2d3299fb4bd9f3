"""The DCGAN paper's representation experiment (Tables 1-2) on a checkpoint's discriminator.

    python -m bench.representation [--checkpoint checkpoints/fashion-mnist-32] [--dataset fashion-mnist]
                                   [--draws 10] [--labels-per-class 100] [--max-test 10000] [--out result.json]

A linear L2-SVM on 100 labels per class (C chosen on a disjoint validation split of the train set)
over the trained D's features, raw pixels, a 1-layer k-means baseline and the same D with random
weights; prints the Markdown table (mean +- 95% CI over draws) and the total wall time.
See `explorer.evaluation.representation` for the protocol.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from explorer.checkpoint import load_checkpoint
from explorer.datasets import load_dataset
from explorer.evaluation.representation import METHODS, format_table, representation_table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32")
    p.add_argument("--dataset", default="fashion-mnist", help="a labelled spec with train/test splits (fashion-mnist, cifar10:PATH, svhn:PATH)")
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--labels-per-class", type=int, default=100)
    p.add_argument("--max-test", type=int, default=10000, help="test images scored (a seeded subset); 0 = all")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = p.parse_args(argv)

    start = time.perf_counter()
    checkpoint = load_checkpoint(args.checkpoint)
    if checkpoint.discriminator is None:
        print(f"{args.checkpoint} has no discriminator weights", file=sys.stderr)
        return 2
    config = checkpoint.config
    # Load at D's size and channel count, so every method sees exactly the images D sees.
    train = load_dataset(args.dataset, image_size=config.image_size, channels=config.channels, split="train")
    test = load_dataset(args.dataset, image_size=config.image_size, channels=config.channels, split="test")

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {message}", flush=True)

    result = representation_table(
        checkpoint.discriminator, train, test, labels_per_class=args.labels_per_class, draws=args.draws,
        seed=args.seed, methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        max_test=args.max_test or None, progress=progress,
    )
    wall = time.perf_counter() - start
    result["protocol"]["checkpoint"] = str(checkpoint.path)
    result["protocol"]["wall_s"] = round(wall, 1)
    print()
    print(format_table(result))
    print(f"\ntotal wall time: {wall:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
