"""Vector arithmetic measured against ground truth (Radford et al. 2015, Sec. 6.3, made into numbers).

The paper shows "smiling woman - neutral woman + neutral man = smiling man" as pictures and
claims two things: arithmetic on z works where the same arithmetic on pixels does not, and
averaging three exemplars per concept is stable where single samples are not. On synthetic faces
the ground truth is known, so both become success rates:

1. A pool of generated samples (seeds ARITH_SEED_OFFSET ..) is labelled by the attribute probe
   on the discriminator's features (`explorer.probe.fit_attribute_probe`, the explorer's
   own probe). Head turn has no attribute, so the probe also learns two labels derived from the
   ground-truth yaw: Yaw_Left and Yaw_Right (|yaw| > YAW_LABEL rad).
2. For each concept ("smiling woman" = Smiling 1, Male 0, plus the *kept* attributes at 0) the
   exemplar candidates are the pool's CANDIDATES samples with the highest probe probability of
   matching ("probe" selection, what a user of the explorer gets); each trial draws k of them per
   concept (k = 1, 3, 10). A second, "oracle" selection draws from samples the eval net itself
   judges to match: the probe can be wrong about rough generated faces, and an arithmetic result
   cannot be better than its inputs, so the oracle rows measure the arithmetic alone.
   A third, "real" selection uses real pictures: held-out dataset images whose own ground-truth
   labels match the concept, each inverted to z (`explorer.invert`): the paper's arithmetic on
   real photos. Its pixel-space baseline blends the real pictures themselves.
3. z-space: Y = sum of weight * mean z per concept; the paper's 3x3 grid (G(Y) and 8 jittered
   neighbours, `explorer.arithmetic`). Pixel space: the same weighted sum of the exemplar images.
4. The eval net - trained on real renders with their true labels, never on generated images -
   scores every result image. Success = every target attribute present (e.g. Smiling and Male),
   and every kept attribute still absent (no glasses or hat appeared). A pixel-space result must
   also pass the single-clean-face check (`explorer.evaluation.clean_face`: a checker trained on
   real renders against pixel blends of them), so a ghostly overlay of three faces whose top layer
   smiles does not count as a smiling man (`success_unchecked` leaves the check out). A z-space
   result is one G output like any other sample: whether it looks clean is the generator's quality,
   not the arithmetic's, and the checker (which never saw a generated image) passes only part of
   even random samples; so z results are not filtered, and their clean rate is reported beside the
   random samples' (`chance.clean`) to show the arithmetic does not make them less face-like.
   z-space rates are over all 9 grid images of every trial, pixel rates over one image per trial.

Reported beside them: the eval net's verdict on the chosen exemplars (how often the probe picked
what it meant to: an arithmetic result cannot be better than its inputs) and the "chance" rate,
the share of random samples that already satisfy the target.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from explorer.arithmetic import ConceptBin, arithmetic_grid_latents, combine, concept_scores, pixel_arithmetic
from explorer.datasets import ImageDataset
from explorer.probe import Probe, fit_attribute_probe
from explorer.evaluation.eval_net import EvalNet, predict
from explorer.features import discriminator_features
from explorer.generate import generate
from explorer.latent import z_from_seeds

ARITH_SEED_OFFSET = 2_000_000  # pool seeds: disjoint from the explorer's defaults and from FID's
YAW_LABEL = 0.15  # rad: |yaw| above this is a clear head turn (the renderer's yaw spans +-0.4)
YAW_SCORE = 0.1  # rad: the eval net's predicted yaw beyond this counts as turned that way
CANDIDATES = 30  # top-scoring pool samples per concept that trials draw exemplars from
DEFAULT_KS = (1, 3, 10)
DEFAULT_POOL = 5000
DEFAULT_TRIALS = 20
SELECTIONS = ("probe", "oracle", "real")  # who picks the exemplars; see evaluate_arithmetic
METHODS = ("z", "z_shell", "pixel")  # the paper's z arithmetic, the same with Y rescaled to |z| = sqrt(z_dim), pixels

Labeller = Callable[[torch.Tensor], tuple[Sequence[str], np.ndarray]]  # images -> (names, probabilities (N, len(names)))
Judge = Callable[[torch.Tensor], dict[str, np.ndarray]]  # images -> attribute -> bool (N,)
CleanCheck = Callable[[torch.Tensor], np.ndarray]  # images -> bool (N,): a single clean face
Inverter = Callable[[torch.Tensor], torch.Tensor]  # uint8 images (N, C, H, W) -> their inverted z (N, z_dim)


@dataclass
class RealExemplars:
    """The "real" exemplar source: held-out pictures, their ground truth, and how to invert them."""

    images: torch.Tensor  # uint8 (N, C, H, W) at the generator's size
    truth: dict[str, np.ndarray]  # attribute -> bool (N,): the dataset's own labels (with Yaw_Left / Yaw_Right)
    invert: Inverter


def real_exemplars_from(dataset: ImageDataset, invert: Inverter) -> RealExemplars:
    """RealExemplars of a labelled dataset with a yaw factor (synthetic faces): its labels are the ground truth."""
    labelled = with_yaw_labels(dataset)
    truth = {name: labelled.attributes[:, j].numpy() > 0 for j, name in enumerate(labelled.attribute_names)}
    return RealExemplars(labelled.images, truth, invert)


@dataclass(frozen=True)
class Concept:
    label: str  # e.g. "smiling woman"
    conditions: dict[str, int]  # attribute -> required 0/1, e.g. {"Smiling": 1, "Male": 0}
    weight: float  # +1 or -1 in the expression


@dataclass(frozen=True)
class Expression:
    name: str  # short key, e.g. "smile"
    text: str  # "smiling woman - neutral woman + neutral man = smiling man"
    concepts: tuple[Concept, ...]
    target: dict[str, int]  # what the result must show
    kept: tuple[str, ...] = ()  # attributes 0 in every exemplar that must stay 0 in the result


def _expression(name: str, terms: Sequence[tuple[str, dict[str, int], float]], result: str, target: dict[str, int], kept: Sequence[str]) -> Expression:
    # Every exemplar also has each kept attribute at 0, so the mean and the result should too.
    concepts = tuple(Concept(label, {**conditions, **{a: 0 for a in kept}}, weight) for label, conditions, weight in terms)
    text = " ".join(("" if i == 0 else ("+ " if c.weight > 0 else "- ")) + c.label for i, c in enumerate(concepts)) + f" = {result}"
    return Expression(name, text, concepts, target, tuple(kept))


EXPRESSIONS: tuple[Expression, ...] = (
    _expression(
        "smile",
        [("smiling woman", {"Smiling": 1, "Male": 0}, 1.0), ("neutral woman", {"Smiling": 0, "Male": 0}, -1.0),
         ("neutral man", {"Smiling": 0, "Male": 1}, 1.0)],
        "smiling man", {"Smiling": 1, "Male": 1}, ("Eyeglasses", "Wearing_Hat"),
    ),
    _expression(
        "glasses",
        [("man with glasses", {"Eyeglasses": 1, "Male": 1}, 1.0), ("man without glasses", {"Eyeglasses": 0, "Male": 1}, -1.0),
         ("woman without glasses", {"Eyeglasses": 0, "Male": 0}, 1.0)],
        "woman with glasses", {"Eyeglasses": 1, "Male": 0}, ("Wearing_Hat",),
    ),
    _expression(
        "hat",
        [("woman with hat", {"Wearing_Hat": 1, "Male": 0}, 1.0), ("woman without hat", {"Wearing_Hat": 0, "Male": 0}, -1.0),
         ("man without hat", {"Wearing_Hat": 0, "Male": 1}, 1.0)],
        "man with hat", {"Wearing_Hat": 1, "Male": 1}, ("Eyeglasses",),
    ),
    _expression(
        "turn",
        [("man turned left", {"Yaw_Left": 1, "Male": 1}, 1.0), ("man turned right", {"Yaw_Right": 1, "Male": 1}, -1.0),
         ("woman turned right", {"Yaw_Right": 1, "Male": 0}, 1.0)],
        "woman turned left", {"Yaw_Left": 1, "Male": 0}, ("Eyeglasses", "Wearing_Hat"),
    ),
)


def with_yaw_labels(dataset: ImageDataset) -> ImageDataset:
    """The dataset with two more attribute columns derived from its yaw factor: Yaw_Left, Yaw_Right."""
    if dataset.attributes is None or not dataset.factor_names or "yaw" not in dataset.factor_names:
        raise ValueError(f"{dataset.spec}: arithmetic evaluation needs attributes and a yaw factor (synthetic faces)")
    yaw = dataset.factors[:, dataset.factor_names.index("yaw")]
    extra = torch.stack([(yaw < -YAW_LABEL), (yaw > YAW_LABEL)], dim=1).to(torch.uint8)
    return ImageDataset(
        images=dataset.images, spec=dataset.spec, attribute_names=[*dataset.attribute_names, "Yaw_Left", "Yaw_Right"],
        attributes=torch.cat([dataset.attributes, extra], dim=1), factor_names=dataset.factor_names, factors=dataset.factors,
    )


def ground_truth(net: EvalNet, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The eval net's verdicts on images ([-1, 1] float or uint8, (N, C, H, W)): attribute -> bool (N,).

    Attributes from the sigmoid heads at 0.5; Yaw_Left / Yaw_Right from the yaw regression
    beyond +-YAW_SCORE rad (yaw > 0 turns the face towards the viewer's right).
    """
    p = predict(net, images)
    verdicts = {name: p.attribute_probabilities[:, a] >= 0.5 for a, name in enumerate(net.config.attribute_names)}
    if "yaw" in net.config.factor_names:
        yaw = p.factors[:, net.config.factor_names.index("yaw")]
        verdicts["Yaw_Left"], verdicts["Yaw_Right"] = yaw < -YAW_SCORE, yaw > YAW_SCORE
    return verdicts


