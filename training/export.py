"""`python -m training.export RUN OUT [--dtype fp16|fp32] [--generator ema|raw] [--no-discriminator]`: a small flat checkpoint to ship.

Copies the run's latest snapshot (EMA generator when present), its sample grids, curves and
metric history (the explorer's Model page reads them), without optimizer state. RUN may also be
one of its snapshots (RUN/snapshots/step-N); history and grids stop at the exported snapshot's
step. meta.json records the `python -m training.run` command that reproduces the run
("training_command"). OUT must be a new or empty folder or an earlier export (which is replaced): any other folder is refused untouched.
Exit codes: 0 done, 2 bad input or target, 4 a write failed (OUT is as it was).
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch

from explorer.checkpoint import CheckpointError, export_checkpoint, read_meta
from explorer.fsio import atomic_write_bytes, is_inside
from explorer.rundir import (
    CONFIG_FILE, CURVES_FILE, HISTORY_FILE, LATEST_FILE, SAMPLES_DIR, SNAPSHOT_DIR, RunDirError, latest_snapshot, read_history,
    sample_grid_files,
)
from training.run import training_command


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
        training = read_meta(run)[1].get("training")  # validated: a mapping of scalars when present
        extra = {"training_command": training_command(training)} if training else {}
        target = export_checkpoint(
            run, out, torch.float16 if args.dtype == "fp16" else torch.float32, not args.no_discriminator,
            prefer_ema=args.generator == "ema", extra_meta=extra,
        )
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}; {out} is as it was", file=sys.stderr)
        return 4
    try:
        run_dir, until_step, steps_per_epoch, with_curves = run_of(run)
        copy_run_extras(run_dir, target, args.sample_grids, until_step, steps_per_epoch, with_curves)
    except OSError as exc:
        print(f"error: the checkpoint was exported to {target}, but copying the run's history and samples failed: {exc}", file=sys.stderr)
        return 4
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"exported {target} ({size / 1e6:.1f} MB)")
    return 0


def _copyable(path: Path, run: Path) -> bool:
    """A regular file inside the run (a link out of it, a FIFO or a device is never read)."""
    return path.is_file() and is_inside(path, run)


def run_of(source: Path) -> tuple[Path, int | None, int | None, bool]:
    """(run folder, last step to ship, steps per epoch, whether the curves figure may ship) of an export source.

    A run's history can run past its last snapshot (a killed run logged steps it never saved), so
    history and sample grids are cut at the exported snapshot's step, whether it is the latest or
    an earlier one (RUN/snapshots/step-N). The curves figure is drawn from the whole history: it
    ships with the latest snapshot only.
    """
    if source.parent.name == SNAPSHOT_DIR and (source.parent.parent / LATEST_FILE).is_file():
        run, snapshot = source.parent.parent, source
    elif (source / LATEST_FILE).is_file():
        run, snapshot = source, None
    else:
        return source, None, None, True
    try:
        latest = latest_snapshot(run)
    except RunDirError:  # a broken pointer: ship no curves
        latest = None
    snapshot = snapshot or latest
    if snapshot is None:
        return run, None, None, False
    meta = read_meta(snapshot)[1]
    is_latest = latest is not None and latest.resolve() == snapshot.resolve()
    return run, meta["step"], meta.get("steps_per_epoch"), is_latest


def copy_run_extras(
    run: Path, target: Path, sample_grids: int, until_step: int | None = None, steps_per_epoch: int | None = None,
    with_curves: bool = True,
) -> None:
    """The run's history, curves, config and up to `sample_grids` sample grids, into the export.

    With `until_step`, only history lines and sample grids up to that step are kept (an epoch_E.png
    grid is drawn at step E * steps_per_epoch).
    """
    extras = (HISTORY_FILE, CURVES_FILE, CONFIG_FILE) if with_curves else (HISTORY_FILE, CONFIG_FILE)
    last_step = math.inf if until_step is None else until_step
    for extra in extras:
        if not _copyable(run / extra, run):
            continue
        if extra == HISTORY_FILE and until_step is not None:  # written once, already cut
            kept = [row for row in read_history(run) if row.get("step", 0) <= until_step]
            atomic_write_bytes(target / extra, "".join(json.dumps(row) + "\n" for row in kept).encode())
        else:
            shutil.copy2(run / extra, target / extra)
    grids = [grid for grid in sample_grid_files(run) if _copyable(grid, run) and _grid_step(grid, steps_per_epoch) <= last_step]
    if grids and sample_grids > 0:
        # Each 64-image grid is ~0.5 MB: keep the shipped checkpoint small but show progress over time.
        keep = sorted({round(i * (len(grids) - 1) / max(1, sample_grids - 1)) for i in range(sample_grids)})
        (target / SAMPLES_DIR).mkdir(exist_ok=True)
        for i in keep:
            shutil.copy2(grids[i], target / SAMPLES_DIR / grids[i].name)


def _grid_step(grid: Path, steps_per_epoch: int | None) -> float:
    """The step a sample grid was drawn at: step_N.png names it; epoch_E.png ends epoch E (inf: unknown)."""
    kind, _, number = grid.stem.partition("_")
    if not number.isdigit():
        return math.inf
    if kind == "step":
        return int(number)
    return int(number) * steps_per_epoch if kind == "epoch" and steps_per_epoch else math.inf


if __name__ == "__main__":
    sys.exit(main())
