"""Which checkpoints the apps offer, and the confinement of paths that users type.

The apps list what lies under `checkpoints/` (the shipped defaults plus anything trained or
exported there, e.g. `checkpoints/my-run` or `checkpoints/experiments/run-3`). A path typed into
an app is only accepted inside that folder: the apps may be served to other people, and a
checkpoint path is the only file path they take from the browser.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from explorer.checkpoint import META_FILE, CheckpointError, read_meta
from explorer.checkpoint_meta import check_model
from explorer.fsio import is_inside
from explorer.rundir import LATEST_FILE

CHECKPOINTS_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED_CHECKPOINTS = ("synthetic-faces-64", "fashion-mnist-32")  # listed first, in this order
DEFAULT_CHECKPOINT = SHIPPED_CHECKPOINTS[0]
MAX_DEPTH = 2  # checkpoints/NAME or checkpoints/GROUP/NAME; deeper folders are snapshots' insides


@dataclass
class CheckpointInfo:
    name: str  # path relative to the root, "/"-separated, e.g. "experiments/run-3"
    path: Path  # the listed directory; loading a run directory picks its latest snapshot at load time
    step: int | None  # None when the checkpoint is broken
    dataset_spec: str | None  # e.g. "synthetic-faces" or "fashion-mnist"
    image_size: int | None
    channels: int | None
    metrics: dict = field(default_factory=dict)  # last logged training window, {} for exported ones
    error: str | None = None  # why the checkpoint cannot be used (CheckpointError text), else None


def _is_candidate(directory: Path) -> bool:
    """A directory that `resolve_checkpoint_dir` would treat as a checkpoint (flat or run directory).

    exists(), not is_file(): a FIFO or a link out of the folder named meta.json is listed with its error.
    """
    return (directory / META_FILE).exists() or (directory / LATEST_FILE).exists()


def _info(directory: Path, root: Path) -> CheckpointInfo:
    name = directory.relative_to(root).as_posix()
    try:
        # meta.json only: hashing every weight file would make listing slow; load_checkpoint verifies them.
        # read_meta validates every value it returns, so nothing below can fail on a crafted file.
        _, meta = read_meta(directory)
    except (CheckpointError, OSError) as exc:
        return CheckpointInfo(name, directory, None, None, None, None, {}, str(exc) or type(exc).__name__)
    config = check_model("model", meta["model"])
    return CheckpointInfo(
        name=name,
        path=directory,
        step=meta["step"],
        dataset_spec=(meta.get("dataset") or {}).get("spec"),
        image_size=config.image_size,
        channels=config.channels,
        metrics=dict(meta.get("metrics") or {}),
    )


def _sort_key(info: CheckpointInfo) -> tuple[int, str]:
    shipped = SHIPPED_CHECKPOINTS.index(info.name) if info.name in SHIPPED_CHECKPOINTS else len(SHIPPED_CHECKPOINTS)
    return shipped, info.name


def list_checkpoints(root: str | os.PathLike = CHECKPOINTS_ROOT) -> list[CheckpointInfo]:
    """Every checkpoint directory up to MAX_DEPTH levels under `root`; never raises.

    Broken checkpoints (unreadable meta.json, dangling latest.json, foreign format, any crafted
    value, a link out of the folder) are listed with `error` set, so the app can say why instead of
    hiding them. Hidden directories (such as a killed writer's `.tmp-*`) are skipped. Shipped
    defaults come first, then the rest by name.
    """
    root = Path(root)
    found: list[CheckpointInfo] = []
    level = [root]
    for _ in range(MAX_DEPTH):
        deeper = []
        for parent in level:
            try:
                children = sorted(parent.iterdir())
            except OSError:  # missing root, permission denied
                continue
            for child in children:
                try:
                    if child.name.startswith(".") or not child.is_dir():
                        continue
                    candidate = _is_candidate(child)
                    outside = candidate and not is_inside(child, root)
                except (OSError, RuntimeError):  # EACCES on a folder we may not enter, a symlink loop
                    continue
                if outside:
                    error = f"{child.name} links to {child.resolve()}, outside the checkpoints folder: refused"
                    found.append(CheckpointInfo(child.relative_to(root).as_posix(), child, None, None, None, None, {}, error))
                elif candidate:
                    found.append(_info(child, root))
                else:
                    deeper.append(child)
        level = deeper
    return sorted(found, key=_sort_key)


def resolve_user_path(text: str, allowed_roots: tuple[str | os.PathLike, ...] = (CHECKPOINTS_ROOT,)) -> Path:
    """The absolute, symlink-free path for a checkpoint path typed by a user, or ValueError.

    `~` is expanded; a relative path is taken relative to the first allowed root (the user sees
    checkpoint names like "experiments/run-3", not the server's working directory). After
    `Path.resolve()` (which follows symlinks and removes "..") the path must be one of the roots
    or inside one. The path need not exist; the checkpoint loader reports missing ones.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the checkpoint path is empty")
    if "\x00" in text:
        raise ValueError("the checkpoint path contains a NUL character")
    roots = [Path(r).expanduser().resolve() for r in allowed_roots]
    if not roots:
        raise ValueError("no allowed checkpoint folders are configured")
    try:
        path = Path(text.strip()).expanduser()
        resolved = (roots[0] / path).resolve()  # an absolute `path` replaces roots[0] here
    except (OSError, RuntimeError) as exc:  # RuntimeError: "~user" for an unknown user, or a symlink loop
        raise ValueError(f"cannot resolve the checkpoint path {text!r}: {exc}") from None
    if not any(resolved == r or r in resolved.parents for r in roots):
        folders = ", ".join(str(r) for r in roots)
        raise ValueError(f"{text!r} is outside the checkpoints folder ({folders}); only checkpoints inside it can be opened")
    return resolved
