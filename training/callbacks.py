"""Training callbacks: the hook interface, and the progress bar, sample grids, metric history, TensorBoard, loss curves.

All run on rank 0 only and see metrics once per log window (no per-step host syncs).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from explorer.fsio import atomic_write_bytes
from explorer.images import grid, save_png
from explorer.rundir import CURVES_FILE, HISTORY_FILE, SAMPLES_DIR, TENSORBOARD_DIR, read_history

if TYPE_CHECKING:
    from training.loop import TrainState


class Callback:
    """The hooks `training.loop.train` calls, on rank 0 only. Each is a no-op here: override the ones you need."""

    def on_start(self, state: TrainState) -> None:
        """Before the first step (after --resume restored `state.step`)."""

    def on_step(self, state: TrainState) -> None:
        """After every optimizer step; nothing has been read back from the device."""

    def on_log(self, state: TrainState, metrics: dict[str, float]) -> None:
        """Once per log window: its mean losses, D outputs, img/s, epoch and sample diversity."""

    def on_samples(self, state: TrainState, images: torch.Tensor, tag: str) -> None:
        """At each epoch end and at the end: the fixed-noise grid (N, C, H, W) in [-1, 1], e.g. tag "epoch_003"."""

    def on_end(self, state: TrainState) -> None:
        """After the last step, or when a divergence guard stopped the run (`state.stop_reason` says why)."""


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)

    def on_start(self, state: TrainState) -> None:
        for callback in self.callbacks:
            callback.on_start(state)

    def on_step(self, state: TrainState) -> None:
        for callback in self.callbacks:
            callback.on_step(state)

    def on_log(self, state: TrainState, metrics: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_log(state, metrics)

    def on_samples(self, state: TrainState, images: torch.Tensor, tag: str) -> None:
        for callback in self.callbacks:
            callback.on_samples(state, images, tag)

    def on_end(self, state: TrainState) -> None:
        for callback in self.callbacks:
            callback.on_end(state)


class ProgressBar(Callback):
    """tqdm bar over optimizer steps, with img/s and the last window's losses."""

    def __init__(self, disable: bool = False):
        self.disable = disable
        self.bar = None

    def on_start(self, state) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=state.total_steps, initial=state.step, unit="step", dynamic_ncols=True, disable=self.disable)

    def on_step(self, state) -> None:
        self.bar.update(1)

    def on_log(self, state, metrics) -> None:
        self.bar.set_postfix(
            epoch=f"{metrics['epoch']:.2f}",
            img_s=f"{metrics['img_per_s']:.0f}",
            loss_d=f"{metrics['loss_d']:.3f}",
            loss_g=f"{metrics['loss_g']:.3f}",
            d_x=f"{metrics['d_real']:.2f}",
            d_gz=f"{metrics['d_fake']:.2f}",
            refresh=False,
        )

    def on_end(self, state) -> None:
        if self.bar is not None:
            self.bar.close()
        if state.stop_reason:
            print(f"stopped: {state.stop_reason}")


class SampleGrids(Callback):
    """A fixed-noise sample grid PNG per epoch under RUN/samples/ (the paper's figure style)."""

    def on_samples(self, state, images: torch.Tensor, tag: str) -> None:
        save_png(grid(images), Path(state.run_dir) / SAMPLES_DIR / f"{tag}.png")


class MetricHistory(Callback):
    """Appends each log window to RUN/history.jsonl: the explorer's Model page and curves.png read it.

    On resume, entries past the resumed step (written after the last snapshot) are dropped so the
    history has no duplicated steps.
    """

    def on_start(self, state) -> None:
        self.path = Path(state.run_dir) / HISTORY_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [json.dumps(entry) for entry in read_history(state.run_dir) if entry["step"] <= state.step]
            atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())

    def on_log(self, state, metrics) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": state.step, **metrics}) + "\n")


class TensorBoard(Callback):
    """Scalars every log window and the sample grid per epoch, under RUN/tensorboard/."""

    def on_start(self, state) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(Path(state.run_dir) / TENSORBOARD_DIR), purge_step=state.step or None)

    def on_log(self, state, metrics) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(f"train/{key}", value, state.step)

    def on_samples(self, state, images: torch.Tensor, tag: str) -> None:
        self.writer.add_image("samples", grid(images), state.step, dataformats="HWC" if images.shape[1] == 3 else "HW")

    def on_end(self, state) -> None:
        self.writer.close()


class LossCurves(Callback):
    """RUN/curves.png at the end: losses and D outputs against step, from the whole history."""

    def on_end(self, state) -> None:
        history = read_history(state.run_dir)
        if history:
            plot_curves(history, Path(state.run_dir) / CURVES_FILE)


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(steps, [h["loss_d"] for h in history], label="loss D")
    ax_loss.plot(steps, [h["loss_g"] for h in history], label="loss G")
    ax_loss.set_xlabel("step")
    ax_loss.legend()
    ax_d.plot(steps, [h["d_real"] for h in history], label="D(x)")
    ax_d.plot(steps, [h["d_fake"] for h in history], label="D(G(z))")
    ax_d.set_xlabel("step")
    ax_d.set_ylim(0, 1)
    ax_d.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def default_callbacks(progress: bool = True, tensorboard: bool = True) -> list[Callback]:
    callbacks = [ProgressBar(disable=not progress), SampleGrids(), MetricHistory(), LossCurves()]
    if tensorboard:
        callbacks.append(TensorBoard())
    return callbacks
