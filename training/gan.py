"""The GAN itself: models and optimizers, the losses, one D-then-G update, EMA of G, and the divergence guards.

Hot-path rules (see BENCHMARKS.md for what each one buys on CPU): channels_last memory format,
fused Adam, D's weights frozen during the G step, optional bf16/fp16 autocast and torch.compile,
and no host-device sync: a step returns its losses as a device tensor.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from explorer.model import DCGANConfig, Discriminator, Generator
from training.config import TrainConfig
from training.distributed import Distributed, wrap_ddp


class TrainingDiverged(RuntimeError):
    """Raised when a divergence guard trips; the last good snapshot is left in place."""


# ----------------------------------------------------------------------------------------------- losses


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


# ----------------------------------------------------------------------------------------------- models


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


@dataclass
class GanModels:
    """Everything a snapshot saves and --resume restores."""

    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    ema: EMA | None
    scaler: torch.amp.GradScaler | None  # fp16 only

    @property
    def sample_generator(self) -> Generator:
        """The generator behind sample grids: the EMA one when kept."""
        return self.ema.model if self.ema is not None else self.generator


def memory_format(config: TrainConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


def build_models(config: TrainConfig, model_config: DCGANConfig, device: torch.device) -> GanModels:
    """Fresh G, D (the paper's init, from config.seed), their Adam optimizers and the optional EMA and scaler.

    The order of construction fixes the global RNG state that snapshots record: keep it.
    """
    torch.manual_seed(config.seed)
    generator, discriminator = Generator(model_config).to(device), Discriminator(model_config).to(device)
    generator.to(memory_format=memory_format(config))
    discriminator.to(memory_format=memory_format(config))
    opt_g = make_adam(generator.parameters(), config, device)
    opt_d = make_adam(discriminator.parameters(), config, device)
    ema = EMA(generator, config.ema_decay) if config.ema else None
    scaler = torch.amp.GradScaler("cuda") if config.amp == "fp16" else None
    return GanModels(generator, discriminator, opt_g, opt_d, ema, scaler)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved Adam state, checking every moment's shape against its parameter (ValueError if not).

    Adam itself checks only the parameter count; a wrong shape would crash the first step, mid-run.
    """
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
        raise ValueError(f"the optimizer state does not fit ({type(exc).__name__}: {str(exc)[:200]})") from None
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if key in ("exp_avg", "exp_avg_sq") and (not isinstance(value, torch.Tensor) or value.shape != param.shape):
                    raise ValueError(f"the optimizer's {key} does not have its parameter's shape {tuple(param.shape)}")


# ----------------------------------------------------------------------------------------------- one step


class GanStep:
    """One optimizer step of D, then of G through the updated D, as pytorch/examples does it.

    Calling it with a real batch (B, C, H, W) in [-1, 1] and z (B, z_dim) updates the models and returns
    (4,) on the device: D's loss, G's loss, mean D(x) and mean D(G(z)) (before the G step).
    """

    def __init__(self, models: GanModels, config: TrainConfig, dist_info: Distributed, device: torch.device):
        self.models, self.loss, self.smoothing = models, config.loss, config.label_smoothing
        # DDP syncs G's and D's gradients across ranks; the G step calls the bare D (no DDP) because
        # D's weights get no gradient there and DDP would wait for them.
        self.g_train = wrap_ddp(models.generator, dist_info, device)
        self.d_train = wrap_ddp(models.discriminator, dist_info, device)
        self.d_for_g: nn.Module = models.discriminator
        if config.compile:
            self.g_train, self.d_train, self.d_for_g = torch.compile(self.g_train), torch.compile(self.d_train), torch.compile(self.d_for_g)
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)
        self.autocast = (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype else nullcontext
        self.d_params = list(models.discriminator.parameters())

    def _backward(self, loss: torch.Tensor) -> None:
        scaler = self.models.scaler
        (loss if scaler is None else scaler.scale(loss)).backward()

    def _optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.models.scaler is None:
            optimizer.step()
        else:
            self.models.scaler.step(optimizer)

    def __call__(self, real: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        m = self.models
        # D step: forward+backward on the real batch, then on the fake batch (DDP reduces a parameter's
        # gradient once per forward/backward pair). G's graph is kept for the G step.
        with self.autocast():
            fake = self.g_train(z)
        m.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            d_real = self.d_train(real)
            loss_d_real = discriminator_loss_real(d_real, self.loss, self.smoothing)
        self._backward(loss_d_real)
        with self.autocast():
            d_fake = self.d_train(fake.detach())
            loss_d_fake = discriminator_loss_fake(d_fake, self.loss)
        self._backward(loss_d_fake)
        self._optimizer_step(m.opt_d)

        # G step through the updated D, whose weights are frozen so no weight gradients are computed.
        for p in self.d_params:
            p.requires_grad_(False)
        m.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            loss_g = generator_loss(self.d_for_g(fake), self.loss)
        self._backward(loss_g)
        self._optimizer_step(m.opt_g)
        for p in self.d_params:
            p.requires_grad_(True)
        if m.scaler is not None:
            m.scaler.update()
        if m.ema is not None:
            m.ema.update(m.generator)

        with torch.no_grad():
            return torch.stack(
                [(loss_d_real + loss_d_fake).detach(), loss_g.detach(), torch.sigmoid(d_real.detach().float()).mean(), torch.sigmoid(d_fake.detach().float()).mean()]
            )


# ----------------------------------------------------------------------------------------------- guards


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