def satisfies(verdicts: dict[str, np.ndarray], conditions: dict[str, int]) -> np.ndarray:
    """bool (N,): every condition attribute has its required value."""
    missing = sorted(set(conditions) - set(verdicts))
    if missing:
        raise ValueError(f"the eval net does not judge {missing}")
    n = len(next(iter(verdicts.values())))
    ok = np.ones(n, dtype=bool)
    for name, value in conditions.items():
        ok &= verdicts[name] == bool(value)
    return ok


def success(verdicts: dict[str, np.ndarray], expression: Expression) -> tuple[np.ndarray, np.ndarray]:
    """(target met, target met and kept attributes still absent), each bool (N,)."""
    target = satisfies(verdicts, expression.target)
    return target, target & satisfies(verdicts, {a: 0 for a in expression.kept})


def rate_with_ci(flags: np.ndarray) -> dict[str, float]:
    """Share of True with a 95% Wilson interval (sound at 0 % and 100 %, unlike the normal approximation)."""
    n = int(flags.size)
    if n == 0:
        return {"rate": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    p, z = float(flags.mean()), 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"rate": p, "low": max(0.0, centre - half), "high": min(1.0, centre + half), "n": n}


@dataclass
class ArithmeticEvaluation:
    results: dict = field(default_factory=dict)  # JSON: expression -> k -> method -> rates
    figures: dict = field(default_factory=dict)  # (expression, selection, k) -> {"z": (9, C, H, W), "pixel": (C, H, W)} of trial 0


