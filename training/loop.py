"""The DCGAN training loop: a function of (TrainConfig, dataset, callbacks).

`train` draws batches, runs `training.gan.GanStep`, and closes a log window every `log_every`
steps: the one host-device sync of the window, the divergence guards, sample grids, and a snapshot
every `checkpoint_every` steps, at each epoch end and at the end.

Data: a uint8 (N, C, H, W) set preloaded on the training device, or, past the memory budget
(--max-ram-gb), read batch by batch from the decoded-data cache (training.batches); a batch is an
index gather + one fused scale to [-1, 1], no DataLoader workers.

Determinism for resume: the epoch's sample order comes from (seed, epoch) and the step's noise
from (seed, step, rank), so a run resumed from step k draws exactly the batches and z's that the
uninterrupted run would have drawn; the optimizer and RNG state come back from resume.pt.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explorer import rundir
from explorer.checkpoint import CheckpointError, load_module_weights, load_resume_state, read_meta, save_snapshot
from explorer.datasets import ImageDataset
from explorer.generate import generate
from explorer.images import from_uint8
from explorer.model import DCGANConfig, count_parameters
from training.batches import batch_source, ram_budget_bytes
from training.callbacks import Callback, CallbackList
from training.config import TrainConfig, steps_per_epoch, total_steps
from training.distributed import Distributed, all_reduce_mean, barrier, check_amp, distributed_from_env, init_distributed, resolve_device
from training.gan import (
    DivergenceGuard,
    GanModels,
    GanStep,
    TrainingDiverged,
    build_models,
    load_optimizer_state,
    memory_format,
    sample_diversity,
)
from training.precision import resolve_amp


@dataclass
class TrainState:
    config: TrainConfig
    run_dir: Path
    step: int = 0  # optimizer steps done (global: same on every rank)
    total_steps: int = 0
    steps_per_epoch: int = 0
    images_per_step: int = 0  # global batch
    metrics: dict[str, float] = field(default_factory=dict)  # last logged window
    stop_reason: str | None = None


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    snapshot: Path | None
    metrics: dict[str, float]
    stop_reason: str | None


# ----------------------------------------------------------------------------------------------- batches


def step_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A torch.Generator seeded from integer keys (seed, step, rank, ...), stable across runs."""
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + int(key) + 1) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)


