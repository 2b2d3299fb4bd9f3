"""Self-describing checkpoints: safetensors weights + meta.json, written atomically, loaded by one validating loader.

Layout of a training run directory::

    RUN/
      config.json                       resolved training config (written by the CLI)
      latest.json                       {"snapshot": "snapshots/step-00001200"}  <- replaced atomically
      snapshots/step-00001200/
        meta.json                       architecture, dataset, names, step, versions, metrics, file hashes
        generator.safetensors
        generator_ema.safetensors       (when --ema)
        discriminator.safetensors
        resume.pt                       optimizer/RNG state, read with torch.load(weights_only=True)
      samples/, tensorboard/, curves.png

A snapshot is written into a temporary directory, fsynced, renamed into place, and only then
does `latest.json` move to it, so a kill at any instant leaves the previous snapshot complete
and pointed to. A directory holding `meta.json` directly (the shipped checkpoints) is also a
checkpoint. Weights are never unpickled: safetensors only, with shapes, dtypes and SHA-256 checked
against meta.json before anything is loaded.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from explorer.model import DCGANConfig, Discriminator, Generator

FORMAT_NAME = "latent-lab-dcgan"
FORMAT_VERSION = 1
META_FILE = "meta.json"
LATEST_FILE = "latest.json"
SNAPSHOT_DIR = "snapshots"
RESUME_FILE = "resume.pt"
WEIGHT_FILES = {
    "generator": "generator.safetensors",
    "generator_ema": "generator_ema.safetensors",
    "discriminator": "discriminator.safetensors",
}
_FLOAT_DTYPES = {"F32", "F16", "BF16"}
_MAX_META_BYTES = 4 * 1024 * 1024  # a meta.json is a few KB; refuse to parse a huge one


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, foreign or inconsistent. The message says which file and why."""


# ----------------------------------------------------------------------------------------------- writing


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # not supported on every platform/filesystem
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace: readers see old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import safetensors
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
    }