def evaluate_arithmetic(
    G: nn.Module,
    D: nn.Module,
    dataset: ImageDataset,
    net: EvalNet,
    ks: Sequence[int] = DEFAULT_KS,
    trials: int = DEFAULT_TRIALS,
    pool: int = DEFAULT_POOL,
    expressions: Sequence[Expression] = EXPRESSIONS,
    probe: Probe | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    labeller: Labeller | None = None,
    judge: Judge | None = None,
    selections: Sequence[str] = SELECTIONS,
    clean: CleanCheck | None = None,
    real: RealExemplars | None = None,
) -> ArithmeticEvaluation:
    """Success rates of z-space vs pixel-space arithmetic by k (see the module docstring). Deterministic in `seed`.

    labeller (images -> (names, probabilities (N, len(names)))) picks exemplars; by default the
    attribute probe on D's features (`probe`, or one fitted on `dataset` with yaw labels).
    judge (images -> {attribute: bool (N,)}) scores results; by default `ground_truth(net, .)`.
    clean (images -> bool (N,)) is the single-clean-face check every counted result must pass
    (`explorer.evaluation.clean_face.is_clean` with the shipped checker); without one, success is
    the unchecked rate and the protocol says so.
    real: the "real" selection's pictures (`real_exemplars_from`); without it that selection is
    reported as skipped. Only the candidates drawn are inverted (each picture once).
    Tests pass hand-made ones to check the protocol on a toy generator with a known answer.
    """
    say = progress or (lambda message: None)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > CANDIDATES for k in ks):
        raise ValueError(f"k must be integers in 1..{CANDIDATES}, got {list(ks)}")
    if not selections or set(selections) - set(SELECTIONS):
        raise ValueError(f"selections must be a non-empty subset of {SELECTIONS}, got {list(selections)}")
    if trials < 1 or pool < CANDIDATES * 4:
        raise ValueError(f"need trials >= 1 and a pool of at least {CANDIDATES * 4} samples")
    if labeller is None:
        if probe is None:
            say("fitting the attribute probe (with yaw labels) on D features of real faces")
            probe = fit_attribute_probe(D, with_yaw_labels(dataset), seed=seed)
        fitted = probe
        labeller = lambda images: (fitted.names, fitted.predict_proba(discriminator_features(D, images)))  # noqa: E731
    judge = judge or (lambda images: ground_truth(net, images))
    say(f"labelling a pool of {pool} generated samples")
    pool_seeds = np.arange(ARITH_SEED_OFFSET, ARITH_SEED_OFFSET + pool)
    pool_z = z_from_seeds(pool_seeds.tolist(), G.config.z_dim)
    pool_images = generate(G, pool_z)
    names, probabilities = labeller(pool_images)
    pool_truth = judge(pool_images)
    pool_clean = clean(pool_images) if clean is not None else np.ones(len(pool_images), dtype=bool)

    if real is not None:
        real_images = real.images.float() / 127.5 - 1  # [-1, 1], as G's images, for the pixel baseline
        real_z = torch.full((len(real.images), G.config.z_dim), math.nan)  # filled by _invert_missing
    evaluation = ArithmeticEvaluation()
    for e, expression in enumerate(expressions):
        say(f"arithmetic: {expression.text}")
        chance_target, chance_success = success(pool_truth, expression)
        entry = {
            "text": expression.text,
            "target": expression.target,
            "kept": list(expression.kept),
            "chance": {"target": float(chance_target.mean()), "success": float(chance_success.mean()), "clean": float(pool_clean.mean())},
            "by_selection": {},
        }
        for selection in selections:
            if selection == "real":
                if real is None:
                    entry["by_selection"][selection] = {"skipped": "no real pictures given"}
                    continue
                candidates, missing = _candidates("oracle", expression, [], np.zeros(0), real.truth, seed)
                source = (real_z, real_images, real.truth)
                if not missing:
                    _invert_missing(real, real_z, np.concatenate(candidates), say)
            else:
                candidates, missing = _candidates(selection, expression, names, probabilities, pool_truth, seed)
                source = (pool_z, pool_images, pool_truth)
            if missing:
                what = "real picture is labelled" if selection == "real" else "generated sample in the pool is judged"
                entry["by_selection"][selection] = {"skipped": f"no {what} {', '.join(missing)}"}
                continue
            result = {
                # How often the eval net agrees that the candidates are what the concept says (1 for oracle picks).
                "candidates_match": {
                    c.label: float(satisfies({n: v[cand] for n, v in source[2].items()}, c.conditions).mean())
                    for c, cand in zip(expression.concepts, candidates, strict=True)
                },
                "candidates": {c.label: int(len(cand)) for c, cand in zip(expression.concepts, candidates, strict=True)},
                "by_k": {},
            }
            for k in ks:
                rng = np.random.default_rng([seed, k, e, SELECTIONS.index(selection)])
                result["by_k"][str(k)], figure = _trials(G, expression, candidates, k, trials, rng, *source, judge, clean)
                evaluation.figures[(expression.name, selection, k)] = figure
            entry["by_selection"][selection] = result
        evaluation.results[expression.name] = entry
    evaluation.results["_summary"] = summarise(evaluation.results, ks, selections)
    evaluation.results["_protocol"] = {
        "pool": pool, "trials": trials, "ks": list(ks), "candidates_per_concept": CANDIDATES, "seed": seed,
        "selections": {"probe": "exemplars the attribute probe on D features rates most likely (what the explorer does)",
                       "oracle": "exemplars the eval net judges to match: isolates the arithmetic from the probe's mistakes",
                       "real": "held-out real pictures whose own labels match, inverted to z (explorer.invert); pixel = the real pictures"},
        "probe_accuracy": {n: round(a, 4) for n, a in probe.accuracy.items()} if probe is not None else None,
        "success": "every target attribute present and every kept attribute absent, judged by the eval net; pixel results "
                   + ("must also be a single clean face by the clean-face checker (real renders vs pixel blends)" if clean is not None
                      else "are NOT checked for a single clean face (no checker given): pixel blends can count"),
        "clean_check": clean is not None,
    }
    return evaluation


