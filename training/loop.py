"""The DCGAN training loop: a function of (TrainConfig, dataset, callbacks).

Hot-loop rules (see BENCHMARKS.md for what each one buys on CPU):
  * data is a preloaded uint8 tensor (N, C, H, W) on the training device; a batch is an index
    gather + one fused scale to [-1, 1], no DataLoader workers;
  * channels_last memory format, fused Adam, D's weights frozen during the G step;
  * optional bf16/fp16 autocast and torch.compile;
  * no host-device sync per step: losses and D outputs are summed on the device and read back
    once every `log_every` steps.

Determinism for resume: the epoch's sample order comes from (seed, epoch) and the step's noise
from (seed, step, rank), so a run resumed from step k draws exactly the batches and z's that the
uninterrupted run would have drawn.
"""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from explorer.checkpoint import (
    CheckpointError,
    atomic_write_json,
    latest_snapshot,
    load_module_weights,
    load_resume_state,
    read_meta,
    save_snapshot,
)
from explorer.datasets import ImageDataset
from explorer.generate import generate
from explorer.images import from_uint8
from explorer.model import Discriminator, Generator, count_parameters
from training.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """Raised when a divergence guard trips; the last good snapshot is left in place."""


class Callback(Protocol):
    """Hooks called on rank 0 only. Every method is optional (see CallbackList)."""

    def on_start(self, state: "TrainState") -> None: ...
    def on_step(self, state: "TrainState") -> None: ...
    def on_log(self, state: "TrainState", metrics: dict[str, float]) -> None: ...
    def on_samples(self, state: "TrainState", images: torch.Tensor, tag: str) -> None: ...
    def on_checkpoint(self, state: "TrainState", path: Path) -> None: ...
    def on_end(self, state: "TrainState") -> None: ...


class CallbackList:
    def __init__(self, callbacks):
        self.callbacks = list(callbacks or [])

    def __call__(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(*args)


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

    @property
    def epoch(self) -> int:
        return self.step // self.steps_per_epoch


# ------------------------------------------------------------------------------------------ devices & DDP


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available (use --device auto or cpu)")
    return torch.device(name)


def check_amp(amp: str, device: torch.device) -> None:
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("--amp fp16 needs a CUDA device (its loss scaling is CUDA-only); on CPU use --amp bf16")


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_from_env() -> Distributed:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; a plain `python -m` run is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(dist_info: Distributed, device: torch.device) -> torch.device:
    if not dist_info.enabled:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def _barrier(dist_info: Distributed) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


# ------------------------------------------------------------------------------------------------ pieces


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


def to_unit_range(batch_uint8: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] -> float32 in [-1, 1] (Tanh's range)."""
    return from_uint8(batch_uint8).contiguous(memory_format=memory_format)


def discriminator_loss_real(d_real: torch.Tensor, loss: str, smoothing: float) -> torch.Tensor:
    """D's loss on real logits (B,): push towards 1 - smoothing (bce) or above +1 (hinge)."""
    d_real = d_real.float()
    if loss == "hinge":
        return F.relu(1.0 - d_real).mean()
    return F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 1.0 - smoothing))


def discriminator_loss_fake(d_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """D's loss on fake logits (B,): push towards 0 (bce) or below -1 (hinge)."""
    d_fake = d_fake.float()
    if loss == "hinge":
        return F.relu(1.0 + d_fake).mean()
    return F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))


def generator_loss(d_fake: torch.Tensor, loss: str) -> torch.Tensor:
    d_fake = d_fake.float()
    if loss == "hinge":
        return -d_fake.mean()
    # Non-saturating loss: maximise log D(G(z)) (the paper's and pytorch/examples' choice).
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def make_adam(params, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    # The fused kernel exists for CUDA and CPU in torch 2.14; fall back to foreach elsewhere.
    fused = device.type in ("cuda", "cpu")
    return torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2), fused=fused)


