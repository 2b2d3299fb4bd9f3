"""Vector arithmetic on concepts, Radford et al. (2015) Sec. 6.3 and Fig. 7.

"smiling woman - neutral woman + neutral man = smiling man": each concept is a bin of exemplar
images: generated ones named by their seeds, and real pictures by the z that inversion found for
them (`explorer.invert`, `explorer.real_exemplars`), so the arithmetic also runs on real photos. The z's of a bin are averaged, because single samples were
unstable in the paper while means of three exemplars gave consistent results; the weighted sum
of the means is Y. G(Y) is the centre of a 3x3 grid whose other 8 cells are G(Y + U(-0.25, 0.25)
noise), showing that the neighbourhood of Y renders the same concept. The same weighted sum of
the exemplars' pixels is the paper's baseline: misaligned, noisy overlaps.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from explorer.generate import generate
from explorer.latent import MAX_SEED, validate_seed, z_from_seeds

MAX_BIN_SEEDS = 64  # exemplars per concept; more adds nothing to a mean and slows the page
MAX_BINS = 6  # concept bins on the board
MAX_WEIGHT = 3.0  # |weight| of a bin in either UI and in a link
STABLE_BIN_SEEDS = 3  # the paper's "averaging the Z vector for three exemplars" was stable
GRID_CENTRE = 4  # index of Y itself in the row-major 3x3 grid
DEFAULT_JITTER = 0.25  # the paper's noise scale, in latent units (the prior's std is 1)


@dataclass
class ConceptBin:
    name: str  # shown in messages, e.g. "smiling woman"
    seeds: list[int]  # generated exemplars' latents, z_from_seed(seed)
    weight: float  # +1 adds the concept, -1 subtracts it
    latents: list = field(default_factory=list)  # real exemplars: each the (z_dim,) z that inversion found for a picture


def bin_latents(b: ConceptBin, z_dim: int) -> torch.Tensor:
    """(k, z_dim) float32: the seeds' z, then the real exemplars' inverted z, in that order."""
    seeded = z_from_seeds(b.seeds, z_dim) if b.seeds else torch.empty(0, z_dim)
    real = torch.as_tensor(np.asarray(b.latents, dtype=np.float32)).reshape(-1, z_dim) if len(b.latents) else torch.empty(0, z_dim)
    return torch.cat([seeded, real])


@dataclass
class CombineResult:
    y: torch.Tensor  # (z_dim,) float32
    warnings: list[str] = field(default_factory=list)  # human-readable, for the UI to show next to Y


@dataclass
class ArithmeticResult:
    y: torch.Tensor  # (z_dim,)
    grid_latents: torch.Tensor  # (9, z_dim); row GRID_CENTRE is y
    grid_images: torch.Tensor  # (9, C, H, W) in [-1, 1]
    pixel_result: torch.Tensor  # (C, H, W) in [-1, 1], the pixel-space baseline
    warnings: list[str] = field(default_factory=list)
    bin_means: torch.Tensor | None = None  # (bins, C, H, W): G(mean z) of each bin, each concept on its own
    exemplar_images: list[torch.Tensor] = field(default_factory=list)  # per bin (k_i, C, H, W)


def concept_mean(zs: torch.Tensor) -> torch.Tensor:
    """Mean of a bin's latents: (k, z_dim) -> (z_dim,)."""
    if zs.dim() != 2 or zs.shape[0] == 0:
        raise ValueError(f"need a non-empty (k, z_dim) tensor of latents, got shape {tuple(zs.shape)}")
    return zs.float().mean(dim=0)


def _check_latents(b: ConceptBin, z_dim: int) -> None:
    for i, z in enumerate(b.latents):
        values = np.asarray(z, dtype=np.float64) if not isinstance(z, str) else np.array([])
        if values.shape != (z_dim,) or not np.isfinite(values).all():
            raise ValueError(f"bin '{b.name}': real exemplar {i + 1} is not a finite z of {z_dim} values (shape {values.shape})")


