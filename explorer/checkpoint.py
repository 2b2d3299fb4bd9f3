"""Self-describing checkpoints: safetensors weights + meta.json, written atomically, loaded by one validating loader.

A checkpoint is a directory::

    meta.json                       architecture, dataset, names, step, versions, metrics, file hashes
                                    (explorer.checkpoint_meta validates every value)
    generator.safetensors
    generator_ema.safetensors       (when --ema)
    discriminator.safetensors
    resume.pt                       optimizer/RNG state, read with torch.load(weights_only=True)

Training writes them as RUN/snapshots/step-N (explorer.rundir: the run folder, its latest.json
pointer and pruning); `training.export` writes a flat one (the shipped checkpoints). A snapshot is
written into a temporary directory, fsynced, renamed into place, and only then does latest.json
move to it, so a kill at any instant leaves the previous snapshot complete and pointed to; a write
that fails (full disk, any OS error) raises CheckpointWriteError naming that intact snapshot.

Reading never trusts the files: meta.json is validated before anything is built; weights are never
unpickled (safetensors only, with shapes, dtypes and SHA-256 checked against meta.json first);
every file read must be a regular file inside the checkpoint (no symlink out of it, no FIFO,
device or /proc file).
"""
from __future__ import annotations

import errno
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from explorer import rundir
from explorer.checkpoint_meta import FORMAT_NAME, FORMAT_VERSION, MAX_DEPTH, MAX_META_BYTES, META_FILE, RESUME_FILE, WEIGHT_FILES
from explorer.checkpoint_meta import check_model, validate_meta
from explorer.fsio import UnsafeFileError, atomic_write_json, check_regular, fsync_dir, is_inside, or_aside, remove_stale_temps
from explorer.fsio import replace_dir, sha256_file
from explorer.model import DCGANConfig, Discriminator, Generator, meta_model
from explorer.rundir import LATEST_FILE, SNAPSHOT_DIR, RunDirError, snapshot_name
from explorer.values import brief, read_json_file

