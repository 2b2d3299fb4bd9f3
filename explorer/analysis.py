"""The one analysis cache: directions, the attribute probe and feature maps of a checkpoint, and the app's lookups.

Results live in <checkpoint>/analysis/ (where `python -m explorer.precompute` writes them), or,
when that is not writable, in $LATENT_LAB_CACHE or ~/.cache/latent-lab/<generator sha256>/. A
cached .npz carries its cache key (generator and discriminator SHA-256 plus the build parameters)
in its JSON header; a mismatch (a retrained generator) means rebuild and replace, written
atomically. `load_or_*` build on a miss; `cached_*` and `find_*` are lookups alone, for request
paths that must never start a build. Both UIs read through here: `available_directions` (SeFa,
always, plus whatever is cached) and `app_probe` (the cached probe, else a small fit).
"""
from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from explorer.checkpoint import Checkpoint, _sha256
from explorer.datasets import DatasetError, ImageDataset, load_dataset
from explorer.directions import DirectionSet, Progress, compute_directions, load_directions, save_directions, sefa_directions
from explorer.npzfile import npz_header
from explorer.probe import Probe, fit_attribute_probe, load_probe, save_probe
from explorer.featuremap import METHODS, FeatureMap, build_feature_map, load_feature_map, save_feature_map
from explorer.refine_directions import RefineSettings

CACHE_VERSION = 1  # bump when a change in this code changes what a cached file would contain
ANALYSIS_DIR = "analysis"
PROBE_IMAGES = 4000  # real images an in-app probe fit may read: a few hundred per attribute value
PROBE_PER_CLASS = 300
REFINE = RefineSettings()  # cond: directions are refined at the slider's full offset (explorer/refine_directions.py)
_UNREADABLE = (OSError, ValueError, KeyError, zipfile.BadZipFile)



def weights_sha256(checkpoint: Checkpoint, role: str) -> str | None:
    """SHA-256 of the weights file behind `role` ("generator" = the one loaded, EMA if used; or "discriminator")."""
    if role == "generator" and checkpoint.uses_ema:
        role = "generator_ema"
    entry = checkpoint.meta["files"].get(role)
    if entry is None:
        return None
    return entry.get("sha256") or _sha256(checkpoint.path / entry["name"])


def _cache_dirs(checkpoint: Checkpoint) -> tuple[Path, Path]:
    """(<checkpoint>/analysis, the per-user cache folder for this generator): read in this order."""
    user = Path(os.environ.get("LATENT_LAB_CACHE") or Path.home() / ".cache" / "latent-lab")
    return checkpoint.path / ANALYSIS_DIR, user / weights_sha256(checkpoint, "generator")


def cached_analysis_files(checkpoint: Checkpoint, pattern: str) -> list[Path]:
    """Cached analysis files matching `pattern` (e.g. "featuremap-*.npz") built from this checkpoint's G and D.

    For pages that list every cached build (any parameters) without building one; files whose
    cache key names other weights or another cache version, or that cannot be read, are left out.
    """
    want = _cache_key(checkpoint, {})  # the weights and cache version, whatever the build parameters
    found = []
    for directory in _cache_dirs(checkpoint):
        for path in sorted(directory.glob(pattern)):
            try:
                cache_key = npz_header(path).get("cache_key") or {}
            except (OSError, ValueError, zipfile.BadZipFile):
                continue
            if all(cache_key.get(k) == v for k, v in want.items()):
                found.append(path)
    return found


def analysis_cache_path(checkpoint: Checkpoint, filename: str) -> Path:
    """Where a cached `filename` is written: <checkpoint>/analysis/ if writable (or creatable), else the user cache."""
    analysis, user = _cache_dirs(checkpoint)
    writable = os.access(analysis, os.W_OK) if analysis.is_dir() else os.access(checkpoint.path, os.W_OK)
    return (analysis if writable else user) / filename


def _load_cached(
    checkpoint: Checkpoint, filename: str, parameters: dict[str, Any], dataset: ImageDataset | None, load: Callable[[Path], Any]
) -> Any | None:
    """The cache lookup: `load` of the first copy of `filename` whose header has the right key, or None.

    The key is the generator and discriminator SHA-256 plus `parameters`. A copy built without a
    dataset is not accepted when a dataset is now given (it would lack the real images/attributes);
    one built with a dataset serves callers without one, so a UI that has no dataset still gets
    precomputed results. Unreadable or foreign copies count as missing.
    """
    key = _cache_key(checkpoint, parameters)
    for directory in _cache_dirs(checkpoint):
        path = directory / filename
        if not path.is_file():
            continue
        try:
            header = npz_header(path)
            if header.get("cache_key") == key and (dataset is None or header.get("cache_dataset") is not None):
                return load(path)
        except _UNREADABLE:
            continue
    return None


