"""The feature-map page's data: real and generated images side by side in the discriminator's feature space.

Pipeline: `discriminator_features` (the paper's max-pooled D activations, 15360-d at 64 px) ->
PCA to 50 dimensions (denoises, and makes the neighbour search and UMAP cheap) -> UMAP to 2-d
(n_neighbors=15, min_dist=0.1). UMAP runs with random_state=None: a fixed seed forces numba's
single-threaded path, and a reproducible layout is not worth that here because the layout is
cached (see below); the first 2 PCA components are kept too as a deterministic view. umap-learn
compiles its numba kernels on first use, so shipped checkpoints are precomputed with
`python -m explorer.precompute` and a UI request only reads a file. Most of that compile (~30 s
per process) is pynndescent's approximate neighbour search, which UMAP never needs here: the exact
15-nearest-neighbour graph of 10k points in 50-d takes scikit-learn ~2 s, and is handed to UMAP as
`precomputed_knn` (`_exact_knn`), leaving ~7 s of compile for the layout itself.

Generated points are the seeds seed .. seed + n_fake - 1 (so a clicked point names its latent);
real points are n_real images drawn without replacement from the dataset by np.random.default_rng(seed).

Caching: results live in <checkpoint>/analysis/ (where precompute writes them), or, when that is
not writable, in $LATENT_LAB_CACHE or ~/.cache/latent-lab/<generator sha256>/. A cached .npz
carries its cache key (generator and discriminator SHA-256 plus the build parameters) in its
JSON header; a mismatch (a retrained generator) means rebuild and replace, written atomically.
Directions use the same mechanism (`load_or_compute_directions`). `cached_feature_map` and
`cached_directions` are the lookups alone, for request paths that must never start a build.
"""
from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from explorer.checkpoint import Checkpoint, _sha256
from explorer.datasets import ImageDataset
from explorer.directions import DirectionSet, Progress, compute_directions, load_directions, save_directions
from explorer.npzfile import load_npz, npz_header, save_npz
from explorer.probe import Probe, fit_attribute_probe, load_probe, save_probe
from explorer.features import discriminator_features
from explorer.generate import generate
from explorer.images import png_bytes
from explorer.latent import z_from_seed, z_from_seeds

METHODS = ("umap", "pca")
PCA_DIMS = 50
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
CHUNK = 1000  # images per feature-extraction step: the progress bar's granularity, and bounds float memory
FEATURE_MAP_FORMAT = "latent-lab-featuremap"
FEATURE_MAP_VERSION = 1
CACHE_VERSION = 1  # bump when a change in this code changes what a cached file would contain
ANALYSIS_DIR = "analysis"
UNKNOWN = -1  # label value for a generated point when no probe labelled it


@dataclass
class FeatureMap:
    coords_umap: np.ndarray | None  # (N, 2) float32; None when built with method="pca"
    coords_pca: np.ndarray  # (N, 2) float32: the first two principal components of the features
    is_real: np.ndarray  # (N,) bool; real points come first
    index: np.ndarray  # (N,) int64: dataset index for a real point, seed for a generated one
    labels: np.ndarray | None  # classes: (N,) int64 class index; attributes: (N, A) int8 0/1; UNKNOWN = -1
    label_names: list[str]  # class names or attribute names (the columns of an attribute matrix)
    label_kind: str | None  # "class", "attribute" or None (no labels)
    d_score: np.ndarray  # (N,) float32 sigmoid(D(x)): D's probability that the image is real
    features_pca50: np.ndarray  # (N, min(50, N, F)) float32 for neighbour queries
    dataset_spec: str | None  # where the real points come from; None for a generated-only map


def _label_layout(dataset: ImageDataset | None, probe: Probe | None) -> tuple[str | None, list[str], np.ndarray | None]:
    """(label_kind, label_names, ground truth of the whole dataset or None): the dataset's labels, else the probe's columns."""
    if dataset is not None and dataset.attributes is not None:
        return "attribute", list(dataset.attribute_names), dataset.attributes.numpy().astype(np.int8)
    if dataset is not None and dataset.labels is not None:
        return "class", list(dataset.class_names or []), dataset.labels.numpy().astype(np.int64)
    if probe is not None:
        return probe.kind, list(probe.names), None
    return None, [], None


