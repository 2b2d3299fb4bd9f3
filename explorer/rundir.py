"""The layout of a training run folder: its marker, the latest-snapshot pointer, snapshot names and pruning, history.

    RUN/
      latent-lab-run.json  MARKER_FILE     written first, into a new or empty folder: the proof that
                                           training.run owns this folder and may write and delete in it
      config.json          CONFIG_FILE     the resolved training options (training.run writes it)
      latest.json          LATEST_FILE     {"snapshot": "snapshots/step-N", "step": N}, replaced atomically
      snapshots/step-N/    SNAPSHOT_DIR    one checkpoint each (explorer.checkpoint writes and reads them)
      history.jsonl        HISTORY_FILE    one JSON object per log window: step, losses, D outputs, img/s
      curves.png           CURVES_FILE     losses and D outputs against step
      samples/*.png        SAMPLES_DIR     fixed-noise sample grids (epoch_001.png, ...)
      tensorboard/         TENSORBOARD_DIR
    CHECKPOINT/evaluation/ EVALUATION_DIR  figures of `python -m training.evaluate`, inside a checkpoint folder

A folder with user files and no marker is never written to, whatever names it holds. Runs made
before the marker existed are recognised by a latest.json that leads to a latent-lab snapshot
(explorer.checkpoint checks that) and get their marker on `--resume`.

Every module that reads or writes these names imports them from here.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from explorer import values
from explorer.fsio import UnsafeFileError, atomic_write_json, read_regular_bytes, remove_stale_temps

MARKER_FILE = "latent-lab-run.json"
MARKER_FORMAT = "latent-lab-run"
CONFIG_FILE = "config.json"
LATEST_FILE = "latest.json"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_PREFIX = "step-"
HISTORY_FILE = "history.jsonl"
CURVES_FILE = "curves.png"
SAMPLES_DIR = "samples"
TENSORBOARD_DIR = "tensorboard"
EVALUATION_DIR = "evaluation"

_MAX_SMALL_JSON = 1 << 20  # marker, pointer and config files are a few hundred bytes
_MAX_CONFIG_DEPTH = 4
_MAX_HISTORY_BYTES = 512 << 20  # ~2.5 M log windows


class RunDirError(ValueError):
    """A run folder that cannot be used as asked; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------- the marker


def read_marker(run_dir: str | os.PathLike) -> dict | None:
    """The run's marker, or None when the folder has none (or a file of that name that is not ours)."""
    path = Path(run_dir) / MARKER_FILE
    if not path.exists():
        return None
    try:
        marker = values.read_json_file(path, _MAX_SMALL_JSON, max_depth=2)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else None


def folder_state(path: str | os.PathLike) -> str:
    """"missing", "file" (anything not a directory), "empty", "run" (holds our marker) or "foreign"."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return "missing"
    if not path.is_dir():
        return "file"
    if read_marker(path) is not None:
        return "run"
    return "foreign" if any(os.scandir(path)) else "empty"


def describe_contents(path: str | os.PathLike, shown: int = 5) -> str:
    """"config.json, history.jsonl and 3 more": what a folder holds, for a refusal message."""
    names = sorted(entry.name for entry in os.scandir(path))
    text = ", ".join(names[:shown])
    return text + (f" and {len(names) - shown} more" if len(names) > shown else "")


def claim_run_dir(run_dir: str | os.PathLike, adopt: bool = False) -> None:
    """Make `run_dir` this run's folder before anything else is written there: create it (or take an
    empty one) and write the marker first. A folder that already holds the marker is kept as it is.

    `adopt=True` also marks a non-empty folder; the caller must have recognised it as a run made
    before markers existed. RunDirError otherwise: nothing is written.
    """
    run_dir = Path(run_dir)
    state = folder_state(run_dir)
    if state == "run":
        return
    if state == "file":
        raise RunDirError(f"--out {run_dir} is a file, not a folder: choose a new or empty folder")
    if state == "foreign" and not adopt:
        raise RunDirError(
            f"--out {run_dir} is not empty and is not a latent-lab run (it holds {describe_contents(run_dir)}): "
            "choose a new or empty folder; nothing was written"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = {"format": MARKER_FORMAT, "format_version": 1, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if state == "foreign":
        marker["adopted"] = True  # a run from before markers existed
    atomic_write_json(run_dir / MARKER_FILE, marker)


def remove_run_temps(run_dir: str | os.PathLike) -> list[str]:
    """Temp files and folders of writers that were killed, in the run folder, snapshots/ and samples/."""
    run_dir = Path(run_dir)
    return [name for folder in (run_dir, run_dir / SNAPSHOT_DIR, run_dir / SAMPLES_DIR) for name in remove_stale_temps(folder)]


# ----------------------------------------------------------------------------------------------- config.json


def write_run_config(run_dir: str | os.PathLike, config: dict) -> None:
    atomic_write_json(Path(run_dir) / CONFIG_FILE, config)


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """RUN/config.json as a dict of its values ({} when there is none); RunDirError when unreadable.

    Only the container is checked here; training.config checks every value.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return {}
    try:
        config = values.read_json_file(path, _MAX_SMALL_JSON, _MAX_CONFIG_DEPTH)
    except ValueError as exc:
        raise RunDirError(f"cannot use {path}: {exc}") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a JSON object of training options, got {values.brief(config)}")
    return config


