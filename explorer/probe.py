"""The attribute probe: a linear read-out of the discriminator's features, fitted on labelled real images.

The explorer needs to know what a generated face shows (to fill arithmetic bins, to find
attribute directions, to say whether an arithmetic result worked) without a second network: the
DCGAN paper's own answer is a linear model on D's features (`explorer.features`). The probe is
fitted on real images with their labels and then applied to generated ones.

* attributes (CelebA, synthetic faces): one logistic regression per attribute;
* classes (Fashion-MNIST, folders with subfolders): one multinomial logistic regression;
* continuous factors (synthetic faces' yaw, skin tone, ...): one ridge regression per factor, in
  the factor's own units. They give the factor directions (`explorer.directions`) that the
  conditional attribute directions are made orthogonal to, e.g. Smiling without a skin-tone drift.

All three are linear maps of the same standardised, PCA-whitened features, so the probe is kept
folded into affine maps of the raw features (logits = features @ weight + bias; factors =
features @ factor_weight + factor_bias): exact, small and saved as plain arrays (no pickle).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.special
from torch import nn

from explorer.npzfile import load_npz, save_npz
from explorer.datasets import ImageDataset
from explorer.features import discriminator_features

if TYPE_CHECKING:  # scikit-learn (~1 s to import) loads only when a probe is fitted: not on the app's cold start
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import Pipeline

MIN_PROBE_EXAMPLES = 10  # positive and negative training images each needed before fitting an attribute's probe
PROBE_HOLDOUT = 0.25  # share of the probe's samples kept back to measure accuracy
# The probe sees standardised features through a whitened PCA: lbfgs on all 15360 raw dims needs
# hundreds of iterations per attribute (~45 s each on 2 cores), on 512 whitened components < 20.
# Measured on synthetic faces with the 64 px net: 512 components lose a few points of held-out
# accuracy against the full features (Smiling 0.71 vs 0.77); 256 lose more.
PROBE_COMPONENTS = 512
# The L2 strength is picked per model by 3-fold cross-validated log-loss: `attribute_directions`
# thresholds the probe's probabilities, so they must be calibrated, and a fixed strong penalty
# squeezes them all towards 0.5 (the picked C ranged from 0.01 to 1 across attributes).
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0)
FACTOR_ALPHAS = (1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried per factor (whitened inputs), by CV

PROBE_FORMAT = "latent-lab-probe"
PROBE_VERSION = 1  # version 1 files without factor arrays still load (no factors)


@dataclass
class Probe:
    """Linear probe on discriminator features: per attribute, or one multinomial over classes, plus factor regressions."""

    kind: str  # "attribute" (one binary model per name) or "class" (one multinomial model)
    names: list[str]  # the columns of predict_proba
    weight: np.ndarray  # (F, len(names)) float32
    bias: np.ndarray  # (len(names),) float32
    accuracy: dict[str, float]  # held-out: per attribute, accuracy; per class, recall (share of its images called it)
    chance: dict[str, float]  # the same number for a constant guess (majority class; 1 / classes)
    skipped: dict[str, str] = field(default_factory=dict)  # attributes left out, and why
    factor_names: list[str] = field(default_factory=list)  # continuous factors, columns of predict_factors
    factor_weight: np.ndarray | None = None  # (F, len(factor_names)) float32
    factor_bias: np.ndarray | None = None  # (len(factor_names),) float32
    factor_r2: dict[str, float] = field(default_factory=dict)  # held-out R^2 per factor
    # {A: {B: |P(B | A) - P(B | not A)|}} over the real images' labels: which attributes the data ties
    # together (a smile opens the mouth), which conditional directions must not project out
    dependence: dict[str, dict[str, float]] = field(default_factory=dict)

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

    def predict_factors(self, features: np.ndarray) -> np.ndarray:
        """features (N, F) -> factor estimates (N, len(factor_names)), in each factor's own units."""
        if not self.factor_names:
            return np.zeros((len(features), 0))
        return np.asarray(features, dtype=np.float64) @ self.factor_weight.astype(np.float64) + self.factor_bias


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