def _cache_key(checkpoint: Checkpoint, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "cache_version": CACHE_VERSION,
        "generator_sha256": weights_sha256(checkpoint, "generator"),
        "discriminator_sha256": weights_sha256(checkpoint, "discriminator"),
        **parameters,
    }


def _load_or_build(
    checkpoint: Checkpoint,
    filename: str,
    parameters: dict[str, Any],
    dataset: ImageDataset | None,
    build: Callable[[], Any],
    save: Callable[[Path, Any, Mapping], None],
    load: Callable[[Path], Any],
) -> Any:
    """The one cache: `_load_cached`, else build and save atomically (replacing a stale or broken copy).

    When no cache folder is writable the result is returned uncached, with a warning.
    """
    cached = _load_cached(checkpoint, filename, parameters, dataset, load)
    if cached is not None:
        return cached
    result = build()
    target = analysis_cache_path(checkpoint, filename)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        header = {"cache_key": _cache_key(checkpoint, parameters), "cache_dataset": None if dataset is None else dataset.spec}
        save(target, result, header)
    except OSError as exc:
        warnings.warn(f"could not cache {filename} at {target}: {exc}", stacklevel=3)
    return result


LazyProbe = Probe | Callable[[], Probe | None] | None


def _resolve(probe: LazyProbe) -> Probe | None:
    """A probe, or a zero-argument function that fits one: called only when a cache miss needs it."""
    return probe() if callable(probe) else probe


def _feature_map_entry(n_real: int, n_fake: int, seed: int, method: str) -> tuple[str, dict[str, Any]]:
    """(cache file name, key parameters) of a feature map."""
    parameters = {"kind": "featuremap", "n_real": n_real, "n_fake": n_fake, "seed": seed, "method": method}
    return f"featuremap-{method}-real{n_real}-fake{n_fake}-seed{seed}.npz", parameters


def _directions_entry(k: int, n_samples: int, seed: int) -> tuple[str, dict[str, Any]]:
    """(cache file name, key parameters) of a direction set."""
    # the refinement settings are part of the key: a cache of projected-only cond: directions is stale
    parameters = {"kind": "directions", "k": k, "n_samples": n_samples, "seed": seed, "refine": REFINE.key()}
    return f"directions-k{k}-samples{n_samples}-seed{seed}.npz", parameters


def _probe_entry(max_per_class: int, seed: int) -> tuple[str, dict[str, Any]]:
    return f"probe-perclass{max_per_class}-seed{seed}.npz", {"kind": "probe", "max_per_class": max_per_class, "seed": seed}


def cached_probe(checkpoint: Checkpoint) -> Probe | None:
    """A cached attribute probe for this checkpoint's weights, any parameters (the most labels first), or None.

    A lookup that never fits: shipped checkpoints carry one in analysis/, so the app's auto-fill and
    map colouring skip the fit (~25 s on 2 cores).
    """
    readable = []
    for path in cached_analysis_files(checkpoint, "probe-*.npz"):
        try:
            readable.append((npz_header(path)["cache_key"].get("max_per_class", 0), path))
        except _UNREADABLE:
            continue
    for _, path in sorted(readable, key=lambda entry: -entry[0]):
        try:
            return load_probe(path)
        except _UNREADABLE:
            continue
    return None


def load_or_fit_probe(
    checkpoint: Checkpoint, dataset: ImageDataset | Callable[[], ImageDataset], max_per_class: int = 1000, seed: int = 0
) -> Probe:
    """`fit_attribute_probe` on D's features through the cache; `dataset` may be a function, called only to fit.

    ValueError without a discriminator, or (from the fit) for a dataset without labels.
    """
    D = checkpoint.discriminator
    if D is None:
        raise ValueError(f"{checkpoint.path} has no discriminator, whose features the probe reads")

    def fit() -> Probe:
        data = dataset() if callable(dataset) else dataset
        return fit_attribute_probe(D, data, max_per_class=max_per_class, seed=seed)

    return _load_or_build(checkpoint, *_probe_entry(max_per_class, seed), None, fit, save_probe, load_probe)


def feature_map_cache_path(
    checkpoint: Checkpoint, n_real: int = 5000, n_fake: int = 5000, seed: int = 0, method: str = "umap"
) -> Path:
    return analysis_cache_path(checkpoint, _feature_map_entry(n_real, n_fake, seed, method)[0])


def cached_feature_map(
    checkpoint: Checkpoint,
    dataset: ImageDataset | None = None,
    n_real: int = 5000,
    n_fake: int = 5000,
    seed: int = 0,
    method: str = "umap",
) -> FeatureMap | None:
    """The cached feature map for these parameters, or None: a lookup that never builds (for request paths)."""
    return _load_cached(checkpoint, *_feature_map_entry(n_real, n_fake, seed, method), dataset, load_feature_map)


def cached_directions(
    checkpoint: Checkpoint, dataset: ImageDataset | None = None, k: int = 10, n_samples: int = 5000, seed: int = 0
) -> DirectionSet | None:
    """The cached directions for these parameters, or None: a lookup that never computes."""
    return _load_cached(checkpoint, *_directions_entry(k, n_samples, seed), dataset, load_directions)