class EMA:
    """Exponential moving average of G's parameters; BN buffers are copied (they are averages already)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = Generator(model.config).to(next(model.parameters()).device)
        self.model.load_state_dict(model.state_dict())
        self.model.eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - self.decay)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)


class DivergenceGuard:
    """Stops a run that has gone wrong, with a message that says how.

    * non-finite losses (checked over each log window, on device, without extra syncs);
    * D winning outright: D(x) > 0.99 and D(G(z)) < 0.01 for `d_win_patience` windows in a row;
    * mode collapse: the per-pixel standard deviation across the fixed-noise batch, in [-1, 1]
      units, falling below `collapse_std` after having been at least 5x that (real image sets sit
      around 0.3-0.5; an untrained G in eval mode starts near 0, which is not a collapse).
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.d_win_windows = 0
        self.peak_diversity = 0.0

    def check_window(self, metrics: dict[str, float]) -> str | None:
        if not all(math.isfinite(metrics[k]) for k in ("loss_d", "loss_g", "d_real", "d_fake")):
            return (
                f"non-finite loss (loss_d={metrics['loss_d']}, loss_g={metrics['loss_g']}): training diverged. "
                "Try a lower --lr, --amp off, or --label-smoothing 0.1"
            )
        if metrics["d_real"] > 0.99 and metrics["d_fake"] < 0.01:
            self.d_win_windows += 1
        else:
            self.d_win_windows = 0
        if self.d_win_windows >= self.config.d_win_patience:
            return (
                f"the discriminator has won outright for {self.d_win_windows} log windows "
                f"(D(x)={metrics['d_real']:.3f}, D(G(z))={metrics['d_fake']:.4f}, loss_g={metrics['loss_g']:.2f}): "
                "G gets no useful gradient. Try --label-smoothing 0.1 or --loss hinge"
            )
        return None

    def check_diversity(self, diversity: float) -> str | None:
        # G's weights can turn NaN/Inf in the window's last update while its losses (computed before
        # that update) are still finite; the sample grid is drawn after it, so check it before the
        # snapshot is written. (NaN would also slip through the comparisons below.)
        if not math.isfinite(diversity):
            return (
                f"the generator's fixed-noise samples are not finite (diversity {diversity}): its weights diverged. "
                "Try a lower --lr, --amp off, or --label-smoothing 0.1"
            )
        self.peak_diversity = max(self.peak_diversity, diversity)
        if diversity < self.config.collapse_std and self.peak_diversity >= 5 * self.config.collapse_std:
            return (
                f"mode collapse: fixed-noise samples became nearly identical (per-pixel std {diversity:.4f} < "
                f"{self.config.collapse_std}, down from {self.peak_diversity:.3f}). Restart from the kept checkpoint with a lower --lr or --ema"
            )
        return None


def sample_diversity(images: torch.Tensor) -> float:
    """Mean over pixels of the std across the batch, images (N, C, H, W) in [-1, 1]."""
    return float(images.float().std(dim=0).mean())


# ------------------------------------------------------------------------------------------------- train


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    snapshot: Path | None
    metrics: dict[str, float]
    stop_reason: str | None