def _candidates(
    selection: str, expression: Expression, names: Sequence[str], probabilities: np.ndarray,
    pool_truth: dict[str, np.ndarray], seed: int,
) -> tuple[list[np.ndarray], list[str]]:
    """Per concept, pool indices that trials draw exemplars from; and the concepts no sample matches (oracle)."""
    candidates, missing = [], []
    for c, concept in enumerate(expression.concepts):
        if selection == "probe":
            ranked = np.argsort(-concept_scores(probabilities, names, concept.conditions), kind="stable")
            candidates.append(ranked[:CANDIDATES])
        else:
            matching = np.flatnonzero(satisfies(pool_truth, concept.conditions))
            if len(matching) == 0:
                missing.append(concept.label)
            rng = np.random.default_rng([seed, c, len(matching)])
            candidates.append(np.sort(rng.permutation(matching)[:CANDIDATES]))
    return candidates, missing


OUTCOMES = ("target", "success", "success_unchecked", "clean")


def _invert_missing(real: RealExemplars, real_z: torch.Tensor, wanted: np.ndarray, say: Callable[[str], None]) -> None:
    """Invert the wanted real pictures not inverted yet, into real_z's rows (NaN = not yet)."""
    todo = np.array(sorted({int(i) for i in wanted if torch.isnan(real_z[int(i), 0])}), dtype=np.int64)
    if len(todo):
        say(f"inverting {len(todo)} real pictures")
        real_z[todo] = torch.as_tensor(real.invert(real.images[todo]), dtype=torch.float32)


