"""Interpretable directions in z: unsupervised (SeFa, GANSpace) and supervised (attribute/class probes).

Every direction is a unit vector in z space (z_dim,): the explorer moves a latent along it,
z + alpha * d, with alpha in the prior's units (z ~ N(0, I), so alpha = 3 is a large edit).

* SeFa (Shen & Zhou 2021, "Closed-Form Factorization of Latent Semantics in GANs"): the first
  layer maps z linearly to a 4x4 map; the z directions that this map stretches most are the
  top eigenvectors of A A^T. No sampling, milliseconds.
* GANSpace (Härkönen et al. 2020): PCA of an early layer's activations over random z, moved back
  into z by linear regression (the paper's recipe for models without an intermediate w space).
* Attribute / class directions: a linear probe on the discriminator's features (Radford et al.'s
  feature extractor, `explorer.features`) labels real images' attributes; it then labels generated
  samples, and the z's of confidently positive vs negative samples give a mean-difference
  direction and an InterFaceGAN-style (Shen et al. 2020) linear-SVM normal.
* `conditional_direction` projects other directions out (InterFaceGAN's conditional
  manipulation), e.g. Smiling without drifting Male.

Directions are saved as .npz (vectors) plus a JSON header inside the same file, read back with
allow_pickle=False, so a directions file can never execute code.
"""
from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import scipy.special
import torch
from torch import nn

from explorer.checkpoint import Checkpoint
from explorer.fsio import atomic_write_bytes
from explorer.datasets import ImageDataset
from explorer.features import discriminator_features
from explorer.generate import eval_mode, generate
from explorer.latent import z_from_seeds

if TYPE_CHECKING:  # scikit-learn (~1 s to import) loads only when a probe or GANSpace is fitted: not on the app's cold start
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import Pipeline

KINDS = ("sefa", "ganspace", "attribute", "class")
DIRECTIONS_FORMAT = "latent-lab-directions"
DIRECTIONS_VERSION = 1
MIN_CONFIDENT = 20  # confident positives and negatives each needed before fitting a direction
MIN_PROBE_EXAMPLES = 10  # positive and negative training images each needed before fitting an attribute's probe
PROBE_HOLDOUT = 0.25  # share of the probe's (and the SVM's) samples kept back to measure accuracy
# The probe sees standardised features through a whitened PCA: lbfgs on all 15360 raw dims needs
# hundreds of iterations per attribute (~45 s each on 2 cores), on 512 whitened components < 20.
# Measured on synthetic faces with the 64 px net: 512 components lose a few points of held-out
# accuracy against the full features (Smiling 0.71 vs 0.77); 256 lose more.
PROBE_COMPONENTS = 512
# The L2 strength is picked per model by 3-fold cross-validated log-loss: `attribute_directions`
# thresholds the probe's probabilities, so they must be calibrated, and a fixed strong penalty
# squeezes them all towards 0.5 (the picked C ranged from 0.01 to 1 across attributes).
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0)

Progress = Callable[[float, str], None]  # fraction done in [0, 1], message for the UI


@dataclass
class Direction:
    name: str  # unique within a set: "sefa:0", "ganspace:3", "attr:Smiling", "svm:Smiling", "class:Sneaker"
    vector: np.ndarray  # (z_dim,) float32; normalised to unit length on construction
    kind: str  # one of KINDS
    score: float | None  # eigenvalue share, explained variance ratio or held-out accuracy (see description)
    description: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"direction kind must be one of {KINDS}, got {self.kind!r}")
        vector = np.asarray(self.vector, dtype=np.float64).reshape(-1)
        norm = np.linalg.norm(vector)
        if not np.isfinite(norm) or norm == 0:
            raise ValueError(f"direction {self.name!r} has a zero or non-finite vector")
        self.vector = (vector / norm).astype(np.float32)
        self.score = None if self.score is None else float(self.score)


class DirectionSet(dict):
    """dict name -> Direction, plus `skipped`: name -> why no direction could be made (shown in the UI)."""

    def __init__(self, directions: Sequence[Direction] = (), skipped: Mapping[str, str] | None = None):
        super().__init__((d.name, d) for d in directions)
        self.skipped: dict[str, str] = dict(skipped or {})


