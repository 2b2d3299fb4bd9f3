"""`python -m training.export RUN OUT [--dtype fp16|fp32] [--generator ema|raw] [--no-discriminator]`: a small flat checkpoint to ship.

Copies the run's latest snapshot (EMA generator when present), its sample grids, curves and
metric history (the explorer's Model page reads them), without optimizer state. OUT must be a new
or empty folder or an earlier export (which is replaced): any other folder is refused untouched.
Exit codes: 0 done, 2 bad input or target, 4 a write failed (OUT is as it was).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from explorer.checkpoint import CheckpointError, export_checkpoint
from explorer.fsio import is_inside
from explorer.rundir import CONFIG_FILE, CURVES_FILE, HISTORY_FILE, SAMPLES_DIR, sample_grid_files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__)
    p.add_argument("run", help="run directory (or snapshot) to export")
    p.add_argument("out", help="target folder: new, empty, or an earlier export (replaced)")
    p.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument(
        "--generator", choices=("ema", "raw"), default="ema",
        help="which G to ship: the EMA one when the run kept it (default), or the raw one (a short run's EMA may still lag)",
    )
    p.add_argument("--sample-grids", type=int, default=4, help="copy at most this many sample grids, evenly spaced, the last included (default 4)")
    p.add_argument("--no-discriminator", action="store_true", help="drop D (the explorer then has no realism score or feature map)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the problem (or --help)
        return int(exc.code or 0)
    run, out = Path(args.run), Path(args.out)
    try:
        target = export_checkpoint(run, out, torch.float16 if args.dtype == "fp16" else torch.float32, not args.no_discriminator, prefer_ema=args.generator == "ema")
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}; {out} is as it was", file=sys.stderr)
        return 4
    try:
        copy_run_extras(run, target, args.sample_grids)
    except OSError as exc:
        print(f"error: the checkpoint was exported to {target}, but copying the run's history and samples failed: {exc}", file=sys.stderr)
        return 4
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"exported {target} ({size / 1e6:.1f} MB)")
    return 0


def _copyable(path: Path, run: Path) -> bool:
    """A regular file inside the run (a link out of it, a FIFO or a device is never read)."""
    return path.is_file() and is_inside(path, run)


def copy_run_extras(run: Path, target: Path, sample_grids: int) -> None:
    """The run's history, curves, config and up to `sample_grids` sample grids, into the export."""
    for extra in (HISTORY_FILE, CURVES_FILE, CONFIG_FILE):
        if _copyable(run / extra, run):
            shutil.copy2(run / extra, target / extra)
    grids = [grid for grid in sample_grid_files(run) if _copyable(grid, run)]
    if grids and sample_grids > 0:
        # Each 64-image grid is ~0.5 MB: keep the shipped checkpoint small but show progress over time.
        keep = sorted({round(i * (len(grids) - 1) / max(1, sample_grids - 1)) for i in range(sample_grids)})
        (target / SAMPLES_DIR).mkdir(exist_ok=True)
        for i in keep:
            shutil.copy2(grids[i], target / SAMPLES_DIR / grids[i].name)


if __name__ == "__main__":
    sys.exit(main())