def _check_bins(bins: list[ConceptBin], z_dim: int | None = None) -> list[str]:
    """ValueError for bins that cannot be combined; warnings for ones that can but are unreliable."""
    if not bins:
        raise ValueError("no concept bins: add at least one bin, e.g. 'smiling woman' with weight +1")
    warnings = []
    for b in bins:
        count = len(b.seeds) + len(b.latents)
        if count == 0:
            raise ValueError(f"bin '{b.name}' is empty: drag at least one image into it")
        if count > MAX_BIN_SEEDS:
            raise ValueError(f"bin '{b.name}' has {count} images; at most {MAX_BIN_SEEDS} are allowed")
        if z_dim is not None:
            _check_latents(b, z_dim)
        try:
            weight = float(b.weight)
        except (TypeError, ValueError):
            raise ValueError(f"bin '{b.name}' has weight {b.weight!r}, which is not a number") from None
        if not math.isfinite(weight):
            raise ValueError(f"bin '{b.name}' has weight {b.weight!r}; weights must be finite numbers")
        for seed in b.seeds:
            try:
                validate_seed(seed)
            except ValueError as exc:
                raise ValueError(f"bin '{b.name}': {exc}") from None
        if count < STABLE_BIN_SEEDS:
            warnings.append(
                f"bin '{b.name}' has {count} image{'s' if count > 1 else ''}: single samples are "
                f"unstable in the paper, which averages {STABLE_BIN_SEEDS} exemplars per concept; the result may "
                "carry that image's pose or background rather than the concept"
            )
    return warnings


def combine(bins: list[ConceptBin], z_dim: int) -> CombineResult:
    """Y = sum_i weight_i * mean(z of bin i), (z_dim,), with warnings for bins of fewer than 3 images."""
    warnings = _check_bins(bins, z_dim)
    y = sum(float(b.weight) * concept_mean(bin_latents(b, z_dim)) for b in bins)
    return CombineResult(y=y, warnings=warnings)


def arithmetic_grid_latents(y: torch.Tensor, seed: int, jitter: float = DEFAULT_JITTER) -> torch.Tensor:
    """(9, z_dim): row GRID_CENTRE is y, the others y + U(-jitter, jitter) noise drawn from `seed`."""
    if y.dim() != 1:
        raise ValueError(f"y must be (z_dim,), got shape {tuple(y.shape)}")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter!r}")
    generator = torch.Generator().manual_seed(validate_seed(seed))
    noise = (torch.rand(8, y.shape[0], generator=generator) * 2 - 1) * jitter  # U[-jitter, jitter)
    noise = torch.cat([noise[:GRID_CENTRE], torch.zeros(1, y.shape[0]), noise[GRID_CENTRE:]])
    return y.float() + noise