# ----------------------------------------------------------------------------------------------- unsupervised


def sefa_directions(G: nn.Module, k: int = 10) -> list[Direction]:
    """Top-k eigenvectors of A A^T (z_dim x z_dim), A = the first ConvTranspose weight as (z_dim, W * 16).

    Eval-mode batchnorm right after that conv multiplies channel c by gamma_c / sqrt(var_c + eps);
    it is part of the same linear map from z to the first activations, so A includes it (otherwise
    channels that BN shrinks would still steer the factorisation). score = eigenvalue / sum of all.
    """
    conv, bn = G.blocks[0][0], G.blocks[0][1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()  # (W,)
    A = (conv.weight.detach().double() * scale[None, :, None, None]).reshape(conv.weight.shape[0], -1).numpy()
    eigenvalues, eigenvectors = np.linalg.eigh(A @ A.T)  # ascending; columns are unit, orthogonal
    order = np.argsort(eigenvalues)[::-1][: min(k, len(eigenvalues))]
    share = eigenvalues / eigenvalues.sum()
    directions = []
    for rank, i in enumerate(order):
        v = eigenvectors[:, i]
        v = v * np.sign(v[np.argmax(np.abs(v))])  # eigh's sign is arbitrary: make the largest component positive
        description = f"SeFa eigenvector {rank}: {share[i]:.1%} of the first layer's stretch"
        directions.append(Direction(f"sefa:{rank}", v, "sefa", share[i], description))
    return directions


@torch.no_grad()
def ganspace_directions(G: nn.Module, k: int = 10, n_samples: int = 4000, layer: int = 0, seed: int = 0) -> list[Direction]:
    """GANSpace for a z-input generator: PCA of blocks[layer]'s flattened activations, regressed back to z.

    z for seeds seed .. seed + n_samples - 1 -> activations X (n, C*H*W) -> PCA coordinates
    C (n, k) -> least squares Z ~ C @ U; row i of U (normalised) is the z direction that moves
    along principal component i. score = that component's explained variance ratio.
    """
    from sklearn.decomposition import PCA
    z_dim = G.config.z_dim
    z = z_from_seeds(range(seed, seed + n_samples), z_dim)
    first_blocks = nn.Sequential(*G.blocks[: layer + 1])
    device = next(G.parameters()).device
    with eval_mode(G):
        activations = torch.cat([first_blocks(c.reshape(-1, z_dim, 1, 1).to(device)).flatten(1).cpu() for c in z.split(500)])
    pca = PCA(n_components=min(k, n_samples, activations.shape[1]), random_state=seed)
    coords = pca.fit_transform(activations.numpy())  # (n, k)
    U = np.linalg.lstsq(coords, z.numpy(), rcond=None)[0]  # (k, z_dim)
    return [
        Direction(
            f"ganspace:{i}", U[i], "ganspace", ratio,
            f"GANSpace component {i} of block {layer}: {ratio:.1%} of its activation variance",
        )
        for i, ratio in enumerate(pca.explained_variance_ratio_)
    ]


# ----------------------------------------------------------------------------------------------- supervised


@dataclass
class Probe:
    """Linear probe on discriminator features: per attribute, or one multinomial over classes.

    Fitted (`fit_attribute_probe`) as StandardScaler -> PCA(whiten) -> logistic regression, all
    linear up to the last sigmoid/softmax, so it is kept folded into one affine map of the raw
    features: logits = features @ weight + bias. That predicts exactly what the scikit-learn
    pipeline does (to float rounding), is small ((F, columns) float32: 600 KB at 64 px) and saves
    as plain arrays (`save_probe`), so a cached probe never needs pickle.
    """

    kind: str  # "attribute" (one binary model per name) or "class" (one multinomial model)
    names: list[str]  # the columns of predict_proba
    weight: np.ndarray  # (F, len(names)) float32
    bias: np.ndarray  # (len(names),) float32
    accuracy: dict[str, float]  # held-out: per attribute, accuracy; per class, recall (share of its images called it)
    chance: dict[str, float]  # the same number for a constant guess (majority class; 1 / classes)
    skipped: dict[str, str] = field(default_factory=dict)  # attributes left out, and why

    @property
    def prefix(self) -> str:
        """Name prefix of this probe's mean-difference directions: "attr" or "class"."""
        return "attr" if self.kind == "attribute" else "class"

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """features (N, F) -> probabilities (N, len(names)): P(attribute) per column, or the class distribution."""
        logits = np.asarray(features, dtype=np.float64) @ self.weight.astype(np.float64) + self.bias
        if self.kind == "class":
            return scipy.special.softmax(logits, axis=1)
        return scipy.special.expit(logits)


def fold_linear_probe(reduce: Pipeline, coef: np.ndarray, intercept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StandardScaler -> PCA(whiten=True) -> logits = x @ coef.T + intercept, as one map: (weight (F, M), bias (M,)).

    scaler: x1 = (f - mean) / scale; PCA: x2 = (x1 - pca_mean) @ components.T / sqrt(explained_variance).
    So x2 = f @ P - c with P = components.T / sqrt(ev) / scale[:, None] and c = (mean / scale + pca_mean)
    @ (components.T / sqrt(ev)); then logits = f @ (P @ coef.T) + (intercept - c @ coef.T).
    """
    scaler, pca = reduce[0], reduce[1]
    project = pca.components_.T / np.sqrt(pca.explained_variance_)  # (F, K)
    weight = (project / scaler.scale_[:, None]) @ coef.T  # (F, M)
    bias = intercept - (scaler.mean_ / scaler.scale_ + pca.mean_) @ project @ coef.T
    return weight.astype(np.float32), bias.astype(np.float32)


def _probe_sample(dataset: ImageDataset, max_per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted dataset indices: >= max_per_class images (or all) of each class, or of each value of each attribute.

    Groups are filled rarest first, counting images already chosen for earlier groups, so rare
    attributes (Eyeglasses ~15 %) are represented while the common ones mostly reuse those images:
    on synthetic faces 1000 per group needs ~5k images, where independent draws would take ~15k.
    """
    if dataset.attributes is not None:
        attributes = dataset.attributes.numpy()
        groups = [np.flatnonzero(attributes[:, a] == value) for a in range(attributes.shape[1]) for value in (0, 1)]
    else:
        labels = dataset.labels.numpy()
        groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    chosen = np.zeros(len(dataset), dtype=bool)
    for group in sorted(groups, key=len):
        free = group[~chosen[group]]
        need = max(0, max_per_class - (len(group) - len(free)))
        chosen[rng.choice(free, size=min(need, len(free)), replace=False)] = True
    return np.flatnonzero(chosen)


def _logistic_regression(**options) -> LogisticRegressionCV:
    from sklearn.linear_model import LogisticRegressionCV
    return LogisticRegressionCV(
        Cs=PROBE_CS, cv=3, scoring="neg_log_loss", l1_ratios=(0.0,), max_iter=1000, use_legacy_attributes=False, **options
    )


def fit_attribute_probe(D: nn.Module, dataset: ImageDataset, max_per_class: int = 1000, seed: int = 0) -> Probe:
    """Fit the linear probe on `discriminator_features` of labelled real images; accuracy on a held-out quarter.

    Features are standardised and PCA-whitened to PROBE_COMPONENTS dimensions (fitted on the
    training part only); each logistic regression picks its L2 strength from PROBE_CS by CV.

    Attributes (CelebA, synthetic faces) win over class labels when a dataset has both. Binary
    models use class_weight="balanced", so 0.5 means "as likely as not" whatever the base rate.
    Raises ValueError for a dataset with neither attributes nor labels.
    """
    from sklearn.decomposition import PCA
    from sklearn.metrics import accuracy_score, recall_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if dataset.attributes is None and dataset.labels is None:
        raise ValueError(f"dataset {dataset.spec} has neither attributes nor class labels to fit a probe on")
    rng = np.random.default_rng(seed)
    index = _probe_sample(dataset, max_per_class, rng)
    features = discriminator_features(D, dataset.images[index])
    train, test = train_test_split(np.arange(len(index)), test_size=PROBE_HOLDOUT, random_state=seed)
    # centred data of n rows has rank <= n - 1: a further component would have ~0 variance, and whitening divides by it
    components = min(PROBE_COMPONENTS, len(train) - 1, features.shape[1])
    reduce = make_pipeline(StandardScaler(), PCA(components, whiten=True, random_state=seed))
    x_train, x_test = reduce.fit_transform(features[train]), reduce.transform(features[test])

    if dataset.attributes is None:
        labels = dataset.labels.numpy()[index]
        model = _logistic_regression().fit(x_train, labels[train])
        names = [dataset.class_names[c] if dataset.class_names else str(c) for c in model.classes_]
        recall = recall_score(labels[test], model.predict(x_test), labels=model.classes_, average=None, zero_division=0)
        accuracy = dict(zip(names, recall.tolist(), strict=True))
        chance = {n: 1.0 / len(names) for n in names}
        if len(names) == 2:  # scikit-learn fits one logit for two classes: P(second) = sigmoid(it), i.e. softmax of (-it/2, it/2)
            coef, intercept = np.r_[-model.coef_, model.coef_] / 2, np.r_[-model.intercept_, model.intercept_] / 2
        else:
            coef, intercept = model.coef_, model.intercept_
        return Probe("class", names, *fold_linear_probe(reduce, coef, intercept), accuracy, chance)

    attributes = dataset.attributes.numpy()[index]
    names, models, accuracy, chance, skipped = [], [], {}, {}, {}
    for a, name in enumerate(dataset.attribute_names or [str(a) for a in range(attributes.shape[1])]):
        y_train, y_test = attributes[train, a], attributes[test, a]
        counts = np.bincount(y_train, minlength=2)
        if counts.min() < MIN_PROBE_EXAMPLES or len(np.unique(y_test)) < 2:
            skipped[name] = f"only {counts[1]} positive and {counts[0]} negative training images in the dataset sample"
            continue
        model = _logistic_regression(class_weight="balanced").fit(x_train, y_train)
        names.append(name)
        models.append(model)
        accuracy[name] = float(accuracy_score(y_test, model.predict(x_test)))
        chance[name] = float(max(y_test.mean(), 1 - y_test.mean()))
    if not models:
        raise ValueError(f"dataset {dataset.spec}: no attribute has enough positive and negative images for a probe")
    coef = np.concatenate([model.coef_ for model in models])  # (M, K): binary models have one row each
    intercept = np.concatenate([model.intercept_ for model in models])
    return Probe("attribute", names, *fold_linear_probe(reduce, coef, intercept), accuracy, chance, skipped)


def attribute_directions(
    G: nn.Module, D: nn.Module, probe: Probe, n_samples: int = 5000, seed: int = 0, confidence: float = 0.9
) -> tuple[list[Direction], dict[str, str]]:
    """Directions from the probe's labels of generated samples (seeds seed .. seed + n_samples - 1).

    For each probe column, the z's with P >= confidence are positives and P <= 1 - confidence
    negatives (for classes: one-vs-rest). Two directions, both pointing towards the attribute:
      attr:NAME / class:NAME  mean(z_pos) - mean(z_neg); score = the probe's held-out accuracy
      svm:NAME                normal of a linear SVM separating them in z (InterFaceGAN);
                              score = its accuracy on a held-out quarter of the z's
    Returns (directions, skipped), skipped naming each column with too few confident samples
    (fewer than MIN_CONFIDENT on either side) and why.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.svm import LinearSVC
    z = z_from_seeds(range(seed, seed + n_samples), G.config.z_dim)
    proba = probe.predict_proba(discriminator_features(D, generate(G, z)))
    z = z.numpy()
    prefix = probe.prefix
    directions, skipped = [], {}
    for j, name in enumerate(probe.names):
        positive, negative = z[proba[:, j] >= confidence], z[proba[:, j] <= 1 - confidence]
        if min(len(positive), len(negative)) < MIN_CONFIDENT:
            skipped[f"{prefix}:{name}"] = (
                f"{len(positive)} confident positives and {len(negative)} confident negatives among {n_samples} "
                f"samples (need {MIN_CONFIDENT} of each at probability {confidence:.0%})"
            )
            continue
        counts = f"{len(positive)} vs {len(negative)} of {n_samples} samples"
        directions.append(
            Direction(
                f"{prefix}:{name}", positive.mean(0) - negative.mean(0), probe.kind, probe.accuracy[name],
                f"{name}: mean z difference, {counts}; score = probe accuracy (chance {probe.chance[name]:.0%})",
            )
        )
        x = np.concatenate([positive, negative])
        y = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=PROBE_HOLDOUT, stratify=y, random_state=seed)
        svm = LinearSVC(class_weight="balanced").fit(x_train, y_train)
        directions.append(
            Direction(
                f"svm:{name}", svm.coef_[0], probe.kind, svm.score(x_test, y_test),
                f"{name}: linear SVM normal in z (InterFaceGAN), {counts}; score = held-out SVM accuracy",
            )
        )
    return directions, skipped


def orthogonalize(d: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """d with its components along span(others) removed, as a unit float32 vector (z_dim,).

    scipy's orth gives an SVD basis of the span, so dependent or duplicate `others` are fine.
    Raises ValueError when d lies (numerically) inside that span.
    """
    original = np.asarray(d, dtype=np.float64)
    d = original
    if len(others):
        basis = scipy.linalg.orth(np.stack([np.asarray(o, dtype=np.float64) for o in others], axis=1))  # (z_dim, r)
        d = original - basis @ (basis.T @ original)
    norm = np.linalg.norm(d)
    if norm <= 1e-6 * np.linalg.norm(original):
        raise ValueError("the direction lies in the span of the directions to project out")
    return (d / norm).astype(np.float32)


def conditional_direction(directions: Mapping[str, Direction], name: str, condition_names: Sequence[str]) -> Direction:
    """directions[name] made orthogonal to every direction in condition_names (InterFaceGAN conditional editing).

    "attr:Smiling" conditioned on ["attr:Male"] changes the smile while (to first order) leaving
    the Male direction's projection unchanged. Name: "attr:Smiling ⟂ attr:Male".
    """
    missing = [n for n in (name, *condition_names) if n not in directions]
    if missing:
        raise KeyError(f"unknown direction(s) {missing}; available: {sorted(directions)}")
    base = directions[name]
    vector = orthogonalize(base.vector, [directions[c].vector for c in condition_names])
    conditions = ", ".join(condition_names)
    return Direction(
        f"{name} ⟂ {conditions}", vector, base.kind, base.score,
        f"{base.description}; {conditions} projected out (cosine with the original {float(vector @ base.vector):.2f})",
    )


# ----------------------------------------------------------------------------------------------- all together


def compute_directions(
    checkpoint: Checkpoint,
    dataset: ImageDataset | None = None,
    k: int = 10,
    n_samples: int = 5000,
    seed: int = 0,
    probe: Probe | None = None,
    progress: Progress | None = None,
) -> DirectionSet:
    """SeFa + GANSpace directions, and attribute/class directions when a probe can be had.

    The probe is `probe` if given, else fitted on `dataset` (which must hold attributes or labels);
    without either, or without a discriminator, the reason is recorded in `.skipped["attributes"]`.
    """
    report = progress or (lambda fraction, message: None)
    G, D = checkpoint.generator, checkpoint.discriminator
    report(0.0, "SeFa directions")
    directions = sefa_directions(G, k)
    report(0.05, "GANSpace directions")
    directions += ganspace_directions(G, k, seed=seed)
    skipped: dict[str, str] = {}
    if D is None:
        skipped["attributes"] = "the checkpoint has no discriminator, whose features the attribute probe reads"
    elif probe is None and (dataset is None or (dataset.attributes is None and dataset.labels is None)):
        skipped["attributes"] = "no labelled dataset: attribute directions need real images with attributes or classes"
    else:
        if probe is None:
            report(0.2, f"fitting the attribute probe on {dataset.spec}")
            probe = fit_attribute_probe(D, dataset, seed=seed)
        skipped.update({f"{probe.prefix}:{name}": reason for name, reason in probe.skipped.items()})
        report(0.5, f"labelling {n_samples} generated samples")
        found, not_found = attribute_directions(G, D, probe, n_samples=n_samples, seed=seed)
        directions += found
        skipped.update(not_found)
    report(1.0, f"{len(directions)} directions")
    return DirectionSet(directions, skipped)


# ----------------------------------------------------------------------------------------------- files


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], header: Mapping) -> None:
    """Atomically write arrays plus a JSON header (stored as a unicode string array, so no pickle is needed)."""
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(json.dumps(header)), **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_npz(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, header) from a `save_npz` file; allow_pickle=False, so a crafted file cannot run code."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files if name != "header"}
        return arrays, json.loads(str(data["header"]))


def npz_header(path: str | os.PathLike) -> dict:
    """Only the JSON header of a `save_npz` file (np.load is lazy: the arrays are not read)."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["header"]))


def save_directions(path: str | os.PathLike, directions: Mapping[str, Direction], extra_header: Mapping | None = None) -> None:
    """vectors (n, z_dim) float32 + header {format, version, directions: [name, kind, score, description], skipped}."""
    items = list(directions.values())
    header = {
        "format": DIRECTIONS_FORMAT,
        "version": DIRECTIONS_VERSION,
        "directions": [{"name": d.name, "kind": d.kind, "score": d.score, "description": d.description} for d in items],
        "skipped": getattr(directions, "skipped", {}),
        **(extra_header or {}),
    }
    vectors = np.stack([d.vector for d in items]) if items else np.zeros((0, 0), np.float32)
    save_npz(path, {"vectors": vectors}, header)


def load_directions(path: str | os.PathLike) -> DirectionSet:
    arrays, header = load_npz(path)
    if header.get("format") != DIRECTIONS_FORMAT or header.get("version") != DIRECTIONS_VERSION:
        raise ValueError(f"{path} is not a latent-lab directions file of version {DIRECTIONS_VERSION}")
    entries = zip(header["directions"], arrays["vectors"], strict=True)
    return DirectionSet([Direction(e["name"], v, e["kind"], e["score"], e["description"]) for e, v in entries], header["skipped"])


PROBE_FORMAT = "latent-lab-probe"
PROBE_VERSION = 1


def save_probe(path: str | os.PathLike, probe: Probe, extra_header: Mapping | None = None) -> None:
    """weight (F, M) + bias (M,) float32 + header {format, version, kind, names, accuracy, chance, skipped}."""
    header = {
        "format": PROBE_FORMAT,
        "version": PROBE_VERSION,
        "kind": probe.kind,
        "names": list(probe.names),
        "accuracy": probe.accuracy,
        "chance": probe.chance,
        "skipped": probe.skipped,
        **(extra_header or {}),
    }
    save_npz(path, {"weight": probe.weight, "bias": probe.bias}, header)


def load_probe(path: str | os.PathLike) -> Probe:
    """A `save_probe` file, checked: ValueError for another format, inconsistent shapes or non-finite weights."""
    arrays, header = load_npz(path)
    if header.get("format") != PROBE_FORMAT or header.get("version") != PROBE_VERSION:
        raise ValueError(f"{path} is not a latent-lab probe file of version {PROBE_VERSION}")
    weight, bias, names = arrays["weight"], arrays["bias"], header["names"]
    if header.get("kind") not in ("attribute", "class") or weight.ndim != 2 or bias.shape != (weight.shape[1],) or len(names) != len(bias):
        raise ValueError(f"{path}: probe weight {weight.shape}, bias {bias.shape} and {len(names)} names do not fit together")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise ValueError(f"{path}: the probe's weights are not finite")
    return Probe(header["kind"], names, weight.astype(np.float32), bias.astype(np.float32), header["accuracy"], header["chance"], header["skipped"])
