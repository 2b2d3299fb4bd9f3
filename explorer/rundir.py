"""The layout of a training run folder, and reading what training wrote there.

    RUN/
      config.json          CONFIG_FILE     the resolved training options (training.run writes it)
      latest.json          LATEST_FILE     -> snapshots/step-N (explorer.checkpoint moves it atomically)
      snapshots/step-N/    SNAPSHOT_DIR    one checkpoint each (explorer.checkpoint)
      history.jsonl        HISTORY_FILE    one JSON object per log window: step, losses, D outputs, img/s
      curves.png           CURVES_FILE     losses and D outputs against step
      samples/*.png        SAMPLES_DIR     fixed-noise sample grids (epoch_001.png, ...)
      tensorboard/         TENSORBOARD_DIR
    CHECKPOINT/evaluation/ EVALUATION_DIR  figures of `python -m training.evaluate`, inside a checkpoint folder

Every module that reads or writes these names imports them from here.
"""
from __future__ import annotations

import json
from pathlib import Path

CONFIG_FILE = "config.json"
LATEST_FILE = "latest.json"
SNAPSHOT_DIR = "snapshots"
HISTORY_FILE = "history.jsonl"
CURVES_FILE = "curves.png"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
EVALUATION_DIR = "evaluation"


def parse_history(text: str) -> list[dict]:
    """The entries of a history file, skipping a torn line (a write cut short by a full disk or a kill)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            entries.append(entry)
    return entries


def read_history(run_dir: str | Path) -> list[dict]:
    """RUN/history.jsonl as a list of dicts ([] when the run has none)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    return parse_history(path.read_text())


def sample_grid_files(run_dir: str | Path) -> list[Path]:
    """RUN/samples/*.png in name order (epoch_001.png, ..., step_N.png)."""
    folder = Path(run_dir) / SAMPLES_DIR
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def evaluation_figures(checkpoint_dir: str | Path) -> list[Path]:
    """CHECKPOINT/evaluation/*.png in name order."""
    folder = Path(checkpoint_dir) / EVALUATION_DIR
    return sorted(folder.glob("*.png")) if folder.is_dir() else []
