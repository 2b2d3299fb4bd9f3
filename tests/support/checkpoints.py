"""Checkpoints the UI tests make without training: a class-labelled one with hand-made directions in its analysis cache."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Class directions as a Fashion-MNIST analysis would hold them: Sneaker only as the raw mean difference,
# Sandal also as the conditional (cond:) and SVM variants. Unit vectors along z axes, so tests can tell them apart.
CLASS_DIRECTIONS = {"class:Sneaker": 3, "svm:Sneaker": 4, "class:Sandal": 5, "cond:Sandal": 6, "svm:Sandal": 7}


def class_checkpoint(target: Path, seed: int = 0) -> Path:
    """A 32 px grayscale DCGAN (random weights) whose meta says it learned Fashion-MNIST's classes, with
    CLASS_DIRECTIONS and SeFa cached as its directions analysis (written through the core's cache)."""
    from explorer import analysis
    from explorer.checkpoint import load_checkpoint, write_checkpoint_dir
    from explorer.directions import Direction, DirectionSet, sefa_directions
    from explorer.model import DCGANConfig, Discriminator, Generator

    torch.manual_seed(seed)
    config = DCGANConfig(image_size=32, channels=1, g_width=8, d_width=8, z_dim=16)
    meta = {"model": config.to_dict(), "step": 1, "dataset": {"spec": "fashion-mnist", "class_names": FASHION_CLASSES}}
    write_checkpoint_dir(target, meta, {"generator": Generator(config), "discriminator": Discriminator(config)})
    checkpoint = load_checkpoint(target)
    labelled = [Direction(name, np.eye(config.z_dim)[axis], "class", 0.9, f"{name}: hand-made") for name, axis in CLASS_DIRECTIONS.items()]
    directions = DirectionSet([*sefa_directions(checkpoint.generator), *labelled])
    with pytest.MonkeyPatch.context() as patch:  # the cache's own writer, with the analysis replaced by ours
        patch.setattr(analysis, "compute_directions", lambda *args, **kwargs: directions)
        analysis.load_or_compute_directions(checkpoint)
    return target


def plot_values(value) -> np.ndarray:
    """An array from plotly JSON, which stores numpy arrays as base64 typed arrays ({"dtype", "bdata"})."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def spread_checkpoint(target: Path, seed: int = 0) -> Path:
    """A 32 px RGB DCGAN (z 16, widths 8) with random weights spread so that G's pictures span Tanh's range: a fresh
    init (or a few training steps) draws near-uniform grey, on which an edit moves pixels by a level or two at most."""
    from explorer.checkpoint import write_checkpoint_dir
    from explorer.model import DCGANConfig, Discriminator, Generator

    torch.manual_seed(seed)
    config = DCGANConfig(image_size=32, channels=3, g_width=8, d_width=8, z_dim=16)
    G = Generator(config)
    with torch.no_grad():
        for module in G.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.normal_(0.0, 0.15)
    meta = {"model": config.to_dict(), "step": 1, "dataset": {"spec": "synthetic-faces:64"}}
    write_checkpoint_dir(target, meta, {"generator": G, "discriminator": Discriminator(config)})
    return target


@contextmanager
def tiny_encoder(run_dir: Path) -> Iterator[tuple]:
    """(checkpoint, encoder): an inversion encoder trained in a second (256 pairs, 1 epoch) and cached under the
    default encoder's entry, so the pages and the Gradio demo find it as they would a real one (its quality does
    not matter to them); removed afterwards."""
    from explorer.analysis import analysis_cache_path
    from explorer.checkpoint import load_checkpoint
    from explorer.encoder import EncoderTraining, _encoder_entry, load_encoder, save_encoder, train_encoder

    checkpoint = load_checkpoint(run_dir)
    encoder, stats = train_encoder(checkpoint.generator, EncoderTraining(pairs=256, epochs=1), progress_bar=False)
    filename, key = _encoder_entry(checkpoint, EncoderTraining())
    path = analysis_cache_path(checkpoint, filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_encoder(path, encoder, {"cache_key": key, "training": {}, "quality": stats})
    encoder, _ = load_encoder(path)  # the stored (fp16-rounded) weights: what the pages will load
    try:
        yield checkpoint, encoder
    finally:
        path.unlink(missing_ok=True)
