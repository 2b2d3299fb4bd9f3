"""Real-image inversion: find the z whose G(z) reconstructs a given picture.

    python -m explorer.invert --checkpoint CHECKPOINT --out DIR IMAGE [IMAGE ...] [--steps 100] [--batch-size 32]

writes, per input, DIR/<stem>.png (the reconstruction at the model's size) and DIR/<stem>.json
(z, its URL token, the loss curves, pixel RMS, perceptual distance, steps, seconds).

Method (the "hybrid" inversion of Zhu et al. 2016): a small encoder trained on (G(z), z) pairs
(`explorer.encoder`, cached beside the checkpoint) gives the start; Adam then minimises, per image,

    mean((G(z) - x)^2)  +  perceptual_weight * mean over D's first blocks of the LPIPS-style distance

where the LPIPS-style distance of two activations (C, h, w) is the squared difference of their
channel vectors after scaling each to unit length, averaged over the h * w positions (so it lies in
[0, 4]); D is the checkpoint's own discriminator, so nothing is downloaded. After every step z is
projected back into the prior's shell, mean ± shell_band * std of |z| under N(0, I)
(`explorer.latent.latent_norm_stats`: 9.97 ± 0.71 for z_dim 100), where G saw its training latents;
an unconstrained z drifts off it and fits pixels with unnatural latents. Each image's loss is its
own (the batch loss is their sum, Adam is element-wise and G and D run in eval mode), so an image's
result does not depend on its batch-mates. The best z along the path is kept, so a result is never
worse than the encoder's start.

Inputs of any size and mode are read by `explorer.picture_input` (centre crop, resize, channels;
non-images and decompression bombs refused with `InputImageError`, exit code 2 in the CLI).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from explorer.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from explorer.directions import Progress
from explorer.encoder import Encoder, add_encoder_options, cached_encoder, encoder_training_from, load_or_train_encoder
from explorer.analysis import weights_sha256
from explorer.fsio import atomic_write_bytes, atomic_write_json
from explorer.generate import eval_mode
from explorer.images import from_uint8, png_bytes, to_uint8
from explorer.latent import latent_norm_stats
from explorer.model import Discriminator, Generator
from explorer.picture_input import InputImageError, display_layout, load_image_for
from explorer.ztoken import z_to_token

INVERSION_FORMAT = "latent-lab-inversion"
INVERSION_VERSION = 1
# ----------------------------------------------------------------------------------------------- optimisation


@dataclass(frozen=True)
class InversionSettings:
    steps: int = 100  # Adam steps per image after the encoder's start
    lr: float = 0.05  # Adam's step size in prior units (z ~ N(0, I)), cosine-decayed to 0
    perceptual_weight: float = 0.1  # weight of the D-feature distance (in [0, 4]) against the pixel MSE ([-1, 1] units)
    perceptual_blocks: int = 3  # D blocks compared (64 px: 32, 16 and 8 px maps)
    shell_band: float = 2.0  # |z| is kept within mean ± shell_band * std of |z| under the prior
    batch_size: int = 32  # images optimised together (throughput on CPU; results do not depend on it)

    def __post_init__(self) -> None:
        for name in ("steps", "perceptual_blocks", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "steps" else 1):
                raise ValueError(f"{name} must be a {'non-negative' if name == 'steps' else 'positive'} integer, got {value!r}")
        for name in ("lr", "perceptual_weight", "shell_band"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.lr == 0 and self.steps:
            raise ValueError("lr must be positive")


@dataclass
class InversionResult:
    z: np.ndarray  # (N, z_dim) float32: the best latent found per image
    reconstruction: np.ndarray  # uint8 G(z), display layout: (N, S, S, 3) RGB or (N, S, S) grey
    losses: dict[str, np.ndarray]  # "total", "pixel", "perceptual": (N, steps + 1), entry 0 at the encoder's start
    rms: np.ndarray  # (N,) pixel RMS of reconstruction vs target, [0, 1] units
    perceptual: np.ndarray  # (N,) D-feature distance of the result (NaN without a discriminator)
    start_rms: np.ndarray  # (N,) pixel RMS at the encoder's start
    steps: int
    seconds: np.ndarray  # (N,) wall time per image: its batch's time divided by the batch's size
    settings: InversionSettings = field(default_factory=InversionSettings)


def _unit_channels(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) with every position's channel vector scaled to unit length (LPIPS' normalisation)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


def _block_targets(D: Discriminator | None, x: torch.Tensor, blocks: int) -> list[torch.Tensor]:
    if D is None:
        return []
    with torch.no_grad():
        out, h = [], x.contiguous(memory_format=torch.channels_last)
        for block in D.blocks[:blocks]:
            h = block(h)
            out.append(_unit_channels(h))
    return out


def _losses(G: Generator, D: Discriminator | None, z: torch.Tensor, x: torch.Tensor, targets: list[torch.Tensor]):
    """Per-image (pixel MSE (N,), perceptual (N,), G(z)) for z (N, z_dim) against x (N, C, S, S) in [-1, 1]."""
    image = G(z)
    pixel = (image - x).pow(2).mean(dim=(1, 2, 3))
    perceptual = torch.zeros_like(pixel)
    h = image.contiguous(memory_format=torch.channels_last)
    for block, target in zip(D.blocks if D is not None else [], targets):
        h = block(h)
        perceptual = perceptual + (_unit_channels(h) - target).pow(2).sum(dim=1).mean(dim=(1, 2))
    return pixel, perceptual / max(len(targets), 1), image


def project_to_shell(z: torch.Tensor, band: float) -> torch.Tensor:
    """z (N, z_dim) with each norm clamped into mean ± band * std of |z| under N(0, I)."""
    stats = latent_norm_stats(z.shape[1])
    norm = z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return z * norm.clamp(max(stats.mean - band * stats.std, 1e-6), stats.mean + band * stats.std) / norm


def invert(
    G: Generator,
    D: Discriminator | None,
    targets: torch.Tensor,
    start: torch.Tensor,
    settings: InversionSettings = InversionSettings(),
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> InversionResult:
    """Optimise z from `start` (N, z_dim) so that G(z) matches `targets` (N, C, S, S) float in [-1, 1].

    Runs in batches of settings.batch_size; D=None (or perceptual_weight 0) optimises pixels only.
    G and D are used in eval mode and never modified (gradients are taken for z only), so a model
    shared by several UI sessions is safe to use.
    """
    from tqdm.auto import tqdm

    config = G.config
    if targets.dim() != 4 or tuple(targets.shape[1:]) != (config.channels, config.image_size, config.image_size):
        raise ValueError(f"targets must be (N, {config.channels}, {config.image_size}, {config.image_size}), got {tuple(targets.shape)}")
    if start.shape != (targets.shape[0], config.z_dim):
        raise ValueError(f"start must be ({targets.shape[0]}, {config.z_dim}), got {tuple(start.shape)}")
    D = D if settings.perceptual_weight > 0 else None
    device = next(G.parameters()).device
    n, batches = targets.shape[0], math.ceil(targets.shape[0] / settings.batch_size)
    report = progress or (lambda fraction, message: None)
    bar = tqdm(total=batches * settings.steps, desc="inverting", unit="step", disable=not progress_bar, dynamic_ncols=True)
    z_out = np.empty((n, config.z_dim), np.float32)
    reconstruction = np.empty((n, config.channels, config.image_size, config.image_size), np.uint8)
    curves = {name: np.empty((n, settings.steps + 1), np.float32) for name in ("total", "pixel", "perceptual")}
    final = {name: np.empty(n, np.float32) for name in ("pixel", "perceptual")}
    seconds = np.empty(n)
    with eval_mode(G), eval_mode(D) if D is not None else contextlib.nullcontext():
        for b, first in enumerate(range(0, n, settings.batch_size)):
            began = time.perf_counter()
            rows = slice(first, min(first + settings.batch_size, n))
            x = targets[rows].to(device, torch.float32)
            feature_targets = _block_targets(D, x, settings.perceptual_blocks)
            z = project_to_shell(start[rows].to(device, torch.float32), settings.shell_band).requires_grad_(True)
            optimizer = torch.optim.Adam([z], lr=settings.lr)
            best_z, best = z.detach().clone(), torch.full((x.shape[0],), math.inf, device=device)
            for step in range(settings.steps + 1):
                pixel, perceptual, _ = _losses(G, D, z, x, feature_targets)
                total = pixel + settings.perceptual_weight * perceptual
                for name, value in (("total", total), ("pixel", pixel), ("perceptual", perceptual)):
                    curves[name][rows, step] = value.detach().cpu().numpy()
                better = total.detach() < best
                best = torch.where(better, total.detach(), best)
                best_z[better] = z.detach()[better]
                if step == settings.steps:  # the last entry scores the final z: no update after it
                    break
                for group in optimizer.param_groups:  # cosine decay to 0 over the steps
                    group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
                (z.grad,) = torch.autograd.grad(total.sum(), [z])  # for z only: G and D get no .grad
                optimizer.step()
                with torch.no_grad():
                    z.copy_(project_to_shell(z, settings.shell_band))
                bar.update()
            with torch.no_grad():
                pixel, perceptual, image = _losses(G, D, best_z, x, feature_targets)
            z_out[rows], reconstruction[rows] = best_z.cpu().numpy(), to_uint8(image, channels_first=True)
            final["pixel"][rows], final["perceptual"][rows] = pixel.cpu().numpy(), perceptual.cpu().numpy()
            seconds[rows] = (time.perf_counter() - began) / x.shape[0]
            report((b + 1) / batches, f"inverted {rows.stop} of {n} images")
    bar.close()
    return InversionResult(
        z=z_out,
        reconstruction=display_layout(reconstruction),
        losses=curves,
        rms=np.sqrt(final["pixel"]) / 2,  # RMS in [-1, 1] units / 2 = RMS in [0, 1] units
        perceptual=final["perceptual"] if D is not None else np.full(n, np.nan, np.float32),
        start_rms=np.sqrt(curves["pixel"][:, 0]) / 2,
        steps=settings.steps,
        seconds=seconds,
        settings=settings,
    )


def _as_targets(checkpoint: Checkpoint, images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    config = checkpoint.config
    images = torch.as_tensor(np.asarray(images_uint8))
    if images.dim() == 3:
        images = images[None]
    expected = (config.channels, config.image_size, config.image_size)
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != expected:
        raise ValueError(
            f"images must be uint8 (N, {', '.join(map(str, expected))}) for this checkpoint (use load_image_for), "
            f"got {images.dtype} {tuple(images.shape)}"
        )
    return from_uint8(images)


def invert_images(
    checkpoint: Checkpoint,
    images_uint8: np.ndarray | torch.Tensor,
    settings: InversionSettings = InversionSettings(),
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    progress_bar: bool = False,
) -> InversionResult:
    """Invert uint8 images (N, C, S, S) or one (C, S, S), as `load_image_for` returns them, through the checkpoint's G.

    `encoder` None: the cached encoder, trained first when there is none (minutes: a UI should
    check `explorer.encoder.cached_encoder` and say so first).
    """
    targets = _as_targets(checkpoint, images_uint8)
    if encoder is None:
        encoder, _ = load_or_train_encoder(checkpoint, progress_bar=progress_bar)
    with torch.no_grad(), eval_mode(encoder):
        start = torch.cat([encoder(part) for part in targets.split(256)]) if len(targets) else torch.empty(0, checkpoint.config.z_dim)
    return invert(checkpoint.generator, checkpoint.discriminator, targets, start, settings, progress, progress_bar)


@dataclass
class InvertedPicture:
    """One picture and its inversion, as both front ends show it (display layout, see `display_layout`)."""

    picture: np.ndarray  # uint8 (S, S, 3) or (S, S): the input as the model sees it (cropped, resized, converted)
    reconstruction: np.ndarray  # uint8, same layout: G(z)
    z: np.ndarray  # (z_dim,) float32
    token: str  # z as a URL-safe token (`explorer.ztoken`), for a shareable link
    pixel_rms: float  # [0, 1] units
    start_pixel_rms: float  # of the encoder's guess
    seconds: float


def invert_picture(
    checkpoint: Checkpoint,
    source: bytes | str | os.PathLike | np.ndarray,
    name: str | None = None,
    settings: InversionSettings = InversionSettings(),
    encoder: Encoder | None = None,
) -> InvertedPicture:
    """An upload's bytes, a path, or a dataset image (uint8 (C, S, S)) -> its inversion: the one call a page makes.

    InputImageError (a ValueError) with a message for the user for anything that is not a usable picture.
    """
    picture = np.asarray(source) if isinstance(source, np.ndarray) else load_image_for(checkpoint, source, name)
    result = invert_images(checkpoint, picture[None], settings, encoder)
    return InvertedPicture(
        picture=display_layout(picture),
        reconstruction=result.reconstruction[0],
        z=result.z[0],
        token=z_to_token(result.z[0]),
        pixel_rms=float(result.rms[0]),
        start_pixel_rms=float(result.start_rms[0]),
        seconds=float(result.seconds[0]),
    )


# ----------------------------------------------------------------------------------------------- CLI


def _record(result: InversionResult, i: int, source: str, checkpoint: Checkpoint, png: str, png_sha256: str) -> dict:
    """The JSON written beside one reconstruction."""
    perceptual = float(result.perceptual[i])
    return {
        "format": INVERSION_FORMAT,
        "version": INVERSION_VERSION,
        "source": source,
        "checkpoint": str(checkpoint.path),
        "generator_sha256": weights_sha256(checkpoint, "generator"),
        "z": [float(v) for v in result.z[i]],
        "z_token": z_to_token(result.z[i]),
        "z_norm": float(np.linalg.norm(result.z[i])),
        "pixel_rms": float(result.rms[i]),
        "perceptual_distance": perceptual if math.isfinite(perceptual) else None,
        "start_pixel_rms": float(result.start_rms[i]),
        "losses": {name: [float(v) for v in curve[i]] for name, curve in result.losses.items()},
        "steps": result.steps,
        "seconds": float(result.seconds[i]),
        "settings": asdict(result.settings),
        "png": png,
        "png_sha256": png_sha256,
    }


def _written_by_us(json_path: Path, png_path: Path) -> bool:
    """True when json_path is an inversion record of this tool and png_path is absent or the PNG it describes."""
    try:
        record = json.loads(json_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("format") != INVERSION_FORMAT:
        return False
    if not png_path.exists():
        return True
    try:
        return hashlib.sha256(png_path.read_bytes()).hexdigest() == record.get("png_sha256")
    except OSError:
        return False


def _outputs(out: Path, stem: str) -> tuple[Path, Path]:
    return out / f"{stem}.png", out / f"{stem}.json"


def _check_outputs(out: Path, stems: Sequence[str], overwrite: bool) -> str | None:
    """A reason to refuse, or None: an existing output this tool did not write, without --overwrite."""
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder"
    for stem in stems:
        png, record = _outputs(out, stem)
        if overwrite or not (png.exists() or record.exists()):
            continue
        if not record.exists() or not _written_by_us(record, png):
            taken = png if png.exists() else record
            return f"{taken} exists and was not written by explorer.invert; pass --overwrite to replace it"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.invert", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any size, mode and common format)")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory or training run directory")
    parser.add_argument("--out", required=True, help="folder for <stem>.png and <stem>.json per input (created)")
    defaults = InversionSettings()
    parser.add_argument("--steps", type=int, default=defaults.steps, help=f"Adam steps per image (default {defaults.steps})")
    parser.add_argument("--lr", type=float, default=defaults.lr, help=f"Adam step size (default {defaults.lr})")
    parser.add_argument(
        "--perceptual-weight", type=float, default=defaults.perceptual_weight,
        help=f"weight of the D-feature distance; 0 = pixels only (default {defaults.perceptual_weight})",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"images per batch (default {defaults.batch_size})")
    add_encoder_options(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace outputs in --out that this tool did not write")
    parser.add_argument("--dry-run", action="store_true", help="check everything, print the plan, write nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    try:
        settings = InversionSettings(
            steps=args.steps, lr=args.lr, perceptual_weight=args.perceptual_weight, batch_size=args.batch_size
        )
        training = encoder_training_from(args)
    except ValueError as exc:
        return fail(str(exc))
    stems = [Path(p).stem for p in args.images]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        return fail(f"several inputs share the file stem {clashes[0]!r}, so their outputs would collide; rename one")
    out = Path(args.out)
    reason = _check_outputs(out, stems, args.overwrite)
    if reason:
        return fail(reason)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        return fail(str(exc))
    images, problems = [], []
    for path in args.images:
        try:
            images.append(load_image_for(checkpoint, path))
        except InputImageError as exc:
            problems.append(str(exc))
    if problems:
        return fail("cannot invert these inputs (nothing was written):\n  " + "\n  ".join(problems))

    config = checkpoint.config
    found = cached_encoder(checkpoint, training)
    print(
        f"{len(images)} image(s) -> {config.image_size} px {'RGB' if config.channels == 3 else 'grey'}, "
        f"{settings.steps} steps in {math.ceil(len(images) / settings.batch_size)} batch(es) of up to {settings.batch_size}; "
        f"encoder: {'cached at ' + found[1]['path'] if found else 'none cached, will be trained first (minutes) and cached'}; "
        f"D-feature loss: {'on' if checkpoint.discriminator is not None and settings.perceptual_weight > 0 else 'off'}"
    )
    if args.dry_run:
        for stem in stems:
            print(f"  would write {_outputs(out, stem)[0]} and {_outputs(out, stem)[1]}")
        return 0

    encoder, header = found if found else load_or_train_encoder(checkpoint, training, progress_bar=not args.no_progress)
    if header.get("trained_now"):
        print(f"encoder trained in {header['quality']['seconds']:.0f} s and cached at {header['path']}")
    result = invert_images(checkpoint, np.stack(images), settings, encoder, progress_bar=not args.no_progress)
    out.mkdir(parents=True, exist_ok=True)
    for i, (source, stem) in enumerate(zip(args.images, stems)):
        png_path, json_path = _outputs(out, stem)
        data = png_bytes(result.reconstruction[i])
        atomic_write_bytes(png_path, data)
        atomic_write_json(json_path, _record(result, i, source, checkpoint, png_path.name, hashlib.sha256(data).hexdigest()))
        print(f"{source}: pixel RMS {result.rms[i]:.4f} (encoder start {result.start_rms[i]:.4f}), {result.seconds[i]:.2f} s -> {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
