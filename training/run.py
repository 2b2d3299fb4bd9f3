"""`python -m training.run`: train a DCGAN and write self-describing checkpoints.

    python -m training.run --dataset synthetic-faces --out checkpoints/faces --epochs 5
    python -m training.run --out checkpoints/faces --resume            # continue where it stopped
    torchrun --nproc_per_node=2 -m training.run --dataset fashion-mnist --image-size 32 --out checkpoints/fm

Options (and, with --resume, the run's saved config.json, which flags given override) are validated
before any work, including whether the model fits in memory; --dry-run prints the resolved config and
plan and writes nothing. --out must be a new or empty folder, or with --resume a run this command made:
a folder holding anything else is never written to. Exit codes: 0 done, 2 bad options or inputs,
3 training diverged (last good checkpoint kept), 4 a write failed, e.g. the disk is full (the run
stops; the last checkpoint is kept and named), 130 interrupted (last checkpoint kept).
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from explorer import rundir
from explorer.checkpoint import CheckpointError, read_meta
from explorer.datasets import DatasetError, ImageDataset, check_size, load_dataset, parse_dataset_spec
from explorer.values import parse_whole
from training.config import AMP_MODES, DEVICES, LOSSES, TrainConfig, steps_per_epoch
from training.distributed import check_amp, close_distributed, distributed_from_env, resolve_device
from training.batches import data_source
from training.memory import check_fits
from training.precision import resolve_amp


def _whole(text: str) -> int:
    try:
        return parse_whole(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        description="Train a DCGAN (Radford et al. 2015) and write checkpoints the explorer can open.",
        argument_default=argparse.SUPPRESS,  # only flags the user gave appear; the rest come from TrainConfig
    )
    d = TrainConfig()
    p.add_argument("--dataset", help=f"synthetic-faces[:N] | fashion-mnist[:PATH] | celeba:PATH | folder:PATH | cifar10:PATH | svhn:PATH | lsun:PATH (default {d.dataset})")
    p.add_argument("--out", help=f"run folder: new or empty, or an earlier run with --resume (default {d.out})")
    p.add_argument("--image-size", type=_whole, help=f"32, 64 or 128 (default {d.image_size})")
    p.add_argument("--channels", type=_whole, help="1 or 3 (default: the dataset's)")
    p.add_argument("--z-dim", type=_whole, help=f"latent size (default {d.z_dim})")
    p.add_argument("--g-width", type=_whole, help=f"generator base width (default {d.g_width})")
    p.add_argument("--d-width", type=_whole, help=f"discriminator base width (default {d.d_width})")
    p.add_argument("--batch-size", type=_whole, help=f"per process (default {d.batch_size})")
    p.add_argument("--epochs", type=_whole, help=f"default {d.epochs}")
    p.add_argument("--max-steps", type=_whole, help="optimizer steps; overrides --epochs")
    p.add_argument("--max-images", type=_whole, help="use at most this many training images")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--beta1", type=float, help=f"Adam beta1 (default {d.beta1})")
    p.add_argument("--loss", choices=LOSSES, help=f"default {d.loss} (non-saturating)")
    p.add_argument("--label-smoothing", type=float, help="one-sided: real target 1 - s (default 0)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, help="keep an EMA of G for samples/export")
    p.add_argument("--ema-decay", type=float, help=f"default {d.ema_decay}")
    p.add_argument("--device", choices=DEVICES, help="default auto (CUDA when present)")
    p.add_argument("--amp", choices=AMP_MODES, help="autocast precision: off (FP32, the default), bf16, fp16 (CUDA), or auto "
                   "(bf16 where the hardware has it natively, else FP32); bf16 where it is only emulated is refused")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile G and D")
    p.add_argument("--data-cache", metavar="DIR", help="decoded-data cache folder (default: $LATENT_LAB_DATA_CACHE or ~/.cache/latent-lab/decoded)")
    p.add_argument("--no-data-cache", dest="data_cache", action="store_const", const="off", help="decode the dataset on every start")
    p.add_argument("--max-ram-gb", type=float, help="preload the decoded set up to this size; a larger one is read batch by "
                   "batch from the data cache (default: half the memory available)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="channels_last layout (default on)")
    p.add_argument("--seed", type=_whole, help=f"default {d.seed}")
    p.add_argument("--log-every", type=_whole, help=f"steps between host syncs/logs (default {d.log_every})")
    p.add_argument("--checkpoint-every", type=_whole, help=f"steps between snapshots (default {d.checkpoint_every})")
    p.add_argument("--keep-snapshots", type=_whole, help=f"default {d.keep_snapshots}")
    p.add_argument("--resume", action="store_true", default=False, help="continue the run in --out from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", default=False, help="validate, print the plan, write nothing")
    p.add_argument("--no-progress", action="store_true", default=False, help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", default=False, help="no TensorBoard logs")
    return p


def training_command(training: dict) -> str:
    """The `python -m training.run` command that reproduces a recorded training config (meta.json's "training").

    Options are spelled in TrainConfig's field order, only where the value differs from today's
    default; every field's flag is its name with dashes (`g_width` -> `--g-width`), booleans as
    `--x`/`--no-x`. Keys TrainConfig does not know (another version wrote them) are left out.
    """
    words = ["python -m training.run"]
    for key, default in dataclasses.asdict(TrainConfig()).items():
        value = training.get(key, default)
        if value == default or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(default, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        else:
            words.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(words)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from given flags, on top of the run's saved config.json when resuming (not yet validated)."""
    given = {k: v for k, v in vars(args).items() if k not in ("resume", "dry_run", "no_progress", "no_tensorboard")}
    base = {}
    if args.resume:
        given["out"] = given.get("out", TrainConfig.out)  # the folder resumed, whatever its config.json says
        base = rundir.read_run_config(given["out"])
    if "max_steps" in given and "epochs" not in given:
        given["epochs"] = None  # --max-steps alone means "this many steps", not "min(steps, 5 epochs)"
    return TrainConfig.from_dict({**base, **given})


def check_out_dir(run_dir: Path, resume: bool) -> bool:
    """Refuse an --out this run may not write to (RunDirError/CheckpointError); True for a run made before
    run folders had a marker (it gets one when resumed)."""
    state = rundir.folder_state(run_dir)
    if state == "file":
        raise rundir.RunDirError(f"--out {run_dir} is a file, not a folder: choose a new or empty folder")
    has_checkpoint = state in ("run", "foreign") and (run_dir / rundir.LATEST_FILE).exists()
    if state == "foreign":
        if not has_checkpoint:
            raise rundir.RunDirError(
                f"--out {run_dir} is not empty and is not a latent-lab run (it holds {rundir.describe_contents(run_dir)}): "
                "choose a new or empty folder; nothing was written"
            )
        try:
            read_meta(run_dir)  # an unmarked folder counts as a run only if latest.json leads to a latent-lab snapshot
        except CheckpointError as exc:
            raise rundir.RunDirError(f"--out {run_dir} has no {rundir.MARKER_FILE} and no valid checkpoint ({exc}); nothing was written") from None
    if resume and not has_checkpoint:
        raise CheckpointError(f"--resume: {run_dir} holds no checkpoint (no {rundir.LATEST_FILE})")
    if has_checkpoint and not resume:
        raise CheckpointError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    return state == "foreign"


def _names(names: list[str], shown: int = 10) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def dataset_summary(dataset: ImageDataset, kind: str) -> str:
    """The run's first line: what was loaded, what was skipped, and which labels it brings."""
    text = f"dataset {dataset.spec}: {len(dataset)} images {tuple(dataset.images.shape[1:])}"
    if dataset.skipped:
        text += f", skipped {dataset.skipped}"
    if dataset.class_names:
        source = "classes from subfolders" if kind in ("folder", "lsun") else "classes"
        text += f"; {len(dataset.class_names)} {source}: {_names(dataset.class_names)}"
    return text


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the problem (or --help)
        return int(exc.code or 0)
    dist_info = distributed_from_env()
    try:
        config = resolve_config(args)
        config.validate()
        spec = parse_dataset_spec(config.dataset)
        check_size(spec, config.image_size, config.channels, config.max_images)  # e.g. synthetic-faces:N against memory
        device = resolve_device(config.device)
        precision = resolve_amp(config.amp, device.type)  # PrecisionError: bf16 where it is only emulated
        check_amp(config.amp, device)
        run_dir = Path(config.out)
        adopt = check_out_dir(run_dir, args.resume)
        channels = config.channels or (1 if spec.kind == "fashion-mnist" else 3)  # the dataset's, before loading it
        needed = check_fits(config.model_config(channels), config.batch_size, config.ema, device, dist_info.world_size)
    except (ValueError, OSError) as exc:  # DatasetError, CheckpointError and RunDirError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.dry_run:
        print(config.to_json())
        print(
            f"plan: dataset {spec} on {device} x{dist_info.world_size} process(es), {precision.reason}, {needed.summary()}, "
            f"{'--max-steps ' + str(config.max_steps) if config.max_steps else str(config.epochs) + ' epochs'}, "
            f"{'resume' if args.resume else 'fresh'} run in {run_dir}. Dry run: nothing written."
        )
        return 0

    from training.callbacks import default_callbacks
    from training.gan import TrainingDiverged
    from training.loop import train

    try:
        dataset = load_dataset(spec, image_size=config.image_size, channels=config.channels, max_images=config.max_images,
                               cache=config.data_cache, progress=dist_info.is_main and not args.no_progress)
        if steps_per_epoch(len(dataset), config.batch_size, dist_info.world_size) < 1:
            raise DatasetError(
                f"{spec} has {len(dataset)} usable image(s), fewer than one batch of {config.batch_size}"
                + (f" x {dist_info.world_size} processes" if dist_info.enabled else "")
                + ": use a smaller --batch-size or more images"
            )
        if dist_info.is_main:
            print(dataset_summary(dataset, spec.kind))
            print(f"{data_source(dataset, config)}; precision: {precision.reason}")
            rundir.claim_run_dir(run_dir, adopt=adopt)  # the marker is the first thing written
            rundir.remove_run_temps(run_dir)
            rundir.write_run_config(run_dir, {**config.to_dict(), "world_size": dist_info.world_size, "device": str(device)})
        result = train(
            config,
            dataset,
            callbacks=default_callbacks(progress=not args.no_progress, tensorboard=not args.no_tensorboard),
            resume=args.resume,
        )
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (DatasetError, CheckpointError, rundir.RunDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: the last checkpoint in {config.out} is intact; continue with --resume", file=sys.stderr)
        return 130
    except OSError as exc:
        # A failed write (ENOSPC, EIO, a read-only or vanished disk): stop instead of training on with
        # nothing saved, since every later snapshot, sample grid and history line would fail the same
        # way and the work since the last good snapshot would grow unprotected. A failed snapshot
        # write names the snapshot it left intact (explorer.checkpoint.save_snapshot).
        print(f"error: {exc}", file=sys.stderr)
        _print_kept_snapshot(run_dir)
        return 4
    finally:
        close_distributed(dist_info)
    if dist_info.is_main:
        print(f"done: step {result.step}, checkpoint {result.snapshot}")
    return 0


def _print_kept_snapshot(run_dir: Path) -> None:
    try:
        kept = rundir.latest_snapshot(run_dir)
    except (rundir.RunDirError, OSError):
        kept = None
    if kept is not None:
        print(f"stopped: fix the cause (e.g. free disk space), then continue from the last checkpoint {kept} in {run_dir} with --resume", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