_FLOAT_DTYPES = {"F32", "F16", "BF16"}


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, foreign or inconsistent. The message says which file and why."""


class CheckpointWriteError(OSError):
    """Writing a snapshot failed (full disk, I/O error, ...); the message names the snapshot left intact."""


# ----------------------------------------------------------------------------------------------- writing


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


def _as_os_error(exc: Exception, path: Path) -> OSError:
    """safetensors reports a failed write as SafetensorError and torch.save as RuntimeError ("unexpected pos"):
    the same failure as an OSError, with the errno its message names, else ENOSPC when the disk is (nearly)
    full, else EIO."""
    text = str(exc)
    code = next((c for c in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO) if os.strerror(c) in text), None)
    if code is None:
        try:
            usage = os.statvfs(path.parent)
            code = errno.ENOSPC if usage.f_bavail * usage.f_frsize < (1 << 20) else errno.EIO
        except OSError:
            code = errno.EIO
    return OSError(code, f"{os.strerror(code)} while writing {path.name} ({type(exc).__name__}: {text.strip()[:200]})", str(path))


def _write_weights(module: torch.nn.Module, path: Path, metadata: dict, dtype: torch.dtype) -> None:
    try:
        save_file(_state_for_saving(module, dtype), str(path), metadata=metadata)
    except SafetensorError as exc:
        raise _as_os_error(exc, path) from exc


def _write_resume(resume_state: dict, path: Path) -> None:
    try:
        torch.save(resume_state, path)
    except RuntimeError as exc:
        raise _as_os_error(exc, path) from exc


def write_checkpoint_dir(
    target: Path,
    meta: dict,
    modules: dict[str, torch.nn.Module],
    resume_state: dict | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> None:
    """Write a complete checkpoint directory at `target` (replacing it), via a fsynced temp sibling + rename.

    `meta` must hold "model" (DCGANConfig dict) and "step"; format, versions and file hashes are
    added here. If anything fails, `target` is as it was, the temp directory is removed, and the
    failure is an OSError (also for safetensors' and torch.save's own error types).
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
            _write_weights(module, tmp / name, {"step": str(step), "role": role}, weights_dtype)
            files[role] = {"name": name, "sha256": sha256_file(tmp / name)}
        if resume_state is not None:
            _write_resume(resume_state, tmp / RESUME_FILE)
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
        fsync_dir(tmp)
        replace_dir(tmp, target)
        fsync_dir(target.parent)
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

    What killed writers left is removed first; older snapshots beyond `keep` are pruned after the
    pointer moves. On any failure (ENOSPC, a kill) the previous snapshot and latest.json are untouched;
    an OS error is raised as CheckpointWriteError naming the previous snapshot, still the run's checkpoint.
    """
    run_dir = Path(run_dir)
    step = int(meta["step"])
    final = run_dir / SNAPSHOT_DIR / snapshot_name(step)
    try:
        previous = rundir.latest_snapshot(run_dir)
    except RunDirError:
        previous = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        rundir.remove_run_temps(run_dir)
        write_checkpoint_dir(final, meta, modules, resume_state, weights_dtype)
        rundir.write_latest(run_dir, final, step)
    except OSError as exc:
        where = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointWriteError(exc.errno, f"checkpoint write to {run_dir} failed ({exc.strerror or exc}); {where}") from exc
    rundir.prune_snapshots(run_dir, keep=keep, protect=final)
    return final


# What `training.export` and the tools that run on a checkpoint folder write into it, besides the
# weights and meta.json: an export target holding anything else is someone else's folder.
EXPORT_CONTENTS = {
    META_FILE, *WEIGHT_FILES.values(), rundir.HISTORY_FILE, rundir.CURVES_FILE, rundir.CONFIG_FILE, rundir.SAMPLES_DIR,
    rundir.EVALUATION_DIR, "analysis",  # explorer.featuremap's cache of directions, probes and feature maps
}


def check_export_target(target: Path, source: Path) -> None:
    """Refuse an export target that is not new, empty, or an earlier export holding only what latent-lab writes.

    An export replaces its target whole, so any other folder would lose its files (a typo such as
    `~` would empty a home folder). Of an earlier export, what a killed export left is removed.
    """
    if source.exists() and (is_inside(target, source) or is_inside(source, target)):
        raise CheckpointError(f"the export target {target} and the checkpoint {source} overlap: choose a separate folder")
    state = rundir.folder_state(target)
    if state in ("missing", "empty"):
        return
    if state == "file":
        raise CheckpointError(f"the export target {target} is a file: choose a new or empty folder")
    if state == "run":
        raise CheckpointError(f"the export target {target} is a training run folder: choose a new or empty folder")
    try:
        _, meta = read_meta(target)
    except (CheckpointError, OSError):
        meta = {}
    if "exported_from" not in meta:
        raise CheckpointError(
            f"the export target {target} is not empty and is not an exported checkpoint (it holds "
            f"{rundir.describe_contents(target)}): choose a new or empty folder; nothing was written"
        )
    remove_stale_temps(target)
    foreign = sorted(entry.name for entry in os.scandir(target) if entry.name not in EXPORT_CONTENTS)
    if foreign:
        raise CheckpointError(
            f"the export target {target} is an earlier export but also holds {', '.join(foreign[:5])}, which "
            "latent-lab did not write; replacing it would delete them: move them away or choose another folder"
        )


def export_checkpoint(
    source: str | os.PathLike,
    target: str | os.PathLike,
    weights_dtype: torch.dtype = torch.float16,
    include_discriminator: bool = True,
    prefer_ema: bool = True,
    extra_meta: dict | None = None,
) -> Path:
    """A flat, shippable copy of a checkpoint: one generator (the EMA one when present), D, meta; no resume state.

    fp16 halves the size (the explorer computes in float32 after loading). The target must be new,
    empty or an earlier export (`check_export_target`): nothing else is ever replaced.
    """
    target = Path(target)
    check_export_target(target, Path(source))
    checkpoint = load_checkpoint(source, prefer_ema=prefer_ema, load_discriminator=include_discriminator)
    meta = {k: v for k, v in checkpoint.meta.items() if k not in ("format", "format_version", "files", "saved_at")}
    meta["exported_from"] = {"path": str(checkpoint.path), "generator": checkpoint.generator_kind, "dtype": str(weights_dtype)}
    meta.update(extra_meta or {})  # e.g. the exporter's "training_command"
    modules = {"generator": checkpoint.generator}
    if checkpoint.discriminator is not None:
        modules["discriminator"] = checkpoint.discriminator
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, only_for=target.name)  # a killed export's temp or aside copy of this target
    write_checkpoint_dir(target, meta, modules, None, weights_dtype)
    return target


# ----------------------------------------------------------------------------------------------- reading


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """A snapshot directory (holds meta.json) from a snapshot or a run directory (holds latest.json)."""
    path = Path(path)
    if path.is_file() and path.name == META_FILE:
        path = path.parent
    path = or_aside(path, META_FILE)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the path does not exist")
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a checkpoint directory (a checkpoint is a directory with meta.json and "
            "safetensors weights; pickled .pt/.pkl files are never loaded)"
        )
    if (path / META_FILE).exists() or (path / META_FILE).is_symlink():
        _checked_file(path, META_FILE)  # callers may read it: never a FIFO, device or a link out
        return path
    try:
        snapshot = rundir.latest_snapshot(path)
    except RunDirError as exc:
        raise CheckpointError(str(exc)) from None
    if snapshot is not None:
        snapshot = or_aside(snapshot, META_FILE)
        if not (snapshot / META_FILE).is_file():
            raise CheckpointError(f"{path}/{LATEST_FILE} points to {snapshot}, which has no {META_FILE}")
        return snapshot
    raise CheckpointError(f"{path} is not a checkpoint: it has neither {META_FILE} nor {LATEST_FILE}")


def _checked_file(snapshot: Path, name: str) -> Path:
    """snapshot/name, refused unless it is a regular file inside the snapshot (symlinks followed)."""
    path = snapshot / name
    if not path.exists():
        raise CheckpointError(f"{path} is missing")
    if not is_inside(path, snapshot):
        raise CheckpointError(f"{path} is a link to {path.resolve()}, outside the checkpoint: refused")
    try:
        check_regular(path)
    except UnsafeFileError as exc:
        raise CheckpointError(str(exc)) from None
    return path


def _sha256(path: Path) -> str:
    """SHA-256 of a weight file (a regular file: a FIFO would block the read)."""
    check_regular(path)
    return sha256_file(path)


def read_meta(path: str | os.PathLike) -> tuple[Path, dict]:
    """(snapshot dir, validated meta dict). Raises CheckpointError with a clear message for any content."""
    snapshot = resolve_checkpoint_dir(path)
    meta_path = _checked_file(snapshot, META_FILE)
    try:
        raw = read_json_file(meta_path, MAX_META_BYTES, MAX_DEPTH)
    except ValueError as exc:  # its message names the file
        raise CheckpointError(str(exc)) from None
    try:
        meta = validate_meta(raw)
    except ValueError as exc:
        raise CheckpointError(f"{meta_path}: {exc}") from None
    return snapshot, meta


def _read_weights(file: Path, expected_sha256: str | None, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Check hash, keys, shapes and dtypes from the safetensors header against `expected`, then read the tensors.

    `expected` may hold meta-device tensors: only their shapes and float-ness are used.
    """
    file = _checked_file(file.parent, file.name)
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
    expected = meta_model(cls, config).state_dict()
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
        return self.meta.get("dataset") or {}

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
    config = check_model("model", meta["model"])
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