def train(config: TrainConfig, dataset: ImageDataset, callbacks=None, resume: bool = False) -> TrainResult:
    """Train G and D on `dataset` (already loaded at config.image_size) and write snapshots to config.out.

    Raises TrainingDiverged after keeping the last good snapshot.
    """
    config.validate()
    dist_info = distributed_from_env()
    device = init_distributed(dist_info, resolve_device(config.device))
    check_amp(config.amp, device)
    cb = CallbackList(callbacks if dist_info.is_main else [])
    run_dir = Path(config.out)

    model_config = config.model_config(dataset.channels)
    torch.manual_seed(config.seed)
    generator, discriminator = Generator(model_config).to(device), Discriminator(model_config).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    generator.to(memory_format=memory_format)
    discriminator.to(memory_format=memory_format)
    opt_g = make_adam(generator.parameters(), config, device)
    opt_d = make_adam(discriminator.parameters(), config, device)
    ema = EMA(generator, config.ema_decay) if config.ema else None

    world = dist_info.world_size
    steps_per_epoch = len(dataset) // (config.batch_size * world)
    if steps_per_epoch < 1:
        raise ValueError(
            f"the dataset has {len(dataset)} images, fewer than one global batch ({config.batch_size} x {world} processes)"
        )
    total_steps = config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch
    state = TrainState(config, run_dir, 0, total_steps, steps_per_epoch, config.batch_size * world)

    if resume:
        _restore(state, generator, discriminator, ema, opt_g, opt_d, model_config, dataset)

    # Wrappers: DDP syncs G's and D's gradients across ranks; the G step calls the bare D (no DDP)
    # because D's weights get no gradient there and DDP would wait for them.
    g_train: nn.Module = generator
    d_train: nn.Module = discriminator
    d_for_g: nn.Module = discriminator
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_train = DDP(generator, device_ids=ids)
        d_train = DDP(discriminator, device_ids=ids)
    if config.compile:
        g_train, d_train, d_for_g = torch.compile(g_train), torch.compile(d_train), torch.compile(d_for_g)

    images = dataset.images.to(device)  # uint8 (N, C, H, W), ~1/4 the bytes of float32
    noise_for_grid = fixed_noise(config.sample_count, config.z_dim, config.seed).to(device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
    autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    guard = DivergenceGuard(config)
    d_params = list(discriminator.parameters())

    def backward(loss: torch.Tensor) -> None:
        (loss if scaler is None else scaler.scale(loss)).backward()

    def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)

    # Per-window sums on the device: loss_d, loss_g, D(x), D(G(z)) (before the G step).
    window = torch.zeros(4, device=device)
    window_steps, window_start = 0, time.perf_counter()
    cb("on_start", state)
    order, order_epoch = None, -1

    while state.step < state.total_steps:
        epoch, batch_in_epoch = divmod(state.step, steps_per_epoch)
        if epoch != order_epoch:
            order = epoch_order(len(dataset), config.seed, epoch)
            # Each rank takes its own interleaved slice of the global order.
            order = order[: steps_per_epoch * config.batch_size * world][dist_info.rank :: world].to(device)
            order_epoch = epoch
        index = order[batch_in_epoch * config.batch_size : (batch_in_epoch + 1) * config.batch_size]
        real = to_unit_range(images[index], memory_format)
        z = torch.randn(
            config.batch_size, config.z_dim, device=device, generator=step_generator(device, config.seed, state.step, dist_info.rank)
        )

        # D step, as pytorch/examples does it: forward+backward on the real batch, then on the fake
        # batch (DDP reduces a parameter's gradient once per forward/backward pair). G's graph is
        # kept for the G step.
        with autocast():
            fake = g_train(z)
        opt_d.zero_grad(set_to_none=True)
        with autocast():
            d_real = d_train(real)
            loss_d_real = discriminator_loss_real(d_real, config.loss, config.label_smoothing)
        backward(loss_d_real)
        with autocast():
            d_fake = d_train(fake.detach())
            loss_d_fake = discriminator_loss_fake(d_fake, config.loss)
        backward(loss_d_fake)
        optimizer_step(opt_d)

        # G step through the updated D, whose weights are frozen so no weight gradients are computed.
        for p in d_params:
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast():
            loss_g = generator_loss(d_for_g(fake), config.loss)
        backward(loss_g)
        optimizer_step(opt_g)
        for p in d_params:
            p.requires_grad_(True)
        if scaler is not None:
            scaler.update()
        if ema is not None:
            ema.update(generator)

        with torch.no_grad():
            window += torch.stack(
                [(loss_d_real + loss_d_fake).detach(), loss_g.detach(), torch.sigmoid(d_real.detach().float()).mean(), torch.sigmoid(d_fake.detach().float()).mean()]
            )
        window_steps += 1
        state.step += 1
        cb("on_step", state)

        end_of_epoch = state.step % steps_per_epoch == 0
        finished = state.step >= state.total_steps
        want_checkpoint = state.step % config.checkpoint_every == 0 or end_of_epoch or finished
        if window_steps >= config.log_every or want_checkpoint:
            sums = window.tolist()  # the one host sync of the window
            if dist_info.enabled:
                sums = _all_reduce_mean(sums, device)
            elapsed = time.perf_counter() - window_start
            metrics = {
                "loss_d": sums[0] / window_steps,
                "loss_g": sums[1] / window_steps,
                "d_real": sums[2] / window_steps,
                "d_fake": sums[3] / window_steps,
                "img_per_s": window_steps * state.images_per_step / max(elapsed, 1e-9),
                "epoch": state.step / steps_per_epoch,
            }
            # Eval mode (BN running statistics), left untouched; float32 (N, C, H, W) on the CPU.
            grid = generate(ema.model if ema is not None else generator, noise_for_grid)
            metrics["diversity"] = sample_diversity(grid)
            state.metrics = metrics
            cb("on_log", state, metrics)
            problem = guard.check_window(metrics) or guard.check_diversity(metrics["diversity"])
            if problem is not None:
                state.stop_reason = problem
                cb("on_end", state)
                _barrier(dist_info)
                kept = latest_snapshot(run_dir)
                raise TrainingDiverged(
                    f"stopped at step {state.step}: {problem}. "
                    + (f"Last good checkpoint: {kept}" if kept else "No checkpoint had been written yet")
                )
            if end_of_epoch or finished:
                cb("on_samples", state, grid, f"epoch_{math.ceil(state.step / steps_per_epoch):03d}" if end_of_epoch else f"step_{state.step:08d}")
            if want_checkpoint:
                if dist_info.is_main:
                    path = _save(state, generator, discriminator, ema, opt_g, opt_d, model_config, dataset, scaler)
                    cb("on_checkpoint", state, path)
                _barrier(dist_info)
            window.zero_()
            window_steps, window_start = 0, time.perf_counter()

    cb("on_end", state)
    return TrainResult(run_dir, state.step, latest_snapshot(run_dir) if dist_info.is_main else None, state.metrics, None)