def _predicted_labels(probe: Probe | None, features: np.ndarray, label_kind: str, label_names: list[str]) -> np.ndarray:
    """The probe's labels for `features` (N, F) in the layout of `_label_layout`; UNKNOWN where it has no column."""
    n = len(features)
    if label_kind == "attribute":
        labels = np.full((n, len(label_names)), UNKNOWN, dtype=np.int8)
    else:
        labels = np.full(n, UNKNOWN, dtype=np.int64)
    if probe is None or probe.kind != label_kind or n == 0:
        return labels
    proba = probe.predict_proba(features)
    if label_kind == "class":
        column_to_class = np.array([label_names.index(name) for name in probe.names])
        labels[:] = column_to_class[proba.argmax(axis=1)]
    else:
        for j, name in enumerate(probe.names):
            labels[:, label_names.index(name)] = proba[:, j] >= 0.5
    return labels


def _exact_knn(points: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-nearest-neighbour graph in umap-learn's `precomputed_knn` layout: (N, k) int32 indices, float32 distances.

    Column 0 is the point itself at distance 0, as UMAP expects, even among duplicate points
    (scikit-learn's self-query leaves each point out, then we prepend it).
    """
    from sklearn.neighbors import NearestNeighbors

    distances, indices = NearestNeighbors(n_neighbors=k - 1).fit(points).kneighbors()
    n = len(points)
    return (np.c_[np.arange(n), indices].astype(np.int32), np.c_[np.zeros(n), distances].astype(np.float32))


@torch.no_grad()
def build_feature_map(
    checkpoint: Checkpoint,
    dataset: ImageDataset | None = None,
    n_real: int = 5000,
    n_fake: int = 5000,
    seed: int = 0,
    method: str = "umap",
    probe: Probe | None = None,
    progress: Progress | None = None,
) -> FeatureMap:
    """Features of n_real dataset images and n_fake generated ones -> PCA(50) -> 2-d layout (see the module doc).

    dataset=None gives a generated-only map. method="pca" skips UMAP (coords_umap is None): no
    numba compile, for tests and quick looks. A probe, when given, labels the generated points.
    Raises ValueError without a discriminator (the features are D's) or with no points at all.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    G, D = checkpoint.generator, checkpoint.discriminator
    if D is None:
        raise ValueError(f"{checkpoint.path} has no discriminator: the feature map is built from its features")
    report = progress or (lambda fraction, message: None)
    real_index = np.zeros(0, dtype=np.int64)
    if dataset is not None:
        real_index = np.sort(np.random.default_rng(seed).choice(len(dataset), size=min(n_real, len(dataset)), replace=False))
    seeds = np.arange(seed, seed + n_fake, dtype=np.int64)
    total = len(real_index) + len(seeds)
    if total == 0:
        raise ValueError("the feature map needs at least one real or generated image")

    def batches():  # (images, what): real uint8 images, then generated ones, CHUNK at a time
        for start in range(0, len(real_index), CHUNK):
            yield dataset.images[real_index[start : start + CHUNK]], "real"
        for start in range(0, len(seeds), CHUNK):
            yield generate(G, z_from_seeds(seeds[start : start + CHUNK].tolist(), G.config.z_dim)), "generated"

    features, logits, done = [], [], 0
    for images, what in batches():
        chunk_features, chunk_logits = discriminator_features(D, images, return_logits=True)
        features.append(chunk_features)
        logits.append(chunk_logits)
        done += len(images)
        report(0.8 * done / total, f"features of {what} images ({done}/{total})")
    features = np.concatenate(features)

    # Real points keep the dataset's own labels; generated ones get the probe's (UNKNOWN without a probe).
    label_kind, label_names, truth = _label_layout(dataset, probe)
    labels = None
    if label_kind is not None:
        labels = _predicted_labels(probe, features, label_kind, label_names)
        if truth is not None:
            labels[: len(real_index)] = truth[real_index]

    report(0.85, "PCA")
    from sklearn.decomposition import PCA  # scikit-learn loads (~1 s) only when a map is built, not on the app's cold start

    pca = PCA(n_components=min(PCA_DIMS, *features.shape), random_state=seed)
    reduced = pca.fit_transform(features).astype(np.float32)
    del features  # (N, 15360) float32 is ~600 MB at 10k points; UMAP only needs the 50-d copy
    coords_umap = None
    if method == "umap":
        report(0.88, "nearest-neighbour graph")
        neighbors = min(UMAP_NEIGHBORS, total - 1)
        knn = _exact_knn(reduced, neighbors) if neighbors >= 2 else (None, None, None)
        report(0.9, "UMAP (the first run in a process compiles numba kernels, ~7 s)")
        import umap  # imported here: importing umap-learn alone takes seconds

        reducer = umap.UMAP(n_neighbors=neighbors, min_dist=UMAP_MIN_DIST, n_components=2, random_state=None, precomputed_knn=knn)
        with warnings.catch_warnings():
            # says transform() needs an NNDescent index: true, and the map never transforms new points
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            coords_umap = reducer.fit_transform(reduced).astype(np.float32)
    report(1.0, f"feature map of {len(real_index)} real and {len(seeds)} generated images")
    return FeatureMap(
        coords_umap=coords_umap,
        coords_pca=np.ascontiguousarray(reduced[:, :2]),
        is_real=np.r_[np.ones(len(real_index), bool), np.zeros(len(seeds), bool)],
        index=np.r_[real_index, seeds].astype(np.int64),
        labels=labels,
        label_names=label_names,
        label_kind=label_kind,
        d_score=expit(np.concatenate(logits)).astype(np.float32),
        features_pca50=reduced,
        dataset_spec=None if dataset is None else dataset.spec,
    )


def nearest_real(
    feature_map: FeatureMap,
    i: int,
    k: int = 5,
    space: str = "feature",
    dataset: ImageDataset | None = None,
    generator: torch.nn.Module | None = None,
) -> np.ndarray:
    """Dataset indices (k,) of the real points nearest to point i, nearest first: the memorisation check.

    space="feature": Euclidean in the map's 50-d PCA feature space. space="pixel": Euclidean on raw
    pixels of the map's real images, which needs `dataset`, and for a generated point i also the
    `generator` to re-render its seed (a brute-force pass over the real images as float32: ~250 MB
    and well under a second for 5000 RGB images at 64 px). A real point's own index comes back first.
    """
    real = np.flatnonzero(feature_map.is_real)
    if len(real) == 0:
        raise ValueError("this feature map has no real images to compare with")
    if space == "feature":
        candidates, query = feature_map.features_pca50[real], feature_map.features_pca50[i]
    elif space == "pixel":
        if dataset is None:
            raise ValueError("space='pixel' needs the dataset the map's real images come from")
        # pixels as float in [0, 255], (C*H*W,) per image
        candidates = dataset.images[feature_map.index[real]].flatten(1).float().numpy()
        if feature_map.is_real[i]:
            query = dataset.images[feature_map.index[i]].flatten().float().numpy()
        elif generator is None:
            raise ValueError("space='pixel' for a generated point needs the generator to re-render its seed")
        else:
            z = z_from_seed(int(feature_map.index[i]), generator.config.z_dim)[None]
            query = ((generate(generator, z)[0] + 1.0) * 127.5).flatten().numpy()
    else:
        raise ValueError(f"space must be 'feature' or 'pixel', got {space!r}")
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=min(k, len(real))).fit(candidates)
    _, nearest = search.kneighbors(query[None])
    return feature_map.index[real[nearest[0]]]


REAL_VS_GENERATED = "real vs generated"
ALL_CLASSES = "class"


def point_groups(fmap: FeatureMap, by: str) -> list[tuple[str, np.ndarray]]:
    """Categorical colourings of the map for either UI: (legend name, point indices) per category, empty ones included.

    by = REAL_VS_GENERATED: real / generated. ALL_CLASSES (a class-labelled map): every class, then
    "unlabelled". A label name: for an attribute NAME / not NAME / unlabelled; for a class NAME /
    other classes / unlabelled. "unlabelled" holds generated points that no probe labelled.
    Raises ValueError for anything else.
    """
    if by == REAL_VS_GENERATED:
        return [("real", np.flatnonzero(fmap.is_real)), ("generated", np.flatnonzero(~fmap.is_real))]
    if fmap.labels is None or (by != ALL_CLASSES and by not in fmap.label_names) or (by == ALL_CLASSES and fmap.label_kind != "class"):
        raise ValueError(f"this feature map has no colouring {by!r}")
    if fmap.label_kind == "attribute":  # labels (N, A) 0/1 per attribute
        column = fmap.labels[:, fmap.label_names.index(by)]
        groups = [(by, column == 1), (f"not {by}", column == 0)]
    elif by == ALL_CLASSES:  # labels (N,) class index
        column = fmap.labels
        groups = [(name, column == c) for c, name in enumerate(fmap.label_names)]
    else:
        column, c = fmap.labels, fmap.label_names.index(by)
        groups = [(by, column == c), ("other classes", (column != c) & (column != UNKNOWN))]
    return [(name, np.flatnonzero(mask)) for name, mask in groups] + [("unlabelled", np.flatnonzero(column == UNKNOWN))]


def point_hover_text(fmap: FeatureMap, indices: np.ndarray) -> list[str]:
    """Hover text per point: which image it is (dataset index or seed) and D's realism score."""
    return [f"{'real #' if r else 'seed '}{n}<br>D(x) {d:.2f}" for r, n, d in zip(fmap.is_real[indices], fmap.index[indices], fmap.d_score[indices])]


def thumbnail_png(images_uint8: torch.Tensor | np.ndarray, i: int) -> bytes:
    """PNG of image i of a dataset-layout uint8 batch (N, C, H, W), for hover previews."""
    image = np.asarray(images_uint8[i]).transpose(1, 2, 0)  # (H, W, C)
    return png_bytes(image[..., 0] if image.shape[-1] == 1 else image)


# ----------------------------------------------------------------------------------------------- files


def save_feature_map(path: str | os.PathLike, feature_map: FeatureMap, extra_header: Mapping | None = None) -> None:
    arrays = {
        name: getattr(feature_map, name)
        for name in ("coords_umap", "coords_pca", "is_real", "index", "labels", "d_score", "features_pca50")
        if getattr(feature_map, name) is not None
    }
    header = {
        "format": FEATURE_MAP_FORMAT,
        "version": FEATURE_MAP_VERSION,
        "label_names": feature_map.label_names,
        "label_kind": feature_map.label_kind,
        "dataset_spec": feature_map.dataset_spec,
        **(extra_header or {}),
    }
    save_npz(path, arrays, header)


def load_feature_map(path: str | os.PathLike) -> FeatureMap:
    arrays, header = load_npz(path)
    if header.get("format") != FEATURE_MAP_FORMAT or header.get("version") != FEATURE_MAP_VERSION:
        raise ValueError(f"{path} is not a latent-lab feature map of version {FEATURE_MAP_VERSION}")
    return FeatureMap(
        coords_umap=arrays.get("coords_umap"),
        coords_pca=arrays["coords_pca"],
        is_real=arrays["is_real"],
        index=arrays["index"],
        labels=arrays.get("labels"),
        label_names=header["label_names"],
        label_kind=header["label_kind"],
        d_score=arrays["d_score"],
        features_pca50=arrays["features_pca50"],
        dataset_spec=header["dataset_spec"],
    )


# ----------------------------------------------------------------------------------------------- caching


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
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
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
    parameters = {"kind": "directions", "k": k, "n_samples": n_samples, "seed": seed}
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
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            continue
    for _, path in sorted(readable, key=lambda entry: -entry[0]):
        try:
            return load_probe(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
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
        lambda: compute_directions(checkpoint, dataset, k, n_samples, seed, _resolve(probe), progress),
        save_directions,
        load_directions,
    )