def _state_for_saving(module: torch.nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    # torch.compile wraps modules (keys gain "_orig_mod."); DDP adds "module.": save the plain module's keys.
    module = getattr(module, "_orig_mod", module)
    module = getattr(module, "module", module)
    state = {}
    for key, tensor in module.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous()
    return state


def snapshot_name(step: int) -> str:
    return f"step-{step:08d}"


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def _exchange_dirs(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # not glibc >= 2.28 (or not Linux)
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the filesystem or kernel cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def _replace_dir(new: Path, target: Path) -> None:
    """Move the complete directory `new` to `target`, replacing an existing one (re-saving the same step,
    re-exporting) with no instant at which a kill leaves neither.

    Where the kernel can swap the two atomically, `new` then holds the old contents and is deleted;
    elsewhere the old one is first renamed aside to `.old-NAME-PID`, which the loader reads
    (`_or_aside`) if a kill lands between the two renames.
    """
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange_dirs(new, target):
        shutil.rmtree(new, ignore_errors=True)
        return
    aside = target.with_name(f".old-{target.name}-{os.getpid()}")
    os.rename(target, aside)
    os.rename(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def _or_aside(target: Path) -> Path:
    """`target`, or for a missing one the complete `.old-` copy a killed `_replace_dir` left beside it.

    Read-only on purpose: a reader must not move directories under a live writer.
    """
    if target.exists():
        return target
    for aside in sorted(target.parent.glob(f".old-{target.name}-*")):
        if (aside / META_FILE).is_file():
            return aside
    return target


def write_checkpoint_dir(
    target: Path,
    meta: dict,
    modules: dict[str, torch.nn.Module],
    resume_state: dict | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> None:
    """Write a complete checkpoint directory at `target` (replacing it), via a fsynced temp sibling + rename.

    `meta` must hold "model" (DCGANConfig dict) and "step"; format, versions and file hashes are
    added here. If anything fails, `target` is as it was and the temp directory is removed.
    """
    step = int(meta["step"])
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir(parents=True)
        files = {}
        for role, module in modules.items():
            name = WEIGHT_FILES[role]
            save_file(_state_for_saving(module, weights_dtype), str(tmp / name), metadata={"step": str(step), "role": role})
            files[role] = {"name": name, "sha256": _sha256(tmp / name)}
        if resume_state is not None:
            torch.save(resume_state, tmp / RESUME_FILE)
        full_meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            **meta,
            "files": files,
            "versions": {**library_versions(), **meta.get("versions", {})},
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(tmp / META_FILE, full_meta)
        for child in tmp.iterdir():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        _replace_dir(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_snapshot(
    run_dir: str | os.PathLike,
    meta: dict,
    modules: dict[str, torch.nn.Module],
    resume_state: dict | None = None,
    keep: int = 2,
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write one complete snapshot of `modules` (keys from WEIGHT_FILES) and then point latest.json at it.

    Older snapshots beyond `keep` are pruned after the pointer moves. On any failure (ENOSPC, a
    kill) the previous snapshot and latest.json are untouched; an OSError is re-raised naming the
    previous snapshot, which is still the run's checkpoint.
    """
    run_dir = Path(run_dir)
    snapshots = run_dir / SNAPSHOT_DIR
    snapshots.mkdir(parents=True, exist_ok=True)
    final = snapshots / snapshot_name(int(meta["step"]))
    previous = latest_snapshot(run_dir)
    try:
        write_checkpoint_dir(final, meta, modules, resume_state, weights_dtype)
        atomic_write_json(run_dir / LATEST_FILE, {"snapshot": f"{SNAPSHOT_DIR}/{final.name}", "step": int(meta["step"])})
    except OSError as exc:
        where = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise OSError(exc.errno, f"checkpoint write to {run_dir} failed ({exc.strerror or exc}); {where}") from exc
    _prune(snapshots, keep=keep, protect=final)
    return final


def export_checkpoint(
    source: str | os.PathLike,
    target: str | os.PathLike,
    weights_dtype: torch.dtype = torch.float16,
    include_discriminator: bool = True,
    prefer_ema: bool = True,
) -> Path:
    """A flat, shippable copy of a checkpoint: one generator (the EMA one when present), D, meta; no resume state.

    fp16 halves the size (the explorer computes in float32 after loading).
    """
    checkpoint = load_checkpoint(source, prefer_ema=prefer_ema, load_discriminator=include_discriminator)
    meta = {k: v for k, v in checkpoint.meta.items() if k not in ("format", "format_version", "files", "saved_at")}
    meta["exported_from"] = {"path": str(checkpoint.path), "generator": checkpoint.generator_kind, "dtype": str(weights_dtype)}
    modules = {"generator": checkpoint.generator}
    if checkpoint.discriminator is not None:
        modules["discriminator"] = checkpoint.discriminator
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint_dir(target, meta, modules, None, weights_dtype)
    return target


def _prune(snapshots: Path, keep: int, protect: Path) -> None:
    done = sorted(p for p in snapshots.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[: max(0, len(done) - keep)]:
        if old != protect:
            shutil.rmtree(old, ignore_errors=True)
    # Left by a killed writer. An .old- copy matters only while latest.json may point to its missing
    # snapshot; pruning runs after latest.json moved to `protect`, which exists.
    for stale in [*snapshots.glob(".tmp-*"), *snapshots.glob(".old-*")]:
        shutil.rmtree(stale, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- reading


def latest_snapshot(run_dir: str | os.PathLike) -> Path | None:
    """The snapshot latest.json points to, or None for a run without one (validated to stay inside run_dir)."""
    run_dir = Path(run_dir)
    pointer = run_dir / LATEST_FILE
    if not pointer.is_file():
        return None
    try:
        target = json.loads(pointer.read_text())["snapshot"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{pointer} is not a valid pointer file: {exc}") from exc
    resolved = (run_dir / str(target)).resolve()
    if run_dir.resolve() not in resolved.parents:
        raise CheckpointError(f"{pointer} points outside its run directory: {target!r}")
    return resolved


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """A snapshot directory (holds meta.json) from a snapshot or a run directory (holds latest.json)."""
    path = Path(path)
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    path = _or_aside(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a checkpoint directory (a checkpoint is a directory with meta.json and "
            "safetensors weights; pickled .pt/.pkl files are never loaded)"
        )
    if (path / META_FILE).is_file():
        return path
    snapshot = latest_snapshot(path)
    if snapshot is not None:
        snapshot = _or_aside(snapshot)
        if not (snapshot / META_FILE).is_file():
            raise CheckpointError(f"{path}/latest.json points to {snapshot}, which has no {META_FILE}")
        return snapshot
    raise CheckpointError(f"{path} is not a checkpoint: it has neither {META_FILE} nor {LATEST_FILE}")


def _upgrade_meta(meta: dict, source: Path) -> dict:
    """Bring an older meta.json up to FORMAT_VERSION, one version step at a time (StyleGAN legacy.py style).

    Version 1 is the first released format, so there is nothing to upgrade yet; a newer file than
    this code understands is refused rather than guessed at.
    """
    version = meta.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{source}: format_version missing or not an integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: written by a newer latent-lab (format {version}, this code reads up to {FORMAT_VERSION}); upgrade latent-lab"
        )
    upgrades: dict[int, Any] = {}  # version -> function(meta) -> meta of version + 1
    while version < FORMAT_VERSION:
        meta = upgrades[version](meta)
        version = meta["format_version"]
    return meta


def read_meta(path: str | os.PathLike) -> tuple[Path, dict]:
    """(snapshot dir, validated meta dict). Raises CheckpointError with a clear message."""
    snapshot = resolve_checkpoint_dir(path)
    meta_path = snapshot / META_FILE
    if meta_path.stat().st_size > _MAX_META_BYTES:
        raise CheckpointError(f"{meta_path} is {meta_path.stat().st_size} bytes: too large for a meta file")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{meta_path} is not a latent-lab checkpoint (format is not {FORMAT_NAME!r})")
    meta = _upgrade_meta(meta, meta_path)
    try:
        DCGANConfig.from_dict(meta["model"])
        int(meta["step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_path}: invalid model config or step: {exc}") from exc
    files = meta.get("files")
    if not isinstance(files, dict) or "generator" not in files:
        raise CheckpointError(f"{meta_path}: 'files' must list at least the generator weights")
    for role, entry in files.items():
        if role not in WEIGHT_FILES or not isinstance(entry, dict) or entry.get("name") != WEIGHT_FILES[role]:
            raise CheckpointError(f"{meta_path}: unexpected weight file entry {role!r}: {entry!r}")
    return snapshot, meta


def _read_weights(file: Path, expected_sha256: str | None, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check hash, keys, shapes and dtypes from the safetensors header against `expected`, then read the tensors.

    `expected` may hold meta-device tensors: only their shapes and float-ness are used.
    """
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    if expected_sha256 is not None and _sha256(file) != expected_sha256:
        raise CheckpointError(f"{file} does not match the SHA-256 in meta.json: truncated, corrupted or replaced")
    try:
        with safe_open(str(file), framework="pt") as f:
            keys = set(f.keys())
            missing, unexpected = set(expected) - keys, keys - set(expected)
            if missing or unexpected:
                raise CheckpointError(
                    f"{file} does not fit the architecture in meta.json: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
                )
            state = {}
            for key, want in expected.items():
                sl = f.get_slice(key)
                shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
                if shape != tuple(want.shape):
                    raise CheckpointError(
                        f"{file}: tensor {key} has shape {shape}, the architecture in meta.json needs {tuple(want.shape)}"
                    )
                if want.is_floating_point() and dtype not in _FLOAT_DTYPES:
                    raise CheckpointError(f"{file}: tensor {key} has dtype {dtype}, expected a float type")
                if not want.is_floating_point() and dtype != "I64":
                    raise CheckpointError(f"{file}: tensor {key} has dtype {dtype}, expected I64")
                state[key] = f.get_tensor(key)
    except SafetensorError as exc:
        raise CheckpointError(f"{file} is not a readable safetensors file: {exc}") from exc
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{file}: tensor {key} holds NaN or Inf values")
    return state


def _load_weights(file: Path, expected_sha256: str | None, module: torch.nn.Module) -> None:
    """`_read_weights` against an existing module's state, then copy into it."""
    expected = module.state_dict()
    state = _read_weights(file, expected_sha256, expected)
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def _build_checked(cls: type, config: DCGANConfig, file: Path, expected_sha256: str | None) -> torch.nn.Module:
    """`cls(config)` with the validated weights of `file`, allocated only after they fit.

    The architecture comes from meta.json, which may lie: a claimed g_width of 10**5 would ask for
    terabytes before any weight is looked at. The expected shapes come from a meta-device model (no
    memory), so a file that does not fit is refused before the real model is built, and a real model
    is never larger than its weight file.
    """
    with torch.device("meta"):
        expected = cls(config).state_dict()
    state = _read_weights(file, expected_sha256, expected)
    module = cls(config)
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return module


@dataclass
class Checkpoint:
    path: Path  # the snapshot directory
    meta: dict
    config: DCGANConfig
    generator: Generator  # EMA weights when present and asked for; eval mode, float32
    discriminator: Discriminator | None
    uses_ema: bool = False

    @property
    def generator_kind(self) -> str:
        """"ema" or "raw": which generator the images come from, exports included.

        An export holds one generator file whatever it was exported from, so its meta's
        `exported_from` is the truth there; otherwise the loader's choice (EMA when the run kept one).
        """
        exported = self.meta.get("exported_from") or {}
        if exported.get("generator") in ("ema", "raw"):
            return exported["generator"]
        return "ema" if self.uses_ema else "raw"

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def dataset(self) -> dict:
        return self.meta.get("dataset", {})

    @property
    def attribute_names(self) -> list[str]:
        return list(self.dataset.get("attribute_names") or [])

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.get("class_names") or [])


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    prefer_ema: bool = True,
    load_discriminator: bool = True,
) -> Checkpoint:
    """The one loader: validate meta.json and every weight file, then build the eval-mode models."""
    snapshot, meta = read_meta(path)
    config = DCGANConfig.from_dict(meta["model"])
    files = meta["files"]
    use_ema = prefer_ema and "generator_ema" in files
    role = "generator_ema" if use_ema else "generator"
    generator = _build_checked(Generator, config, snapshot / files[role]["name"], files[role].get("sha256"))
    discriminator = None
    if load_discriminator and "discriminator" in files:
        entry = files["discriminator"]
        discriminator = _build_checked(Discriminator, config, snapshot / entry["name"], entry.get("sha256"))
        discriminator.to(device).eval()
    generator.to(device).eval()
    return Checkpoint(path=snapshot, meta=meta, config=config, generator=generator, discriminator=discriminator, uses_ema=use_ema)


def load_resume_state(path: str | os.PathLike) -> dict:
    """Optimizer/RNG state for --resume. weights_only=True: tensors and plain containers only, no code."""
    file = Path(path) / RESUME_FILE
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: this checkpoint cannot be resumed (exported checkpoints drop it)")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a hostile file, RuntimeError/EOFError for a truncated one
        raise CheckpointError(f"{file} cannot be read as resume state ({type(exc).__name__}: {exc})") from exc


def load_module_weights(snapshot: Path, meta: dict, role: str, module: torch.nn.Module) -> None:
    """Validated load of one role's weights into an existing module (used by --resume)."""
    entry = meta["files"].get(role)
    if entry is None:
        raise CheckpointError(f"{snapshot} has no {role} weights")
    _load_weights(snapshot / entry["name"], entry.get("sha256"), module)
