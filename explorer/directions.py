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
* Factor directions (datasets with continuous factors, e.g. synthetic faces' yaw or skin tone):
  the probe's factor regressions label generated samples, and the least-squares slope of the
  label on z is the direction ("factor:yaw").
* Conditional directions, "cond:NAME" (InterFaceGAN's conditional manipulation): the attribute's
  mean-difference direction with every other attribute direction and the skin-tone direction
  projected out, so the Smiling slider does not also change Male, glasses or skin tone (to first
  order). `compute_directions(refine=...)` then refines them where the slider acts, at its full
  offset through G and D (`explorer.refine_directions`), which removes what a projection in z cannot
  (a non-linear G). They are the explorer's default attribute sliders; the raw ones stay selectable.

Directions are saved as .npz (vectors) plus a JSON header inside the same file, read back with
allow_pickle=False, so a directions file can never execute code.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import torch
from torch import nn

from explorer.checkpoint import Checkpoint
from explorer.datasets import ImageDataset
from explorer.features import discriminator_features
from explorer.generate import eval_mode, generate
from explorer.latent import z_from_seeds
from explorer.npzfile import load_npz, save_npz
from explorer.probe import PROBE_HOLDOUT, Probe, fit_attribute_probe

if TYPE_CHECKING:
    from explorer.refine_directions import RefineSettings

KINDS = ("sefa", "ganspace", "attribute", "class", "factor")
DIRECTIONS_FORMAT = "latent-lab-directions"
DIRECTIONS_VERSION = 1
MIN_CONFIDENT = 20  # confident positives and negatives each needed before fitting a direction
# A factor direction is made only where the probe reads the factor well from D's features (held-out
# R^2 on real images): below that its labels of generated samples are mostly noise.
MIN_FACTOR_R2 = 0.5
# Conditional attribute directions ("cond:NAME") are orthogonal to every other attribute direction
# the data does not tie to NAME, and to these factors' directions when the dataset has them: a
# skin-tone drift is the entanglement users notice first (a "smile" slider that also pales the
# face), a head turn the second.
CONDITION_FACTORS = ("skin_tone", "yaw")
# Attributes the data ties to NAME (|P(B | NAME) - P(B | not NAME)| at least this, e.g. an open mouth
# to a smile) are not projected out: their directions share NAME's own, and removing them would
# remove most of the attribute (measured: cond:Smiling flipped 40 % of faces with Mouth_Slightly_Open
# projected out, 92 % without).
DEPENDENT = 0.1

Progress = Callable[[float, str], None]  # fraction done in [0, 1], message for the UI


@dataclass
class Direction:
    # unique within a set: "sefa:0", "ganspace:3", "attr:Smiling", "svm:Smiling", "cond:Smiling", "class:Sneaker", "factor:yaw"
    name: str
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

    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of the unit float32 vector: ties a measurement to these exact numbers."""
        return hashlib.sha256(self.vector.tobytes()).hexdigest()[:16]


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


def attribute_directions(
    G: nn.Module, D: nn.Module, probe: Probe, n_samples: int = 5000, seed: int = 0, confidence: float = 0.9
) -> tuple[list[Direction], dict[str, str]]:
    """Directions from the probe's labels of generated samples (seeds seed .. seed + n_samples - 1).

    For each probe column, the z's with P >= confidence are positives and P <= 1 - confidence
    negatives (for classes: one-vs-rest). Two directions, both pointing towards the attribute:
      attr:NAME / class:NAME  mean(z_pos) - mean(z_neg); score = the probe's held-out accuracy
      svm:NAME                normal of a linear SVM separating them in z (InterFaceGAN);
                              score = its accuracy on a held-out quarter of the z's
    For each factor the probe reads with held-out R^2 >= MIN_FACTOR_R2:
      factor:NAME             least-squares slope of the probe's estimate on z (towards larger values)
    and, for attribute probes, the conditional directions (`conditional_directions`):
      cond:NAME               attr:NAME orthogonal to the other attr: directions and CONDITION_FACTORS
    Returns (directions, skipped), skipped naming each column with too few confident samples
    (fewer than MIN_CONFIDENT on either side) and why.
    """
    from sklearn.model_selection import train_test_split
    from sklearn.svm import LinearSVC
    z = z_from_seeds(range(seed, seed + n_samples), G.config.z_dim)
    features = discriminator_features(D, generate(G, z))
    proba = probe.predict_proba(features)
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
    factors, factor_skipped = factor_directions(z, probe.predict_factors(features), probe)
    directions += factors
    skipped.update(factor_skipped)
    if probe.kind == "attribute":
        directions += conditional_directions({d.name: d for d in directions}, dependence=probe.dependence)
    return directions, skipped


def factor_directions(z: np.ndarray, estimates: np.ndarray, probe: Probe) -> tuple[list[Direction], dict[str, str]]:
    """factor:NAME for each factor the probe reads well: the slope b of estimate ~ z @ b + c (least squares).

    z (N, z_dim), estimates (N, len(probe.factor_names)). score = the R^2 of that linear fit on the
    generated samples (how much of the factor's variation a straight line in z explains).
    """
    directions, skipped = [], {}
    if not probe.factor_names:
        return directions, skipped
    design = np.c_[z.astype(np.float64), np.ones(len(z))]
    coef = np.linalg.lstsq(design, estimates, rcond=None)[0]  # (z_dim + 1, K)
    for j, name in enumerate(probe.factor_names):
        r2_real = probe.factor_r2.get(name, 0.0)
        if r2_real < MIN_FACTOR_R2:
            skipped[f"factor:{name}"] = f"the probe reads {name} from D's features with held-out R² {r2_real:.2f} (< {MIN_FACTOR_R2})"
            continue
        slope = coef[:-1, j]
        residual = estimates[:, j] - design @ coef[:, j]
        r2_z = 1.0 - residual.var() / max(estimates[:, j].var(), 1e-12)
        if not np.isfinite(slope).all() or np.linalg.norm(slope) == 0:
            skipped[f"factor:{name}"] = f"{name} does not vary linearly with z in the generated samples"
            continue
        directions.append(
            Direction(
                f"factor:{name}", slope, "factor", r2_z,
                f"{name}: least-squares slope of the probe's estimate on z (probe R² {r2_real:.2f} on real images); "
                f"score = R² of that line over {len(z)} samples",
            )
        )
    return directions, skipped


def conditional_directions(
    directions: Mapping[str, Direction],
    condition_factors: Sequence[str] = CONDITION_FACTORS,
    dependence: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Direction]:
    """cond:NAME for every attr:NAME: orthogonal to the other attr: directions and to factor:F for F in condition_factors.

    InterFaceGAN's conditional manipulation: moving along cond:Smiling leaves the projections on the
    other attribute directions, the skin-tone and the yaw direction unchanged. Attributes that
    `dependence` (the probe's, from the real labels) ties to NAME by at least DEPENDENT are kept, as
    the data says they go together. An attribute inside the span of its conditions gets none.
    """
    dependence = dependence or {}
    attributes = [name for name in directions if name.startswith("attr:")]
    factors = [f"factor:{f}" for f in condition_factors if f"factor:{f}" in directions]
    out = []
    for name in attributes:
        label = name.removeprefix("attr:")
        tied = dependence.get(label, {})
        conditions = [other for other in attributes if other != name and tied.get(other.removeprefix("attr:"), 0.0) < DEPENDENT]
        try:
            conditioned = conditional_direction(directions, name, conditions + factors)
        except ValueError:
            continue
        kept = ", ".join(c.split(":", 1)[1] for c in conditions + factors)
        free = [other.removeprefix("attr:") for other in attributes if other != name and other not in conditions]
        out.append(Direction(
            f"cond:{label}", conditioned.vector, "attribute", directions[name].score,
            f"{label}: conditional direction, mean z difference with {kept} projected out"
            + (f" ({', '.join(free)} left free: the data ties them to {label})" if free else "")
            + f"; cosine with the raw one {float(conditioned.vector @ directions[name].vector):.2f}",
        ))
    return out


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
    refine: RefineSettings | None = None,
) -> DirectionSet:
    """SeFa + GANSpace directions, and attribute/class directions when a probe can be had.

    The probe is `probe` if given, else fitted on `dataset` (which must hold attributes or labels);
    without either, or without a discriminator, the reason is recorded in `.skipped["attributes"]`.
    refine: the cond: directions are then refined at the slider's full offset
    (`explorer.refine_directions`); None keeps the projections.
    """
    from explorer.refine_directions import refine_conditional_directions  # here: that module imports this one

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
        if refine is not None and any(d.name.startswith("cond:") for d in found):
            refined = {d.name: d for d in refine_conditional_directions(
                G, D, probe, {d.name: d for d in found}, refine,
                lambda fraction, message: report(0.6 + 0.4 * fraction, message),
            )}
            found = [refined.get(d.name, d) for d in found]
        directions += found
        skipped.update(not_found)
    report(1.0, f"{len(directions)} directions")
    return DirectionSet(directions, skipped)


# ----------------------------------------------------------------------------------------------- files


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