# ----------------------------------------------------------------------------------------------- snapshots


def snapshot_name(step: int) -> str:
    return f"{SNAPSHOT_PREFIX}{step:08d}"


def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    """The snapshot latest.json points to (resolved, inside run_dir), or None for a run without one."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if not pointer.exists():
        return None
    try:
        target = values.read_json_file(pointer, _MAX_SMALL_JSON, max_depth=2)["snapshot"]
        values.text("snapshot", target)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{pointer} is not a valid pointer file: {type(exc).__name__}: {exc}") from None
    resolved = (run_dir / target).resolve()
    if run_dir.resolve() not in resolved.parents:
        raise RunDirError(f"{pointer} points outside its run directory: {values.brief(target)}")
    return resolved


def write_latest(run_dir: str | os.PathLike, snapshot: Path, step: int) -> None:
    """Point latest.json at `snapshot` (a folder under RUN/snapshots/), atomically."""
    atomic_write_json(Path(run_dir) / LATEST_FILE, {"snapshot": f"{SNAPSHOT_DIR}/{snapshot.name}", "step": int(step)})


def prune_snapshots(run_dir: str | os.PathLike, keep: int, protect: Path) -> None:
    """Delete all but the newest `keep` snapshots (never `protect`, the one latest.json points to), and
    what killed writers left in snapshots/ (their `.old-` copies are moved back or deleted first)."""
    snapshots = Path(run_dir) / SNAPSHOT_DIR
    remove_stale_temps(snapshots)
    done = sorted(p for p in snapshots.iterdir() if p.is_dir() and p.name.startswith(SNAPSHOT_PREFIX))
    for old in done[: max(0, len(done) - keep)]:
        if old != protect:
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- history


def parse_history(text: str) -> list[dict]:
    """The entries of a history file, skipping a torn line (a write cut short by a full disk or a kill)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("step"), int):
            entries.append(entry)
    return entries


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """RUN/history.jsonl as a list of dicts ([] when the run has none, or when it is not a regular file)."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.exists():
        return []
    try:
        data = read_regular_bytes(path, _MAX_HISTORY_BYTES)
    except UnsafeFileError:
        return []
    return parse_history(data.decode("utf-8", errors="replace"))


def sample_grid_files(run_dir: str | os.PathLike) -> list[Path]:
    """RUN/samples/*.png in name order (epoch_001.png, ..., step_N.png)."""
    folder = Path(run_dir) / SAMPLES_DIR
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def evaluation_figures(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """CHECKPOINT/evaluation/*.png in name order."""
    folder = Path(checkpoint_dir) / EVALUATION_DIR
    return sorted(folder.glob("*.png")) if folder.is_dir() else []