def _trials(G, expression, candidates, k, trials, rng, pool_z, pool_images, pool_truth, judge, clean=None) -> tuple[dict, dict]:
    """`trials` draws of k exemplars per concept (disjoint across concepts): success rates, and trial 0's images."""
    flags: dict[str, list[np.ndarray]] = {f"{m}_{what}": [] for m in METHODS for what in OUTCOMES}
    exemplar_ok, variation = [], []
    figure = {}
    for trial in range(trials):
        used: set[int] = set()
        bins, exemplar_index = [], []
        for concept, cand in zip(expression.concepts, candidates, strict=True):
            free = np.array([i for i in cand if i not in used] or list(cand))  # reuse only if nothing else is left
            chosen = rng.choice(free, size=min(k, len(free)), replace=False)
            used.update(chosen.tolist())
            exemplar_index.append(chosen)
            bins.append(ConceptBin(concept.label, [], concept.weight, latents=list(pool_z[chosen].numpy())))
            exemplar_ok.append(satisfies({n: v[chosen] for n, v in pool_truth.items()}, concept.conditions))
        y = combine(bins, G.config.z_dim).y
        # The mean of k standard-normal z's has |z| ~ sqrt(z_dim / k), so Y = m1 - m2 + m3 sits at
        # ~sqrt(3 z_dim / k): on the prior's shell for k = 3, inside it (towards the "average
        # image") for larger k. z_shell rescales Y to sqrt(z_dim) to separate that from the concept.
        y_shell = y * (G.config.z_dim ** 0.5 / torch.linalg.vector_norm(y).clamp_min(1e-8))
        grid = generate(G, torch.cat([arithmetic_grid_latents(y, seed=trial), arithmetic_grid_latents(y_shell, seed=trial)]))
        pixels = pixel_arithmetic([pool_images[i] for i in exemplar_index], [b.weight for b in bins])
        # How much the paper's 3x3 neighbourhood varies: mean |neighbour - G(Y)| in 0-255 levels.
        variation.append(float((grid[:9] - grid[4:5]).abs().mean()) * 127.5 * 9 / 8)
        results = torch.cat([grid, pixels[None]])
        target, full = success(judge(results), expression)
        single = clean(results) if clean is not None else np.ones(len(results), dtype=bool)
        for method, part in (("z", slice(0, 9)), ("z_shell", slice(9, 18)), ("pixel", slice(18, 19))):
            flags[f"{method}_target"].append(target[part])
            flags[f"{method}_success"].append(full[part] & single[part] if method == "pixel" else full[part])
            flags[f"{method}_success_unchecked"].append(full[part])
            flags[f"{method}_clean"].append(single[part])
        if trial == 0:
            figure = {"z": grid[:9], "z_shell": grid[9:], "pixel": pixels}
    row = {method: {what: rate_with_ci(np.concatenate(flags[f"{method}_{what}"])) for what in OUTCOMES} for method in METHODS}
    row.update(exemplars_match=float(np.concatenate(exemplar_ok).mean()), trials=trials,
               neighbourhood_variation=float(np.mean(variation)))
    return row, figure


