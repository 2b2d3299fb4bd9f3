"""`python -m training.run`: train a DCGAN and write self-describing checkpoints.

    python -m training.run --dataset synthetic-faces --out checkpoints/faces --epochs 5
    python -m training.run --out checkpoints/faces --resume            # continue where it stopped
    torchrun --nproc_per_node=2 -m training.run --dataset fashion-mnist --image-size 32 --out checkpoints/fm

Options are validated before any work; --dry-run prints the resolved config and plan and writes
nothing. With --resume, options default to the run's saved config.json; flags given override them.
Exit codes: 0 done, 2 bad options or inputs, 3 training diverged (last good checkpoint kept),
4 a write failed, e.g. the disk is full (the run stops; the last checkpoint is kept),
130 interrupted (last checkpoint kept).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.checkpoint import LATEST_FILE, CheckpointError
from explorer.datasets import DatasetError, load_dataset, parse_dataset_spec
from explorer.model import Discriminator, Generator, count_parameters
from training.config import AMP_MODES, DEVICES, LOSSES, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.run",
        description="Train a DCGAN (Radford et al. 2015) and write checkpoints the explorer can open.",
        argument_default=argparse.SUPPRESS,  # only flags the user gave appear; the rest come from TrainConfig
    )
    d = TrainConfig()
    p.add_argument("--dataset", help=f"synthetic-faces[:N] | fashion-mnist[:PATH] | celeba:PATH | folder:PATH | cifar10:PATH | svhn:PATH | lsun:PATH (default {d.dataset})")
    p.add_argument("--out", help=f"run directory (default {d.out})")
    p.add_argument("--image-size", type=int, help=f"32, 64 or 128 (default {d.image_size})")
    p.add_argument("--channels", type=int, help="1 or 3 (default: the dataset's)")
    p.add_argument("--z-dim", type=int, help=f"latent size (default {d.z_dim})")
    p.add_argument("--g-width", type=int, help=f"generator base width (default {d.g_width})")
    p.add_argument("--d-width", type=int, help=f"discriminator base width (default {d.d_width})")
    p.add_argument("--batch-size", type=int, help=f"per process (default {d.batch_size})")
    p.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    p.add_argument("--max-images", type=int, help="use at most this many training images")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    p.add_argument("--beta1", type=float, help=f"Adam beta1 (default {d.beta1})")
    p.add_argument("--loss", choices=LOSSES, help=f"default {d.loss} (non-saturating)")
    p.add_argument("--label-smoothing", type=float, help="one-sided: real target 1 - s (default 0)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, help="keep an EMA of G for samples/export")
    p.add_argument("--ema-decay", type=float, help=f"default {d.ema_decay}")
    p.add_argument("--device", choices=DEVICES, help="default auto (CUDA when present)")
    p.add_argument("--amp", choices=AMP_MODES, help="autocast precision (default off)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile G and D")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="channels_last layout (default on)")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--log-every", type=int, help=f"steps between host syncs/logs (default {d.log_every})")
    p.add_argument("--checkpoint-every", type=int, help=f"steps between snapshots (default {d.checkpoint_every})")
    p.add_argument("--keep-snapshots", type=int, help=f"default {d.keep_snapshots}")
    p.add_argument("--resume", action="store_true", default=False, help="continue the run in --out from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", default=False, help="validate, print the plan, write nothing")
    p.add_argument("--no-progress", action="store_true", default=False, help="no progress bar")
    p.add_argument("--no-tensorboard", action="store_true", default=False, help="no TensorBoard logs")
    return p


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from given flags, on top of the run's saved config.json when resuming."""
    given = {k: v for k, v in vars(args).items() if k not in ("resume", "dry_run", "no_progress", "no_tensorboard")}
    base = {}
    if args.resume:
        saved = Path(given.get("out", TrainConfig.out)) / "config.json"
        if saved.is_file():
            base = json.loads(saved.read_text())
    if "max_steps" in given and "epochs" not in given:
        given["epochs"] = None  # --max-steps alone means "this many steps", not "min(steps, 5 epochs)"
    return TrainConfig.from_dict({**base, **given})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = resolve_config(args)
        config.validate()
        spec = parse_dataset_spec(config.dataset)
        from training.loop import check_amp, distributed_from_env, resolve_device

        device = resolve_device(config.device)
        check_amp(config.amp, device)
        run_dir = Path(config.out)
        has_checkpoint = (run_dir / LATEST_FILE).exists()
        if args.resume and not has_checkpoint:
            raise CheckpointError(f"--resume: {run_dir} holds no checkpoint (no {LATEST_FILE})")
        if has_checkpoint and not args.resume:
            raise CheckpointError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    except (ValueError, OSError) as exc:  # DatasetError and CheckpointError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2

    dist_info = distributed_from_env()
    if args.dry_run:
        model_config = config.model_config(config.channels or (1 if spec.kind == "fashion-mnist" else 3))
        print(config.to_json())
        print(
            f"plan: dataset {spec} on {device} x{dist_info.world_size} process(es), "
            f"G {count_parameters(Generator(model_config)):,} params, D {count_parameters(Discriminator(model_config)):,} params, "
            f"{'--max-steps ' + str(config.max_steps) if config.max_steps else str(config.epochs) + ' epochs'}, "
            f"{'resume' if args.resume else 'fresh'} run in {run_dir}. Dry run: nothing written."
        )
        return 0

    from training.callbacks import default_callbacks
    from training.loop import TrainingDiverged, train, write_resolved_config

    try:
        dataset = load_dataset(spec, image_size=config.image_size, channels=config.channels, max_images=config.max_images)
        if dist_info.is_main:
            print(f"dataset {spec}: {len(dataset)} images {tuple(dataset.images.shape[1:])}" + (f", skipped {dataset.skipped}" if dataset.skipped else ""))
            write_resolved_config(config, {"world_size": dist_info.world_size, "device": str(device)})
        result = train(
            config,
            dataset,
            callbacks=default_callbacks(progress=not args.no_progress, tensorboard=not args.no_tensorboard),
            resume=args.resume,
        )
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (DatasetError, CheckpointError) as exc:
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
        if (Path(config.out) / LATEST_FILE).exists():
            print(f"stopped: fix the cause (e.g. free disk space), then continue from the last checkpoint in {config.out} with --resume", file=sys.stderr)
        return 4
    finally:
        if dist_info.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if dist_info.is_main:
        print(f"done: step {result.step}, checkpoint {result.snapshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