def load_resume_state(snapshot: str | os.PathLike, step: int) -> dict:
    """Optimizer/RNG state for --resume, checked against the snapshot's `step` (from its validated meta).

    torch.load(weights_only=True): tensors and plain containers only, no code. The container is
    checked here; whether the optimizer states fit the models is checked when they are loaded.
    """
    file = Path(snapshot) / RESUME_FILE
    if not file.exists():
        raise CheckpointError(f"{file} is missing: this checkpoint cannot be resumed (exported checkpoints drop it)")
    file = _checked_file(Path(snapshot), RESUME_FILE)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for a hostile file, RuntimeError/EOFError for a truncated one
        raise CheckpointError(f"{file} cannot be read as resume state ({type(exc).__name__}: {str(exc)[:300]})") from exc
    problem = None
    if not isinstance(state, dict) or not {"step", "opt_g", "opt_d", "torch_rng"} <= set(state):
        problem = "it lacks the step, optimizer or RNG state"
    elif type(state["step"]) is not int or state["step"] != step:
        problem = f"its step {brief(state['step'])} is not the snapshot's step {step} in {META_FILE}"
    elif not (isinstance(state["opt_g"], dict) and isinstance(state["opt_d"], dict)):
        problem = "its optimizer states are not dictionaries"
    elif not (isinstance(state["torch_rng"], torch.Tensor) and state["torch_rng"].dtype == torch.uint8 and state["torch_rng"].dim() == 1):
        problem = "its RNG state is not a byte tensor"
    elif not isinstance(state.get("scaler", {}), dict):
        problem = "its gradient-scaler state is not a dictionary"
    if problem:
        raise CheckpointError(f"{file} is not valid resume state: {problem}")
    return state


def load_module_weights(snapshot: Path, meta: dict, role: str, module: torch.nn.Module) -> None:
    """Validated load of one role's weights into an existing module (used by --resume)."""
    entry = meta["files"].get(role)
    if entry is None:
        raise CheckpointError(f"{snapshot} has no {role} weights")
    _load_weights(snapshot / entry["name"], entry.get("sha256"), module)
