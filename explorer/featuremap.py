"""The feature map: real and generated images side by side in the discriminator's feature space.

Pipeline: `discriminator_features` (the paper's max-pooled D activations, 15360-d at 64 px) ->
PCA to 50 dimensions (denoises, and makes the neighbour search and UMAP cheap) -> UMAP to 2-d
(n_neighbors=15, min_dist=0.1). UMAP runs with random_state=None: a fixed seed forces numba's
single-threaded path, and a reproducible layout is not worth that here because the layout is
cached (`explorer.analysis`); the first 2 PCA components are kept too as a deterministic view.
umap-learn compiles its numba kernels on first use, so shipped checkpoints are precomputed with
`python -m explorer.precompute` and a UI request only reads a file. Most of that compile (~30 s
per process) is pynndescent's approximate neighbour search, which UMAP never needs here: the exact
15-nearest-neighbour graph of 10k points in 50-d takes scikit-learn ~2 s, and is handed to UMAP as
`precomputed_knn` (`_exact_knn`), leaving ~7 s of compile for the layout itself.

Generated points are the seeds seed .. seed + n_fake - 1 (so a clicked point names its latent);
real points are n_real images drawn without replacement from the dataset by np.random.default_rng(seed).
Reading a map: `point_images` (what a point shows), `point_groups` (colourings), `discriminator_accuracy`
(how well D tells the map's real points from its generated ones, which explains separated islands).
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit

from explorer.checkpoint import Checkpoint
from explorer.datasets import ImageDataset
from explorer.directions import Progress
from explorer.npzfile import load_npz, save_npz
from explorer.probe import Probe
from explorer.features import discriminator_features
from explorer.generate import generate
from explorer.images import to_uint8
from explorer.latent import z_from_seed, z_from_seeds

METHODS = ("umap", "pca")
PCA_DIMS = 50
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
CHUNK = 1000  # images per feature-extraction step: the progress bar's granularity, and bounds float memory
FEATURE_MAP_FORMAT = "latent-lab-featuremap"
FEATURE_MAP_VERSION = 1
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


# ----------------------------------------------------------------------------------------------- reading a map


def map_dataset(fmap: FeatureMap, load: Callable[[int], ImageDataset]) -> ImageDataset | None:
    """The dataset the map's real points index, via load(max_images) (its first N images suffice:
    dataset prefixes are stable). None for a generated-only map, or when the dataset cannot be read here.
    """
    if not fmap.is_real.any():
        return None
    try:
        return load(int(fmap.index[fmap.is_real].max()) + 1)
    except ValueError:  # DatasetError included
        return None


def real_images(dataset: ImageDataset | None, indices: np.ndarray) -> np.ndarray | None:
    """uint8 HWC (or HW for grayscale) images of dataset indices; None without the dataset."""
    if dataset is None:
        return None
    images = dataset.images[np.asarray(indices)].permute(0, 2, 3, 1).numpy()
    return images[..., 0] if images.shape[-1] == 1 else images


def point_images(G: torch.nn.Module, dataset: ImageDataset | None, fmap: FeatureMap, points: np.ndarray) -> list[np.ndarray | None]:
    """The uint8 image behind each map point: the dataset image for a real point (None without the
    dataset), G(z(seed)) for a generated one. Thread-safe: hover previews are rendered in the background.
    """
    points = np.asarray(points)
    out: list[np.ndarray | None] = [None] * len(points)
    real = np.flatnonzero(fmap.is_real[points])
    fake = np.flatnonzero(~fmap.is_real[points])
    if len(fake):
        generated = to_uint8(generate(G, z_from_seeds(fmap.index[points[fake]].tolist(), G.config.z_dim)))
        for j, image in zip(fake, generated):
            out[j] = image
    images = real_images(dataset, fmap.index[points[real]]) if len(real) else None
    if images is not None:
        for j, image in zip(real, images):
            out[j] = image
    return out


@dataclass
class DiscriminatorAccuracy:
    real: float | None  # share of the map's real points D scores >= 0.5 (None: no real points)
    generated: float | None  # share of its generated points D scores < 0.5 (None: no generated points)

    @property
    def balanced(self) -> float:
        """The mean of the two shares (or the one there is): 0.5 is chance, whatever the real/generated mix."""
        shares = [s for s in (self.real, self.generated) if s is not None]
        return float(np.mean(shares)) if shares else 0.0

    @property
    def note(self) -> str:
        """What D's accuracy says about the map, and what two islands of real and generated points mean."""
        parts = [f"{name} {value:.0%}" for name, value in (("real", self.real), ("generated", self.generated)) if value is not None]
        text = f"D tells real from generated on {self.balanced:.0%} of these points (balanced; {', '.join(parts)} correct)."
        if self.real is None or self.generated is None:
            return text
        if self.balanced >= 0.9:
            return text + (
                " The map is built from D's own features, and a D that wins the game separates real from generated "
                "images by construction: two islands are then expected, and are not by themselves poor coverage. "
                "Judge coverage within the islands (does every kind of real image have generated neighbours of the same "
                "kind? colour by an attribute or class) and by FID on the Model page."
            )
        return text + " D does not separate them well here, so where generated points mix with real ones, its features see them alike."


def discriminator_accuracy(fmap: FeatureMap) -> DiscriminatorAccuracy:
    """D's real/fake accuracy on the map's points at threshold 0.5 on sigmoid(D(x))."""
    real, fake = fmap.d_score[fmap.is_real], fmap.d_score[~fmap.is_real]
    return DiscriminatorAccuracy(
        real=float((real >= 0.5).mean()) if len(real) else None,
        generated=float((fake < 0.5).mean()) if len(fake) else None,
    )