def load_or_build_feature_map(
    checkpoint: Checkpoint,
    dataset: ImageDataset | None = None,
    n_real: int = 5000,
    n_fake: int = 5000,
    seed: int = 0,
    method: str = "umap",
    probe: LazyProbe = None,
    progress: Progress | None = None,
) -> FeatureMap:
    """`build_feature_map` through the cache (the probe is not part of the key: it only adds fake labels).

    `probe` may be a function returning one, so that a cache hit never pays for fitting it.
    """
    return _load_or_build(
        checkpoint,
        *_feature_map_entry(n_real, n_fake, seed, method),
        dataset,
        lambda: build_feature_map(checkpoint, dataset, n_real, n_fake, seed, method, _resolve(probe), progress),
        save_feature_map,
        load_feature_map,
    )


def load_or_compute_directions(
    checkpoint: Checkpoint,
    dataset: ImageDataset | None = None,
    k: int = 10,
    n_samples: int = 5000,
    seed: int = 0,
    probe: LazyProbe = None,
    progress: Progress | None = None,
) -> DirectionSet:
    """`compute_directions` through the same cache as the feature map; `probe` as in `load_or_build_feature_map`."""
    return _load_or_build(
        checkpoint,
        *_directions_entry(k, n_samples, seed),
        dataset,
        lambda: compute_directions(checkpoint, dataset, k, n_samples, seed, _resolve(probe), progress, refine=REFINE),
        save_directions,
        load_directions,
    )


# ----------------------------------------------------------------------------------------------- the apps' lookups


def analysis_signature(checkpoint: Checkpoint) -> tuple[tuple[str, int], ...]:
    """(path, mtime_ns) of every file in the cache folders: changes when an analysis is written, for UI caches."""
    found = []
    for directory in _cache_dirs(checkpoint):
        if directory.is_dir():
            found += [(str(p), p.stat().st_mtime_ns) for p in sorted(directory.glob("*.npz"))]
    return tuple(found)


def find_directions(checkpoint: Checkpoint) -> tuple[DirectionSet | None, str | None]:
    """The newest cached direction set of any build parameters, or None; and a problem to show, or None."""
    for path in sorted(cached_analysis_files(checkpoint, "directions-*.npz"), key=lambda p: -p.stat().st_mtime_ns):
        try:
            return load_directions(path), None
        except _UNREADABLE as exc:
            return None, f"the directions file {path} cannot be read ({exc}); compute them again"
    return None, None


def available_directions(checkpoint: Checkpoint) -> tuple[DirectionSet, bool, str | None]:
    """(every direction the explorer can offer, whether an analysis was cached, a problem or None).

    SeFa is closed form (milliseconds) and always there; GANSpace and the labelled (attr:, class:,
    svm:, cond:) directions only when the cache holds an analysis. Its `skipped` says what could not be made.
    """
    cached, problem = find_directions(checkpoint)
    found = DirectionSet(sefa_directions(checkpoint.generator))
    if cached is not None:
        found.update(cached)
        found.skipped.update(cached.skipped)
    return found, cached is not None, problem


def find_feature_maps(checkpoint: Checkpoint) -> list[Path]:
    """Cached feature-map files for these weights (any parameters): by layout method in METHODS order (UMAP first),
    then <checkpoint>/analysis before the user cache."""
    files = cached_analysis_files(checkpoint, "featuremap-*.npz")
    return sorted(files, key=lambda p: next((i for i, m in enumerate(METHODS) if f"featuremap-{m}-" in p.name), len(METHODS)))


def load_real_dataset(checkpoint: Checkpoint, max_images: int) -> ImageDataset:
    """The checkpoint's training set (its first `max_images`) at its size and channels; DatasetError if unavailable here."""
    spec = checkpoint.dataset.get("spec")
    if not spec:
        raise DatasetError("the checkpoint does not record which dataset it was trained on")
    cfg = checkpoint.config
    return load_dataset(spec, image_size=cfg.image_size, channels=cfg.channels, max_images=max_images)


def app_probe(checkpoint: Checkpoint, dataset: Callable[[], ImageDataset] | None = None) -> Probe:
    """The attribute/class probe on D's features for the apps: a cached one (any parameters, most labels first), else
    one fitted on PROBE_IMAGES real images (seconds to a minute) and cached beside the directions.

    `dataset` loads the images for a fit (default: `load_real_dataset`). ValueError (DatasetError included)
    without a discriminator, or when the dataset cannot be read here or has no labels.
    """
    cached = cached_probe(checkpoint) if checkpoint.discriminator is not None else None
    if cached is not None:
        return cached
    load = dataset or (lambda: load_real_dataset(checkpoint, PROBE_IMAGES))
    return load_or_fit_probe(checkpoint, load, max_per_class=PROBE_PER_CLASS)
