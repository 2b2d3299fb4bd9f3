"""`python -m training.export RUN OUT [--dtype fp16|fp32] [--generator ema|raw] [--no-discriminator]`: a small flat checkpoint to ship.

Copies the run's latest snapshot (EMA generator when present), its sample grids, curves and
metric history (the explorer's Model page reads them), without optimizer state.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from explorer.checkpoint import CheckpointError, export_checkpoint
from explorer.rundir import HISTORY_FILE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__)
    p.add_argument("run", help="run directory (or snapshot) to export")
    p.add_argument("out", help="target directory (replaced)")
    p.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument(
        "--generator", choices=("ema", "raw"), default="ema",
        help="which G to ship: the EMA one when the run kept it (default), or the raw one (a short run's EMA may still lag)",
    )
    p.add_argument("--sample-grids", type=int, default=4, help="copy at most this many sample grids, evenly spaced, the last included (default 4)")
    p.add_argument("--no-discriminator", action="store_true", help="drop D (the explorer then has no realism score or feature map)")
    args = p.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    try:
        target = export_checkpoint(run, out, torch.float16 if args.dtype == "fp16" else torch.float32, not args.no_discriminator, prefer_ema=args.generator == "ema")
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for extra in (HISTORY_FILE, "curves.png", "config.json"):
        if (run / extra).is_file():
            shutil.copy2(run / extra, target / extra)
    grids = sorted((run / "samples").glob("*.png")) if (run / "samples").is_dir() else []
    if grids and args.sample_grids > 0:
        # Each 64-image grid is ~0.5 MB: keep the shipped checkpoint small but show progress over time.
        keep = sorted({round(i * (len(grids) - 1) / max(1, args.sample_grids - 1)) for i in range(args.sample_grids)})
        (target / "samples").mkdir(exist_ok=True)
        for i in keep:
            shutil.copy2(grids[i], target / "samples" / grids[i].name)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"exported {target} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