def summarise(results: dict, ks: Sequence[int], selections: Sequence[str] = SELECTIONS) -> dict:
    """Mean success over the expressions evaluated: {selection: {"z": {"1": r, ...}, "pixel": {...}}}."""
    out = {}
    for selection in selections:
        rows = [e["by_selection"][selection] for n, e in results.items() if not n.startswith("_") and "by_k" in e["by_selection"].get(selection, {})]
        if rows:
            out[selection] = {
                method: {str(k): float(np.mean([r["by_k"][str(k)][method]["success"]["rate"] for r in rows])) for k in ks}
                for method in METHODS
            }
    return out


def format_table(results: dict) -> str:
    """Markdown: a row per expression, exemplar selection and k: z-space vs pixel-space success (95 % interval)."""
    def cell(r: dict) -> str:
        return f"{r['rate']:.0%} ({r['low']:.0%}–{r['high']:.0%})"

    lines = [
        "| expression | exemplars | k | z-space success | z on the shell | pixel-space success | pixel, no clean check | z target only "
        "| clean faces z / pixel | exemplars match | chance |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in results.items():
        if name.startswith("_"):
            continue
        for selection, result in entry["by_selection"].items():
            if "skipped" in result:
                lines.append(f"| {entry['text']} | {selection} | | skipped: {result['skipped']} | | | | | | | |")
                continue
            for k, row in result["by_k"].items():
                lines.append(
                    f"| {entry['text']} | {selection} | {k} | {cell(row['z']['success'])} | {cell(row['z_shell']['success'])} | "
                    f"{cell(row['pixel']['success'])} | {cell(row['pixel']['success_unchecked'])} | {cell(row['z']['target'])} | "
                    f"{row['z']['clean']['rate']:.0%} / {row['pixel']['clean']['rate']:.0%} | {row['exemplars_match']:.0%} | "
                    f"{entry['chance']['success']:.0%} |"
                )
    for selection, summary in (results.get("_summary") or {}).items():
        for method in METHODS:
            ks = " / ".join(f"k={k}: {v:.0%}" for k, v in summary[method].items())
            lines.append(f"| **mean over expressions** | {selection} | | {method}: {ks} | | | | | | | |")
    return "\n".join(lines)