def epoch_order(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """Shuffled indices (num_images,) for one epoch, on CPU, derived from (seed, epoch) only."""
    return torch.randperm(num_images, generator=step_generator(torch.device("cpu"), seed, epoch, 7919))


def fixed_noise(count: int, z_dim: int, seed: int) -> torch.Tensor:
    """The fixed z (count, z_dim) behind every sample grid of a run: N(0, I) from the run's seed."""
    return torch.randn(count, z_dim, generator=step_generator(torch.device("cpu"), seed, 104729))


class Batches:
    """The real batch and the z of any step, each a function of (seed, step, rank) only."""

    def __init__(self, dataset: ImageDataset, config: TrainConfig, dist_info: Distributed, device: torch.device, per_epoch: int):
        self.source = batch_source(dataset, device, ram_budget_bytes(config))  # memory, or the cache file
        self.num_images = len(dataset)
        self.config, self.dist_info, self.device, self.per_epoch = config, dist_info, device, per_epoch
        self.memory_format = memory_format(config)
        self.order, self.order_epoch = None, -1

    def at(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(real (B, C, H, W) in [-1, 1], z (B, z_dim)) for optimizer step `step` on this rank."""
        config, world, rank = self.config, self.dist_info.world_size, self.dist_info.rank
        epoch, batch_in_epoch = divmod(step, self.per_epoch)
        if epoch != self.order_epoch:
            order = epoch_order(self.num_images, config.seed, epoch)
            # Each rank takes its own interleaved slice of the global order: disjoint shards.
            self.order = order[: self.per_epoch * config.batch_size * world][rank::world].to(self.source.index_device)
            self.order_epoch = epoch
        start = batch_in_epoch * config.batch_size
        index = self.order[start : start + config.batch_size]
        upcoming = self.order[start + config.batch_size : start + 2 * config.batch_size] if batch_in_epoch + 1 < self.per_epoch else None
        real = from_uint8(self.source.take(index, upcoming)).contiguous(memory_format=self.memory_format)
        z = torch.randn(config.batch_size, config.z_dim, device=self.device, generator=step_generator(self.device, config.seed, step, rank))
        return real, z


# ----------------------------------------------------------------------------------------------- train


def train(config: TrainConfig, dataset: ImageDataset, callbacks: Iterable[Callback] | None = None, resume: bool = False) -> TrainResult:
    """Train G and D on `dataset` (already loaded at config.image_size) and write snapshots to config.out.

    Raises TrainingDiverged after keeping the last good snapshot, ValueError for a dataset smaller
    than one global batch, CheckpointError for a run that cannot be resumed.
    """
    config.validate()
    dist_info = distributed_from_env()
    device = init_distributed(dist_info, resolve_device(config.device))
    if config.amp == "auto":  # the precision native to this device; snapshots record the one used
        config = dataclasses.replace(config, amp=resolve_amp("auto", device.type).amp)
    check_amp(config.amp, device)
    hooks = CallbackList((callbacks or []) if dist_info.is_main else [])
    world = dist_info.world_size
    per_epoch = steps_per_epoch(len(dataset), config.batch_size, world)
    if per_epoch < 1:
        raise ValueError(f"the dataset has {len(dataset)} images, fewer than one global batch ({config.batch_size} x {world} processes)")
    state = TrainState(config, Path(config.out), 0, total_steps(config, per_epoch), per_epoch, config.batch_size * world)
    model_config = config.model_config(dataset.channels)
    models = build_models(config, model_config, device)
    if resume:
        _restore(state, models, model_config)
    gan_step = GanStep(models, config, dist_info, device)
    batches = Batches(dataset, config, dist_info, device, per_epoch)
    window = LogWindow(state, models, hooks, dist_info, device, dataset)

    hooks.on_start(state)
    try:
        while state.step < state.total_steps:
            window.add(gan_step(*batches.at(state.step)))
            state.step += 1
            hooks.on_step(state)
            window.close_if_due()
    finally:
        batches.source.close()
    hooks.on_end(state)
    return TrainResult(state.run_dir, state.step, rundir.latest_snapshot(state.run_dir) if dist_info.is_main else None, state.metrics, None)


class LogWindow:
    """Per-window sums on the device (loss_d, loss_g, D(x), D(G(z))), read back once when the window closes.

    Closing a window logs it, runs the guards on it and on the fixed-noise grid, and writes the
    sample grid (epoch end, end) and the snapshot (every checkpoint_every steps, epoch end, end).
    """

    def __init__(self, state: TrainState, models: GanModels, hooks: Callback, dist_info: Distributed, device: torch.device, dataset: ImageDataset):
        self.state, self.models, self.hooks, self.dist_info, self.device, self.dataset = state, models, hooks, dist_info, device, dataset
        self.guard = DivergenceGuard(state.config)
        config = state.config
        self.grid_noise = fixed_noise(config.sample_count, config.z_dim, config.seed).to(device)
        self.sums = torch.zeros(4, device=device)
        self.steps, self.start = 0, time.perf_counter()

    def add(self, step_stats: torch.Tensor) -> None:
        self.sums += step_stats
        self.steps += 1

    def close_if_due(self) -> None:
        state, config = self.state, self.state.config
        end_of_epoch = state.step % state.steps_per_epoch == 0
        finished = state.step >= state.total_steps
        want_checkpoint = state.step % config.checkpoint_every == 0 or end_of_epoch or finished
        if self.steps < config.log_every and not want_checkpoint:
            return
        metrics = self._metrics()
        # Eval mode (BN running statistics), left untouched; float32 (N, C, H, W) on the CPU.
        grid = generate(self.models.sample_generator, self.grid_noise)
        metrics["diversity"] = sample_diversity(grid)
        state.metrics = metrics
        self.hooks.on_log(state, metrics)
        problem = self.guard.check_window(metrics) or self.guard.check_diversity(metrics["diversity"])
        if problem is not None:
            self._stop(problem)
        if end_of_epoch or finished:
            tag = f"epoch_{math.ceil(state.step / state.steps_per_epoch):03d}" if end_of_epoch else f"step_{state.step:08d}"
            self.hooks.on_samples(state, grid, tag)
        if want_checkpoint:
            if self.dist_info.is_main:
                _save(state, self.models, self.dataset)
            barrier(self.dist_info)
        self.sums.zero_()
        self.steps, self.start = 0, time.perf_counter()

    def _metrics(self) -> dict[str, float]:
        sums = self.sums.tolist()  # the one host sync of the window
        if self.dist_info.enabled:
            sums = all_reduce_mean(sums, self.device)
        elapsed = time.perf_counter() - self.start
        return {
            "loss_d": sums[0] / self.steps,
            "loss_g": sums[1] / self.steps,
            "d_real": sums[2] / self.steps,
            "d_fake": sums[3] / self.steps,
            "img_per_s": self.steps * self.state.images_per_step / max(elapsed, 1e-9),
            "epoch": self.state.step / self.state.steps_per_epoch,
        }

    def _stop(self, problem: str) -> None:
        self.state.stop_reason = problem
        self.hooks.on_end(self.state)
        barrier(self.dist_info)
        kept = rundir.latest_snapshot(self.state.run_dir)
        raise TrainingDiverged(
            f"stopped at step {self.state.step}: {problem}. "
            + (f"Last good checkpoint: {kept}" if kept else "No checkpoint had been written yet")
        )


# ----------------------------------------------------------------------------------------------- snapshots


def dataset_meta(dataset: ImageDataset) -> dict:
    return {
        "spec": dataset.spec,
        "num_images": len(dataset),
        "class_names": dataset.class_names,
        "attribute_names": dataset.attribute_names,
        "factor_names": dataset.factor_names,
        "skipped": dict(dataset.skipped),
    }


def _save(state: TrainState, models: GanModels, dataset: ImageDataset) -> Path:
    modules = {"generator": models.generator, "discriminator": models.discriminator}
    if models.ema is not None:
        modules["generator_ema"] = models.ema.model
    meta = {
        "model": models.generator.config.to_dict(),
        "dataset": dataset_meta(dataset),
        "step": state.step,
        "epoch": state.step / state.steps_per_epoch,
        "images_seen": state.step * state.images_per_step,
        "steps_per_epoch": state.steps_per_epoch,
        "training": state.config.to_dict(),
        "metrics": state.metrics,
        "parameters": {"generator": count_parameters(models.generator), "discriminator": count_parameters(models.discriminator)},
    }
    resume_state = {
        "step": state.step,
        "opt_g": models.opt_g.state_dict(),
        "opt_d": models.opt_d.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "scaler": models.scaler.state_dict() if models.scaler is not None else {},
    }
    return save_snapshot(state.run_dir, meta, modules, resume_state, keep=state.config.keep_snapshots)


def _restore(state: TrainState, models: GanModels, model_config: DCGANConfig) -> None:
    """Load the run's latest snapshot into `models` and `state`; CheckpointError when it does not fit this run."""
    try:
        snapshot = rundir.latest_snapshot(state.run_dir)
    except rundir.RunDirError as exc:
        raise CheckpointError(f"--resume: {exc}") from None
    if snapshot is None:
        raise CheckpointError(f"--resume: {state.run_dir} holds no checkpoint to resume from")
    snapshot, meta = read_meta(snapshot)
    if meta["model"] != model_config.to_dict():
        raise CheckpointError(f"--resume: the architecture {meta['model']} in {snapshot} differs from this run's {model_config.to_dict()}")
    if meta.get("steps_per_epoch") != state.steps_per_epoch:
        raise CheckpointError(
            f"--resume: the checkpoint has {meta.get('steps_per_epoch')} steps per epoch, this run {state.steps_per_epoch}: "
            "keep the dataset, --max-images, --batch-size and process count of the original run"
        )
    load_module_weights(snapshot, meta, "generator", models.generator)
    load_module_weights(snapshot, meta, "discriminator", models.discriminator)
    if models.ema is not None:
        load_module_weights(snapshot, meta, "generator_ema" if "generator_ema" in meta["files"] else "generator", models.ema.model)
    resume_state = load_resume_state(snapshot, meta["step"])
    try:
        load_optimizer_state(models.opt_g, resume_state["opt_g"])
        load_optimizer_state(models.opt_d, resume_state["opt_d"])
        torch.set_rng_state(resume_state["torch_rng"])
        if models.scaler is not None and resume_state.get("scaler"):
            models.scaler.load_state_dict(resume_state["scaler"])
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"--resume: {snapshot}/resume.pt does not fit this run: {str(exc)[:300]}") from None
    state.step = meta["step"]
    state.metrics = dict(meta.get("metrics") or {})
