"""A checkpoint picked in a UI: the snapshot it resolves to, its identity for caches, and its run folder.

A listed or typed path may be a run directory (whose latest snapshot moves on while training
runs) or one snapshot. `model_key` pins the snapshot and hashes its meta.json, so a UI cache keyed
on it never serves a model whose weights were replaced; `run_dir_for` finds where the run's
history and sample grids live.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from explorer.checkpoint import META_FILE, Checkpoint, CheckpointError, resolve_checkpoint_dir
from explorer.rundir import SNAPSHOT_DIR


class ModelKey(NamedTuple):
    """What identifies a loaded model in the UIs' caches: the snapshot directory and its meta.json hash.

    A tuple of strings hashes cheaply in st.cache_*.
    """

    path: str
    meta_sha: str

    @property
    def short(self) -> str:
        return self.meta_sha[:16]


def model_key(path: str | os.PathLike) -> ModelKey:
    """Resolve a listed/typed checkpoint path to its snapshot and hash its meta.json (CheckpointError if unusable)."""
    snapshot = resolve_checkpoint_dir(path)
    try:
        sha = hashlib.sha256((snapshot / META_FILE).read_bytes()).hexdigest()
    except OSError as exc:
        raise CheckpointError(f"cannot read {snapshot / META_FILE}: {exc}") from exc
    return ModelKey(str(snapshot), sha)


def run_dir_for(listed: Path, snapshot: Path) -> Path:
    """The training run folder of a checkpoint: the listed folder, or RUN for a typed RUN/snapshots/step-N."""
    if snapshot.parent.name == SNAPSHOT_DIR and listed == snapshot:
        return snapshot.parent.parent
    return listed


def training_grid_kind(checkpoint: Checkpoint) -> str | None:
    """Which generator drew the run's sample grids: "ema" when training kept an EMA generator (the grids then come
    from it), "raw" otherwise; None when the checkpoint does not record its training options.
    """
    training = checkpoint.meta.get("training")
    if not isinstance(training, dict) or "ema" not in training:
        return None
    return "ema" if training["ema"] else "raw"