def _fit_factors(dataset: ImageDataset, index: np.ndarray, train: np.ndarray, test: np.ndarray,
                 x_train: np.ndarray, x_test: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, float]]:
    """Ridge regressions of every continuous factor on the whitened features: (names, coef (K, M), intercept (M,), R^2)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    if dataset.factors is None or not dataset.factor_names:
        return [], np.zeros((x_train.shape[1], 0)), np.zeros(0), {}
    y = dataset.factors.numpy().astype(np.float64)[index]
    model = RidgeCV(alphas=FACTOR_ALPHAS).fit(x_train, y[train])
    predicted = model.predict(x_test)
    r2 = {name: float(r2_score(y[test, j], predicted[:, j])) for j, name in enumerate(dataset.factor_names)}
    return list(dataset.factor_names), np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), r2


def attribute_dependence(attributes: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """{A: {B: |P(B=1 | A=1) - P(B=1 | A=0)|}} over a 0/1 attribute matrix (N, len(names))."""
    attributes = np.asarray(attributes, dtype=bool)
    out: dict[str, dict[str, float]] = {}
    for a, name in enumerate(names):
        with_a, without_a = attributes[attributes[:, a]], attributes[~attributes[:, a]]
        if len(with_a) == 0 or len(without_a) == 0:
            out[name] = {}
            continue
        gap = np.abs(with_a.mean(0) - without_a.mean(0))
        out[name] = {other: round(float(gap[b]), 4) for b, other in enumerate(names) if b != a}
    return out


def fit_attribute_probe(D: nn.Module, dataset: ImageDataset, max_per_class: int = 1000, seed: int = 0) -> Probe:
    """Fit the linear probe on `discriminator_features` of labelled real images; accuracy on a held-out quarter.

    Features are standardised and PCA-whitened to PROBE_COMPONENTS dimensions (fitted on the
    training part only); each logistic regression picks its L2 strength from PROBE_CS by CV, the
    factor regressions theirs from FACTOR_ALPHAS.

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
    factor_names, factor_coef, factor_intercept, factor_r2 = _fit_factors(dataset, index, train, test, x_train, x_test)
    factors = {}
    if factor_names:
        factor_weight, factor_bias = fold_linear_probe(reduce, factor_coef, factor_intercept)
        factors = dict(factor_names=factor_names, factor_weight=factor_weight, factor_bias=factor_bias, factor_r2=factor_r2)

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
        return Probe("class", names, *fold_linear_probe(reduce, coef, intercept), accuracy, chance, **factors)

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
    all_names = list(dataset.attribute_names or [str(a) for a in range(attributes.shape[1])])
    dependence = attribute_dependence(dataset.attributes.numpy(), all_names)
    return Probe("attribute", names, *fold_linear_probe(reduce, coef, intercept), accuracy, chance, skipped, **factors,
                 dependence=dependence)


def save_probe(path: str | os.PathLike, probe: Probe, extra_header: Mapping | None = None) -> None:
    """weight (F, M) + bias (M,) [+ factor_weight (F, K), factor_bias (K,)] float32 + a JSON header."""
    header = {
        "format": PROBE_FORMAT,
        "version": PROBE_VERSION,
        "kind": probe.kind,
        "names": list(probe.names),
        "accuracy": probe.accuracy,
        "chance": probe.chance,
        "skipped": probe.skipped,
        "factor_names": list(probe.factor_names),
        "factor_r2": probe.factor_r2,
        "dependence": probe.dependence,
        **(extra_header or {}),
    }
    arrays = {"weight": probe.weight, "bias": probe.bias}
    if probe.factor_names:
        arrays.update(factor_weight=probe.factor_weight, factor_bias=probe.factor_bias)
    save_npz(path, arrays, header)


def load_probe(path: str | os.PathLike) -> Probe:
    """A `save_probe` file, checked: ValueError for another format, inconsistent shapes or non-finite weights."""
    arrays, header = load_npz(path)
    if header.get("format") != PROBE_FORMAT or header.get("version") != PROBE_VERSION:
        raise ValueError(f"{path} is not a latent-lab probe file of version {PROBE_VERSION}")
    weight, bias, names = arrays["weight"], arrays["bias"], header["names"]
    if header.get("kind") not in ("attribute", "class") or weight.ndim != 2 or bias.shape != (weight.shape[1],) or len(names) != len(bias):
        raise ValueError(f"{path}: probe weight {weight.shape}, bias {bias.shape} and {len(names)} names do not fit together")
    factor_names = list(header.get("factor_names") or [])
    factors = {}
    if factor_names:
        factor_weight, factor_bias = arrays.get("factor_weight"), arrays.get("factor_bias")
        if factor_weight is None or factor_bias is None or factor_weight.shape != (weight.shape[0], len(factor_names)) \
                or factor_bias.shape != (len(factor_names),):
            raise ValueError(f"{path}: the factor regressions do not fit {len(factor_names)} factor names and {weight.shape[0]} features")
        factors = dict(factor_names=factor_names, factor_weight=factor_weight.astype(np.float32),
                       factor_bias=factor_bias.astype(np.float32), factor_r2=dict(header.get("factor_r2") or {}))
    if not all(np.isfinite(a).all() for a in (weight, bias, *(v for k, v in factors.items() if k in ("factor_weight", "factor_bias")))):
        raise ValueError(f"{path}: the probe's weights are not finite")
    return Probe(header["kind"], names, weight.astype(np.float32), bias.astype(np.float32), header["accuracy"], header["chance"],
                 header["skipped"], **factors, dependence=dict(header.get("dependence") or {}))