def _all_reduce_mean(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    t = torch.tensor(values, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def dataset_meta(dataset: ImageDataset) -> dict:
    return {
        "spec": dataset.spec,
        "num_images": len(dataset),
        "class_names": dataset.class_names,
        "attribute_names": dataset.attribute_names,
        "factor_names": dataset.factor_names,
        "skipped": dict(dataset.skipped),
    }


def _save(state, generator, discriminator, ema, opt_g, opt_d, model_config, dataset, scaler) -> Path:
    modules = {"generator": generator, "discriminator": discriminator}
    if ema is not None:
        modules["generator_ema"] = ema.model
    meta = {
        "model": model_config.to_dict(),
        "dataset": dataset_meta(dataset),
        "step": state.step,
        "epoch": state.step / state.steps_per_epoch,
        "images_seen": state.step * state.images_per_step,
        "steps_per_epoch": state.steps_per_epoch,
        "training": state.config.to_dict(),
        "metrics": state.metrics,
        "parameters": {"generator": count_parameters(generator), "discriminator": count_parameters(discriminator)},
    }
    resume_state = {
        "step": state.step,
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "scaler": scaler.state_dict() if scaler is not None else {},
    }
    return save_snapshot(state.run_dir, meta, modules, resume_state, keep=state.config.keep_snapshots)


def _restore(state, generator, discriminator, ema, opt_g, opt_d, model_config, dataset) -> None:
    snapshot = latest_snapshot(state.run_dir)
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
    load_module_weights(snapshot, meta, "generator", generator)
    load_module_weights(snapshot, meta, "discriminator", discriminator)
    if ema is not None:
        load_module_weights(snapshot, meta, "generator_ema" if "generator_ema" in meta["files"] else "generator", ema.model)
    resume_state = load_resume_state(snapshot)
    opt_g.load_state_dict(resume_state["opt_g"])
    opt_d.load_state_dict(resume_state["opt_d"])
    torch.set_rng_state(resume_state["torch_rng"])
    state.step = int(resume_state["step"])
    state.metrics = dict(meta.get("metrics") or {})


def write_resolved_config(config: TrainConfig, extra: dict) -> None:
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", {**config.to_dict(), **extra})
