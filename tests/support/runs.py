"""Tiny `python -m training.run` runs for tests: 32 px, widths 8, z 16, batch 8 (a step takes milliseconds)."""
from __future__ import annotations

from pathlib import Path

from training.run import main

TINY_RUN = ["--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "8", "--no-progress",
            "--no-tensorboard", "--log-every", "1", "--dataset", "synthetic-faces:64"]


def train_tiny(out: Path, *extra: str) -> int:
    """training.run's main on the tiny config into `out`; its exit code."""
    return main(["--out", str(out), *TINY_RUN, *extra])