def pixel_arithmetic(images_per_bin: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """The pixel-space baseline: sum_i weight_i * mean image of bin i, each (k_i, C, H, W) -> (C, H, W) in [-1, 1]."""
    if len(images_per_bin) == 0 or len(images_per_bin) != len(weights):
        raise ValueError(f"need one weight per bin and at least one bin, got {len(images_per_bin)} bins and {len(weights)} weights")
    shapes = {tuple(images.shape[1:]) for images in images_per_bin}
    if len(shapes) != 1 or any(images.dim() != 4 or images.shape[0] == 0 for images in images_per_bin):
        raise ValueError(f"every bin needs a non-empty (k, C, H, W) stack of one image size, got {[tuple(i.shape) for i in images_per_bin]}")
    result = sum(float(w) * images.float().mean(dim=0) for images, w in zip(images_per_bin, weights))
    return result.clamp(-1.0, 1.0)


def bin_consistency(features: np.ndarray) -> float:
    """Mean pairwise cosine similarity of a bin's exemplar features (k, F); 1.0 for a single exemplar.

    Close to 1: the exemplars look alike to the feature extractor (normally
    `explorer.features.discriminator_features`, the paper's Sec. 5.1 features), so their mean z
    is a clean concept. Lower: the bin mixes unlike images and its mean is blurrier.
    Post-(leaky-)ReLU features are mostly positive, so unrelated images already score well
    above 0: compare a bin with a bin of random seeds, not with 0. A zero feature vector counts
    as similarity 0.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (k, F) array, got shape {x.shape}")
    k = x.shape[0]
    if k == 1:
        return 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    similarity = unit @ unit.T  # (k, k)
    return float(similarity[np.triu_indices(k, 1)].mean())


def arithmetic(G: nn.Module, bins: list[ConceptBin], z_dim: int, seed: int = 0, jitter: float = DEFAULT_JITTER) -> ArithmeticResult:
    """The whole Fig. 7 computation for the UIs: Y, its 3x3 neighbourhood grid, the pixel baseline, and each bin's mean image."""
    if z_dim != G.config.z_dim:
        raise ValueError(f"z_dim {z_dim} does not match the generator's {G.config.z_dim}")
    combined = combine(bins, z_dim)
    grid_latents = arithmetic_grid_latents(combined.y, seed, jitter)
    exemplar_z = [bin_latents(b, z_dim) for b in bins]  # a real exemplar is shown as its reconstruction G(z)
    means = torch.stack([concept_mean(z) for z in exemplar_z])
    # One generate call for the grid, the bin means and every exemplar (eval-mode BN: batching does not change images).
    images = generate(G, torch.cat([grid_latents, means, *exemplar_z]))
    grid_images, mean_images, rest = images.split([len(grid_latents), len(means), len(images) - len(grid_latents) - len(means)])
    exemplar_images = list(rest.split([len(z) for z in exemplar_z]))
    return ArithmeticResult(
        y=combined.y,
        grid_latents=grid_latents,
        grid_images=grid_images,
        pixel_result=pixel_arithmetic(exemplar_images, [b.weight for b in bins]),
        warnings=combined.warnings,
        bin_means=mean_images,
        exemplar_images=exemplar_images,
    )


def clean_bin_seeds(report, n_bins: int) -> list[list[int]]:
    """Seeds per bin from an untrusted report (a browser component's state, a link): n_bins lists.

    Each bin keeps its first MAX_BIN_SEEDS distinct valid seeds (every seed in a bin is generated
    for display), whatever a crafted client sends: non-lists, NaN, bools, negatives and seeds
    beyond MAX_SEED are dropped; missing bins are empty.
    """
    bins = report if isinstance(report, list) else []
    cleaned = [
        list(dict.fromkeys(int(s) for s in b if isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                           and float(s).is_integer()))[:MAX_BIN_SEEDS]
        if isinstance(b, list) else []
        for b in bins[:n_bins]
    ]
    return cleaned + [[] for _ in range(n_bins - len(cleaned))]


def empty_bins_message(names: Sequence[str]) -> str | None:
    """What both UIs say when bins are empty (None when none is): every bin needs an exemplar before Y exists."""
    if not names:
        return None
    return (
        "Empty bin" + ("s " if len(names) > 1 else " ") + ", ".join(f"'{n}'" for n in names)
        + ": put at least one exemplar into each bin (three give a stable mean) to see the result."
    )


def expression_text(bins: list[tuple[str, float]]) -> str:
    """"[smiling woman] − [neutral woman] + [neutral man]" for (name, weight) pairs; |weight| ≠ 1 is written out."""
    terms = [f"{'−' if w < 0 else '+'} {'' if abs(w) == 1 else f'{abs(w):g}·'}[{n}]" for n, w in bins]
    return " ".join(terms).removeprefix("+ ")


# ----------------------------------------------------------------------------------------------- concepts by name
# A bin's name says what its exemplars should show ("smiling woman"): the attribute probe on D's
# features can then pick exemplars for it (auto-fill), and judge whether the result shows what the
# signed sum of the bins' concepts predicts (the verdict).

# words in bin names -> (probe column, wanted value); attribute and class names match themselves
SYNONYMS = {
    "woman": ("Male", 0), "women": ("Male", 0), "female": ("Male", 0), "girl": ("Male", 0),
    "man": ("Male", 1), "men": ("Male", 1), "male": ("Male", 1), "boy": ("Male", 1),
    "neutral": ("Smiling", 0), "serious": ("Smiling", 0), "smiling": ("Smiling", 1), "smile": ("Smiling", 1),
    "glasses": ("Eyeglasses", 1), "hat": ("Wearing_Hat", 1),
}
# how a verdict names an attribute value: (before the noun, the noun, after the noun)
_WORDS = {("Smiling", 1): "smiling", ("Smiling", 0): "neutral", ("Male", 1): "man", ("Male", 0): "woman",
          ("Eyeglasses", 1): "with glasses", ("Eyeglasses", 0): "without glasses",
          ("Wearing_Hat", 1): "with hat", ("Wearing_Hat", 0): "without hat"}
PAPER_BINS = (("smiling woman", 1.0), ("neutral woman", -1.0), ("neutral man", 1.0))  # the paper's Fig. 7
CLASS_BINS = (("sneaker", 1.0), ("sandal", -1.0), ("ankle boot", 1.0))  # Fashion-MNIST's footwear classes
AUTO_PER_BIN = 3  # the paper's three exemplars per concept


def concept_conditions(name: str, columns: list[str]) -> dict[str, int]:
    """Probe columns a bin name asks for, e.g. "smiling woman" -> {"Smiling": 1, "Male": 0}; {} when none.

    Whole column names match themselves ("wearing hat", "ankle boot"; case and "_" ignored), then
    the SYNONYMS words, which win (so "man" in "a man with hat" sets Male = 1).
    """
    lower = {c.lower().replace("_", " "): c for c in columns}
    text = name.lower().replace("_", " ")
    wanted: dict[str, int] = {}
    for phrase, column in lower.items():
        if re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", text):
            wanted[column] = 1
    for word in re.findall(r"[a-z]+", text):
        if word in SYNONYMS and SYNONYMS[word][0] in columns:
            column, value = SYNONYMS[word]
            wanted[column] = value
    return wanted


def concept_scores(probabilities: np.ndarray, names: Sequence[str], conditions: dict[str, int]) -> np.ndarray:
    """Probe's probability that each sample matches every condition (product over them, treated as independent): (N,)."""
    missing = sorted(set(conditions) - set(names))
    if missing:
        raise ValueError(f"the probe has no column for {missing} (skipped: too few labelled examples?)")
    score = np.ones(len(probabilities))
    for name, value in conditions.items():
        p = probabilities[:, list(names).index(name)]
        score *= p if value else 1.0 - p
    return score


def default_bins(attribute_names: Sequence[str], class_names: Sequence[str]) -> list[tuple[str, float]]:
    """The board's starting bins (name, weight) for a checkpoint's labels.

    Faces with Smiling and Male: the paper's Fig. 7. Classes: Fashion-MNIST's sneaker − sandal +
    ankle boot when it has them, else its first three class names. No labels: neutral names (the
    paper's face concepts would mean nothing on, say, bedrooms).
    """
    if {"Smiling", "Male"} <= set(attribute_names):
        return list(PAPER_BINS)
    if class_names:
        lower = {c.lower() for c in class_names}
        if all(name in lower for name, _ in CLASS_BINS):
            return list(CLASS_BINS)
        return [(c.lower(), w) for c, w in zip(class_names, (1.0, -1.0, 1.0))]
    if attribute_names:
        a = attribute_names[0].lower().replace("_", " ")
        return [(a, 1.0), (f"not {a}", -1.0), ("concept 3", 1.0)]
    return [("concept 1", 1.0), ("concept 2", -1.0), ("concept 3", 1.0)]


@dataclass
class AutoFill:
    bins: list[list[int] | None]  # seeds per bin; None where the name asks for nothing the probe knows
    filled: list[str]  # "smiling woman (Smiling=1, Male=0)" per filled bin
    unknown: list[str]  # names of the bins left as they were


def auto_fill(names: Sequence[str], probabilities: np.ndarray, pool_seeds: Sequence[int], bin_names: Sequence[str],
              per_bin: int = AUTO_PER_BIN) -> AutoFill:
    """Per bin, the `per_bin` pool seeds the probe rates most likely to match the bin's name (`concept_scores`).

    probabilities: (len(pool_seeds), len(names)) from the probe on G(z(pool seed)).
    """
    out = AutoFill([], [], [])
    for name in bin_names:
        conditions = concept_conditions(name, list(names))
        if not conditions:
            out.bins.append(None)
            out.unknown.append(name)
            continue
        top = np.argsort(-concept_scores(probabilities, names, conditions), kind="stable")[:per_bin]
        out.bins.append([int(pool_seeds[j]) for j in top])
        out.filled.append(f"{name} ({', '.join(f'{c}={v}' for c, v in conditions.items())})")
    return out


@dataclass
class Verdict:
    """What the attribute classifier says about the arithmetic's 3x3 grid (G(Y) and its 8 neighbours)."""

    target: str  # what the signed sum of the bins' concepts predicts, e.g. "smiling man"; "" when nothing is predicted
    matches: np.ndarray  # (9,) bool: grid image shows the target
    counts: dict[str, int]  # per probe column, the grid images it reads as present (attributes) or as that class; most first

    @property
    def centre(self) -> bool:
        return bool(self.matches[GRID_CENTRE])

    @property
    def text(self) -> str:
        """e.g. "smiling man: 8 of 9 (G(Y) included)"."""
        if not self.target:
            return ""
        return f"{self.target}: {int(self.matches.sum())} of {len(self.matches)} (G(Y) {'included' if self.centre else 'not included'})"


def _attribute_phrase(conditions: dict[str, int]) -> str:
    before, noun, after = [], [], []
    for column, value in conditions.items():
        word = _WORDS.get((column, value))
        if word is None:
            after.append(("" if value else "not ") + column.replace("_", " "))
        elif column == "Male":
            noun.append(word)
        else:
            (after if word.startswith("with") else before).append(word)
    return " ".join([*before, *(noun or ["face"])] + ([", ".join(after)] if after else []))


def arithmetic_target(bins: Sequence[tuple[str, float]], names: Sequence[str], kind: str) -> dict[str, int]:
    """What the result should show, from the bins' names: {column: 0/1} (attributes) or {class: 1} (classes).

    Attributes: for each column some bin asks for, the weighted sum over those bins of the wanted
    value (0/1), 1 from 0.5 up: smiling woman − neutral woman + neutral man gives Smiling 1 − 0 + 0
    and Male 0 − 0 + 1, i.e. a smiling man. Classes: those with the largest positive weighted sum
    (sneaker − sandal + ankle boot: sneaker or ankle boot).
    """
    sums: dict[str, float] = {}
    for name, weight in bins:
        for column, value in concept_conditions(name, list(names)).items():
            sums[column] = sums.get(column, 0.0) + float(weight) * (value if kind == "attribute" else 1)
    if kind == "attribute":
        return {column: int(total >= 0.5) for column, total in sums.items()}
    best = max(sums.values(), default=0.0)
    return {column: 1 for column, total in sums.items() if total == best and best > 0}


def arithmetic_verdict(bins: Sequence[tuple[str, float]], names: Sequence[str], kind: str, probabilities: np.ndarray) -> Verdict:
    """The probe's verdict on the grid: probabilities (9, len(names)) of the probe on the 9 grid images.

    kind "attribute": an image shows the target when every target column is on the right side of
    0.5. kind "class": when its most likely class is one of the target classes.
    """
    target = arithmetic_target(bins, names, kind)
    names = list(names)
    if kind == "attribute":
        present = probabilities >= 0.5
        matches = np.ones(len(probabilities), bool)
        for column, value in target.items():
            matches &= present[:, names.index(column)] == bool(value)
        counts = {n: int(c) for n, c in zip(names, present.sum(axis=0))}
        label = _attribute_phrase(target) if target else ""
    else:
        predicted = [names[i] for i in probabilities.argmax(axis=1)]
        matches = np.array([p in target for p in predicted], bool)
        counts = {n: predicted.count(n) for n in names if n in predicted}
        label = " or ".join(target)
    counts = dict(sorted(counts.items(), key=lambda item: -item[1]))
    return Verdict(label, matches if target else np.zeros(len(probabilities), bool), counts)


# ----------------------------------------------------------------------------------------------- how far to trust it

BASELINE_SEEDS = tuple(range(900_000, 900_016))  # random samples: the consistency a bin gets by chance


def consistency_baseline(G: nn.Module, D: nn.Module) -> float:
    """`bin_consistency` of BASELINE_SEEDS random samples' D features: what a bin of unrelated images scores."""
    from explorer.features import discriminator_features

    return bin_consistency(discriminator_features(D, generate(G, z_from_seeds(list(BASELINE_SEEDS), G.config.z_dim))))


@dataclass
class ArithmeticChecks:
    """How far to trust an arithmetic result (see `check_arithmetic`)."""

    consistency: list[float]  # per bin, `bin_consistency` of its exemplars' D features
    baseline: float  # the same for random samples (`consistency_baseline`)
    verdict: Verdict | None  # the attribute probe's reading of the grid; None without a probe


def check_arithmetic(D: nn.Module, bins: list[ConceptBin], result: ArithmeticResult, baseline: float, probe=None) -> ArithmeticChecks:
    """Each bin's consistency (its exemplars' D features) against `baseline`, and with a probe (an
    `explorer.directions.Probe` on D's features) its verdict on the grid: one pass of D over grid and exemplars.
    """
    from explorer.features import discriminator_features

    features = discriminator_features(D, torch.cat([result.grid_images, *result.exemplar_images]))
    sizes = np.cumsum([len(result.grid_images)] + [len(images) for images in result.exemplar_images])
    consistency = [bin_consistency(features[a:b]) for a, b in zip(sizes[:-1], sizes[1:])]
    verdict = None
    if probe is not None:
        proba = probe.predict_proba(features[: len(result.grid_images)])
        verdict = arithmetic_verdict([(b.name, b.weight) for b in bins], probe.names, probe.kind, proba)
    return ArithmeticChecks(consistency, baseline, verdict)
