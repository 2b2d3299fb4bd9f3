"""A small convolutional encoder per checkpoint, image -> z: the starting point of inversion (`explorer.invert`).

It is trained on pairs (G(z), z) with z ~ N(0, I) drawn from a seeded generator, so it needs no
dataset and works for any checkpoint, imported ones included. Optimising z from a random start
often ends in a poor local minimum; from the encoder's guess the optimiser only refines (the
"hybrid" inversion of Zhu et al. 2016, "Generative Visual Manipulation on the Natural Image
Manifold"). Regressing z from an image is ambiguous (many z give near-identical images), so the
encoder's z is shrunk towards the prior's mean; inversion puts it back on the shell.

Architecture (64 px RGB, width 32): D's layout, stride-2 4x4 convs halving the map to 4x4
(64 -> 32 -> 16 -> 8 -> 4, channels 32 -> 64 -> 128 -> 256), batchnorm except on the input
layer, LeakyReLU(0.2), then one linear layer to z. ~1.1 M parameters, ~27 M multiply-adds an image.

Training pairs are quantised to uint8, as real images are, and trained on for a few epochs
(Adam, one-cycle learning rate). The result is cached like the other analysis: one safetensors
file in <checkpoint>/analysis/ (or the user cache when that is read-only) whose metadata holds a
JSON header with the format, the config, the training statistics and the cache key (the
generator's SHA-256 plus the training parameters). `python -m explorer.precompute` writes it;
`load_or_train_encoder` reuses a copy whose key matches and trains (then caches) otherwise.
Nothing is ever unpickled.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save
from torch import nn

from explorer.checkpoint import Checkpoint
from explorer.directions import Progress
from explorer.analysis import ANALYSIS_DIR, analysis_cache_path, weights_sha256
from explorer.fsio import atomic_write_bytes
from explorer.generate import eval_mode
from explorer.images import from_uint8, to_uint8
from explorer.model import Generator

ENCODER_FORMAT = "latent-lab-encoder"
ENCODER_VERSION = 1
HEADER_KEY = "latent_lab"  # the safetensors metadata entry holding the JSON header


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int  # 32, 64 or 128, the generator's
    channels: int  # 1 or 3
    z_dim: int
    width: int = 32  # channels of the first conv; doubles per block up to 8x

    def __post_init__(self) -> None:
        size = self.image_size
        for name in ("image_size", "channels", "z_dim", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"encoder {name} must be a positive integer, got {value!r}")
        if size < 8 or size & (size - 1):
            raise ValueError(f"encoder image_size must be a power of two >= 8, got {size}")


class Encoder(nn.Module):
    """images (N, C, S, S) in [-1, 1] -> z (N, z_dim). See the module docstring for the layout."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        size, c_in, c_out = config.image_size, config.channels, config.width
        while size > 4:
            first = not layers  # no batchnorm on the input layer, as in D
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=first)]
            layers += [] if first else [nn.BatchNorm2d(c_out)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            size, c_in, c_out = size // 2, c_out, min(c_out * 2, 8 * config.width)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 4 * 4, config.z_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.body(images.contiguous(memory_format=torch.channels_last))
        return self.head(x.flatten(1))


@dataclass(frozen=True)
class EncoderTraining:
    """How an encoder is trained; every field is part of the cache key."""

    pairs: int = 16384  # (G(z), z) training pairs, generated once
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3  # peak of the one-cycle schedule
    width: int = 32
    seed: int = 0  # seeds z, the initial weights and the batch order
    holdout: int = 256  # pairs from another seed stream, for the reported quality

    def __post_init__(self) -> None:
        for name in ("pairs", "epochs", "batch_size", "width", "holdout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"encoder training {name} must be a positive integer, got {value!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            raise ValueError(f"encoder training seed must be an integer >= 0, got {self.seed!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"encoder training lr must be a positive number, got {self.lr!r}")


@torch.no_grad()
def _pairs(G: Generator, n: int, generator: torch.Generator, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs: (images uint8 (n, C, S, S), z float32 (n, z_dim)); images quantised like real ones."""
    z = torch.randn(n, G.config.z_dim, generator=generator)
    device = next(G.parameters()).device
    with eval_mode(G):
        images = [torch.from_numpy(to_uint8(G(part.to(device)), channels_first=True)) for part in z.split(chunk)]
    return torch.cat(images), z


@torch.no_grad()
def encoder_quality(encoder: Encoder, G: Generator, images: torch.Tensor, z: torch.Tensor) -> dict[str, float]:
    """On held-out pairs: mean squared z error, and the median pixel RMS ([0, 1] units) of G(E(x)) against x."""
    with eval_mode(encoder), eval_mode(G):
        x = from_uint8(images)
        guess = encoder(x)
        rms = (G(guess) - x).pow(2).mean(dim=(1, 2, 3)).sqrt() / 2  # [-1, 1] -> [0, 1] units
    return {
        "z_mse": float(F.mse_loss(guess, z)),
        "pixel_rms_median": float(rms.median()),
        "z_norm_mean": float(guess.norm(dim=1).mean()),
    }


def train_encoder(
    G: Generator, training: EncoderTraining = EncoderTraining(), progress: Progress | None = None, progress_bar: bool = True
) -> tuple[Encoder, dict]:
    """Train an encoder for G on seeded (G(z), z) pairs: (encoder in eval mode, statistics for the header).

    Deterministic for a given G, `training` and torch build: z, the initial weights and the batch
    order all come from `training.seed`, and torch's global RNG is left as it was.
    """
    from tqdm.auto import tqdm

    report = progress or (lambda fraction, message: None)
    start = time.perf_counter()
    config = EncoderConfig(G.config.image_size, G.config.channels, G.config.z_dim, training.width)
    stream = torch.Generator().manual_seed(training.seed)
    report(0.0, f"rendering {training.pairs} training pairs")
    images, z = _pairs(G, training.pairs, stream)
    held_images, held_z = _pairs(G, training.holdout, torch.Generator().manual_seed(training.seed + 1_000_003))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)
        encoder = Encoder(config).to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, training.pairs // training.batch_size)
    total = training.epochs * steps_per_epoch
    optimizer = torch.optim.Adam(encoder.parameters(), lr=training.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=training.lr, total_steps=total)
    bar = tqdm(total=total, desc="encoder", unit="step", disable=not progress_bar, dynamic_ncols=True)
    encoder.train()
    loss = torch.zeros(())
    for epoch in range(training.epochs):
        order = torch.randperm(training.pairs, generator=stream)
        for i in range(steps_per_epoch):
            batch = order[i * training.batch_size : (i + 1) * training.batch_size]
            loss = F.mse_loss(encoder(from_uint8(images[batch])), z[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss = loss.detach()
            bar.update()
        bar.set_postfix(z_mse=f"{float(loss):.3f}")
        report(0.05 + 0.95 * (epoch + 1) / training.epochs, f"encoder epoch {epoch + 1}/{training.epochs}, z MSE {float(loss):.3f}")
    bar.close()
    encoder.eval()
    stats = {**encoder_quality(encoder, G, held_images, held_z), "train_z_mse": float(loss), "seconds": time.perf_counter() - start}
    return encoder, stats


def add_encoder_options(parser) -> None:
    """--encoder-pairs and --encoder-epochs, for the CLIs that may train an encoder (precompute, invert)."""
    defaults = EncoderTraining()
    parser.add_argument("--encoder-pairs", type=int, default=defaults.pairs, help=f"inversion encoder's training pairs (default {defaults.pairs})")
    parser.add_argument("--encoder-epochs", type=int, default=defaults.epochs, help=f"inversion encoder's epochs (default {defaults.epochs})")


def encoder_training_from(args) -> EncoderTraining:
    """The EncoderTraining that `add_encoder_options`' parsed options name; ValueError for bad values."""
    return EncoderTraining(pairs=args.encoder_pairs, epochs=args.encoder_epochs)


# ----------------------------------------------------------------------------------------------- files


def save_encoder(path: str | os.PathLike, encoder: Encoder, header: dict) -> None:
    """One safetensors file with the JSON header in its metadata, written atomically.

    Floating tensors are stored as fp16 (2.2 MB instead of 4.4 for the 64 px encoder, so a shipped
    checkpoint can carry it): the encoder only gives optimisation a starting z, and its guesses
    from fp16 weights differ from fp32 by at most 1.6e-3 in z (64 samples), far below its error (z MSE 0.82).
    `load_encoder` casts back into the fp32 modules.
    """
    full = {"format": ENCODER_FORMAT, "version": ENCODER_VERSION, "config": asdict(encoder.config), **header}
    atomic_write_bytes(path, save(_stored_state(encoder), metadata={HEADER_KEY: json.dumps(full)}))


def _stored_state(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The encoder's state as its file holds it: floating tensors in fp16, the rest as they are (CPU, contiguous)."""
    return {
        k: (v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in encoder.state_dict().items()
    }


def encoder_header(path: str | os.PathLike) -> dict:
    """Only the JSON header of an encoder file (the weights are not read). ValueError if it is not one."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        header = json.loads(metadata[HEADER_KEY])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path} has no latent-lab header") from exc
    if not isinstance(header, dict) or header.get("format") != ENCODER_FORMAT or header.get("version") != ENCODER_VERSION:
        raise ValueError(f"{path} is not a latent-lab encoder of version {ENCODER_VERSION}")
    return header


def load_encoder(path: str | os.PathLike) -> tuple[Encoder, dict]:
    """(encoder in eval mode, header) after checking the header, every tensor's name and shape, and finiteness."""
    header = encoder_header(path)
    try:
        encoder = Encoder(EncoderConfig(**header["config"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: invalid encoder config: {exc}") from exc
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:  # a truncated or damaged file
        raise ValueError(f"{path}: unreadable weights: {exc}") from exc
    try:
        encoder.load_state_dict(state, strict=True)  # raises on a missing, unexpected or misshapen tensor
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit its own config: {exc}") from exc
    if not all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()):
        raise ValueError(f"{path} holds NaN or infinite weights")
    return encoder.to(memory_format=torch.channels_last).eval(), header


def _encoder_entry(checkpoint: Checkpoint, training: EncoderTraining) -> tuple[str, dict]:
    """(cache file name, cache key): the encoder depends on the generator and the training parameters only."""
    key = {"kind": "encoder", "encoder_version": ENCODER_VERSION, "generator_sha256": weights_sha256(checkpoint, "generator"), **asdict(training)}
    name = f"encoder-w{training.width}-pairs{training.pairs}-epochs{training.epochs}-seed{training.seed}.safetensors"
    return name, key


def _candidates(checkpoint: Checkpoint, filename: str) -> list[Path]:
    """Where a cached encoder may lie: <checkpoint>/analysis/, then where this process would write it."""
    paths = [checkpoint.path / ANALYSIS_DIR / filename, analysis_cache_path(checkpoint, filename)]
    return list(dict.fromkeys(paths))


def cached_encoder(checkpoint: Checkpoint, training: EncoderTraining = EncoderTraining()) -> tuple[Encoder, dict] | None:
    """The cached (encoder, header) for this generator and training, or None: a lookup that never trains.

    A copy for other weights (a retrained generator) or other parameters, or one that cannot be
    read, counts as missing.
    """
    filename, key = _encoder_entry(checkpoint, training)
    for path in _candidates(checkpoint, filename):
        if not path.is_file():
            continue
        try:
            if encoder_header(path).get("cache_key") == key:
                encoder, header = load_encoder(path)
                return encoder, {**header, "path": str(path)}
        except (OSError, ValueError):
            continue
    return None


def load_or_train_encoder(
    checkpoint: Checkpoint,
    training: EncoderTraining = EncoderTraining(),
    progress: Progress | None = None,
    progress_bar: bool = True,
) -> tuple[Encoder, dict]:
    """`cached_encoder`, else `train_encoder` and cache it (atomically; uncached with a warning when nothing is writable).

    Returns (encoder, header); header["trained_now"] says whether this call trained it.
    """
    found = cached_encoder(checkpoint, training)
    if found is not None:
        encoder, header = found
        return encoder, {**header, "trained_now": False}
    encoder, stats = train_encoder(checkpoint.generator, training, progress, progress_bar)
    # the weights as `save_encoder` stores them (load_state_dict casts back to fp32): this session guesses what later ones will
    encoder.load_state_dict(_stored_state(encoder))
    filename, key = _encoder_entry(checkpoint, training)
    header = {"cache_key": key, "training": asdict(training), "quality": stats}
    target = analysis_cache_path(checkpoint, filename)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_encoder(target, encoder, header)
    except OSError as exc:
        warnings.warn(f"could not cache the encoder at {target}: {exc}", stacklevel=2)
    return encoder, {"format": ENCODER_FORMAT, "version": ENCODER_VERSION, **header, "path": str(target), "trained_now": True}
