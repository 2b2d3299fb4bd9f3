"""Disentangled sliders, measured: does moving along an attribute's direction change that attribute, and only it?

For each attribute A (by default Smiling, Male, Eyeglasses, Wearing_Hat) and each of its slider
directions (the conditional `cond:A`, the raw mean difference `attr:A`, the SVM normal `svm:A`):

1. From seeds DIRECTIONS_SEED_OFFSET, DIRECTIONS_SEED_OFFSET + 1, ... (or another `seed_offset`, for
   a second, independent sample) take the first n (200) whose image the judge (the eval net, trained
   on real renders only) labels without A.
2. Move each z by +alpha (3, in the prior's units) along the direction's unit vector; decode.
3. Report
     flip_rate         share of moved images the judge now labels with A;
     other_flips       per other attribute B, the share of images whose judged B changed (either way;
                       other_gained / other_lost split it by sign);
     max_other_flip    the largest of those over the attributes that are independent of A in the
                       data. Where the data ties B to A (|P(B | A) - P(B | not A)| >= DEPENDENT, e.g.
                       Mouth_Slightly_Open to Smiling, Mustache to Male on synthetic faces) a change
                       of B is what the data asks for, so it is listed under `dependent` with the
                       change the data implies and left out of the maximum;
     skin_tone_shift   mean change of the judge's skin-tone estimate, in standard deviations of the
                       skin-tone factor over real images (a sign: > 0 darker on synthetic faces).
Beside them, the same numbers for a random unit direction orthogonal to the raw one ("random"):
the floor that any +3 move reaches by disturbing faces near a decision boundary.
Targets from issue 14 (for the default slider): flip_rate >= 0.7, max_other_flip <= 0.15,
|skin_tone_shift| <= 0.25.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from explorer.datasets import ImageDataset
from explorer.directions import DEPENDENT, Direction, orthogonalize
from explorer.evaluation.eval_net import EvalNet, predict
from explorer.generate import generate
from explorer.latent import z_from_seeds

DIRECTIONS_SEED_OFFSET = 3_000_000  # disjoint from the explorer's default seeds, FID's and the arithmetic pool's
DEFAULT_ATTRIBUTES = ("Smiling", "Male", "Eyeglasses", "Wearing_Hat")
DEFAULT_STEPS = 200  # seeds without the attribute per direction
DEFAULT_ALPHA = 3.0  # how far each z moves, in the prior's units (|z| ~ 10 for z_dim 100)
MAX_SEEDS_SCANNED = 20_000  # stop looking for seeds without A after this many (a G that always draws A)
TARGETS = {"flip_rate": 0.7, "max_other_flip": 0.15, "abs_skin_tone_shift": 0.25}
SLIDER_PREFIXES = ("cond", "attr", "svm")  # reported per attribute, the default slider first

Judge = Callable[[torch.Tensor], dict[str, np.ndarray]]  # images -> attribute -> bool (N,)
FactorJudge = Callable[[torch.Tensor], np.ndarray]  # images -> a factor's estimate (N,) float


def skin_tone_judge(net: EvalNet, dataset: ImageDataset) -> tuple[FactorJudge | None, float]:
    """(the eval net's skin-tone estimate of images, the skin-tone factor's SD over `dataset`'s real images).

    (None, 1.0) when the net or the dataset has no skin-tone factor: the shift is then not reported.
    """
    if "skin_tone" not in net.config.factor_names or "skin_tone" not in (dataset.factor_names or []):
        return None, 1.0
    column = net.config.factor_names.index("skin_tone")
    std = float(dataset.factors[:, dataset.factor_names.index("skin_tone")].double().std())
    return (lambda images: predict(net, images).factors[:, column]), std


def seeds_without(
    G: nn.Module, judge: Judge, attribute: str, n: int, chunk: int = 500, offset: int = DIRECTIONS_SEED_OFFSET
) -> tuple[np.ndarray, dict[str, np.ndarray], torch.Tensor]:
    """The first n seeds from `offset` whose image is judged without `attribute`: (seeds, verdicts, images)."""
    seeds, verdicts, images = [], [], []
    found = 0
    for start in range(offset, offset + MAX_SEEDS_SCANNED, chunk):
        batch_seeds = np.arange(start, start + chunk)
        batch_images = generate(G, z_from_seeds(batch_seeds.tolist(), G.config.z_dim))
        batch_verdicts = judge(batch_images)
        keep = np.flatnonzero(~batch_verdicts[attribute])[: n - found]
        seeds.append(batch_seeds[keep])
        verdicts.append({k: v[keep] for k, v in batch_verdicts.items()})
        images.append(batch_images[keep])
        found += len(keep)
        if found >= n:
            break
    joined = {k: np.concatenate([v[k] for v in verdicts]) for k in verdicts[0]}
    return np.concatenate(seeds), joined, torch.cat(images)


def flip_statistics(
    before: Mapping[str, np.ndarray], after: Mapping[str, np.ndarray], attribute: str,
    dependence: Mapping[str, float] | None = None,
) -> dict:
    """The module docstring's step 3 for one edit, from the judge's verdicts (attribute -> bool (N,)) before and after it.

    Shared by every slider's row and by `explorer.evaluation.slider_floor` (the renderer's own edit), so the
    floor is measured exactly as the sliders are.
    """
    dependence = dict(dependence or {})
    other_flips = {b: float(np.mean(after[b] != before[b])) for b in after if b != attribute}
    independent = {b: r for b, r in other_flips.items() if dependence.get(b, 0.0) < DEPENDENT}
    worst = max(independent, key=independent.get) if independent else None
    return {
        "flip_rate": float(np.mean(after[attribute])),
        "max_other_flip": float(independent[worst]) if worst else 0.0,
        "max_other_attribute": worst,
        "other_flips": {b: round(r, 4) for b, r in sorted(other_flips.items())},
        # the same changes split by sign: a brim that hides a fringe loses Bangs, one read as a fringe gains it
        "other_gained": {b: round(float(np.mean(after[b] & ~before[b])), 4) for b in sorted(other_flips)},
        "other_lost": {b: round(float(np.mean(before[b] & ~after[b])), 4) for b in sorted(other_flips)},
        "dependent": {b: {"flip": round(other_flips[b], 4), "data_implies": round(dependence[b], 4)}
                      for b in sorted(other_flips) if dependence.get(b, 0.0) >= DEPENDENT},
    }


def evaluate_direction(
    G: nn.Module,
    direction: Direction,
    attribute: str,
    judge: Judge,
    skin: FactorJudge | None = None,
    skin_std: float = 1.0,
    dependence: Mapping[str, float] | None = None,
    n: int = DEFAULT_STEPS,
    alpha: float = DEFAULT_ALPHA,
    start: tuple[np.ndarray, dict[str, np.ndarray], torch.Tensor] | None = None,
) -> dict:
    """The measurements of the module docstring for one direction of one attribute (a JSON-ready dict).

    `start` is `seeds_without(G, judge, attribute, n)` when the caller already has it (one scan per attribute).
    """
    seeds, before, images_before = start if start is not None else seeds_without(G, judge, attribute, n)
    if len(seeds) == 0:
        return {"direction": direction.name, "skipped": f"no seed among {MAX_SEEDS_SCANNED} is judged without {attribute}"}
    z = z_from_seeds(seeds.tolist(), G.config.z_dim)
    images_after = generate(G, z + alpha * torch.from_numpy(direction.vector)[None])
    after = judge(images_after)
    result = {"direction": direction.name, "vector": direction.fingerprint(), "seeds": int(len(seeds)), "alpha": alpha,
              **flip_statistics(before, after, attribute, dependence)}
    if skin is not None:
        result["skin_tone_shift"] = float(np.mean(skin(images_after) - skin(images_before)) / skin_std)
    result["meets_targets"] = bool(
        result["flip_rate"] >= TARGETS["flip_rate"] and result["max_other_flip"] <= TARGETS["max_other_flip"]
        and abs(result.get("skin_tone_shift", 0.0)) <= TARGETS["abs_skin_tone_shift"]
    )
    return result


def evaluate_directions(
    G: nn.Module,
    directions: Mapping[str, Direction],
    judge: Judge,
    skin: FactorJudge | None = None,
    skin_std: float = 1.0,
    dependence: Mapping[str, Mapping[str, float]] | None = None,
    attributes: Sequence[str] = DEFAULT_ATTRIBUTES,
    n: int = DEFAULT_STEPS,
    alpha: float = DEFAULT_ALPHA,
    progress: Callable[[str], None] | None = None,
    seed_offset: int = DIRECTIONS_SEED_OFFSET,
) -> dict:
    """{attribute: {"default": name, "by_direction": {name: result}}} for every slider direction the set has."""
    say = progress or (lambda message: None)
    out: dict = {}
    for attribute in attributes:
        names = [f"{prefix}:{attribute}" for prefix in SLIDER_PREFIXES if f"{prefix}:{attribute}" in directions]
        if not names:
            out[attribute] = {"skipped": f"no direction for {attribute} (the probe found too few confident samples?)"}
            continue
        by_direction = {}
        start = seeds_without(G, judge, attribute, n, offset=seed_offset)
        raw = directions.get(f"attr:{attribute}") or directions[names[0]]
        rng = np.random.default_rng([ord(c) for c in attribute])  # fixed per attribute: reruns give the same floor
        random = Direction(f"random⟂{raw.name}", orthogonalize(rng.standard_normal(raw.vector.shape[0]), [raw.vector]),
                           "attribute", None, "a random unit direction orthogonal to the raw one: the floor of a +alpha move")
        for direction in [directions[name] for name in names] + [random]:
            say(f"directions: {direction.name}, {len(start[0])} seeds moved by {alpha:g}")
            by_direction[direction.name] = evaluate_direction(
                G, direction, attribute, judge, skin, skin_std, (dependence or {}).get(attribute), n, alpha, start
            )
        out[attribute] = {"default": names[0], "by_direction": by_direction}
    out["_protocol"] = {
        "seeds": f"the first {n} seeds from {seed_offset} judged without the attribute", "alpha": alpha,
        "dependent_threshold": DEPENDENT, "targets": TARGETS,
        "judge": "the eval net (trained on real renders only): attributes at p >= 0.5, skin tone by regression",
    }
    return out


def format_table(results: Mapping) -> str:
    """Markdown: a row per attribute and slider direction, then the renderer's own edit where the entry has one."""
    lines = [
        "| attribute | direction | flip rate | max other flip (which) | skin-tone shift (SD) | dependent attributes (flip / data) | targets |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for attribute, entry in results.items():
        if attribute.startswith("_"):
            continue
        if "skipped" in entry:
            lines.append(f"| {attribute} | | skipped: {entry['skipped']} | | | | |")
        for name, r in entry.get("by_direction", {}).items():
            if "skipped" in r:
                lines.append(f"| {attribute} | {name} | skipped: {r['skipped']} | | | | |")
                continue
            default = " (default)" if name == entry["default"] else ""
            lines.append(_row(attribute, f"`{name}`{default}", r, "✔" if r["meets_targets"] else "✘"))
        if "flip_rate" in entry.get("renderer_edit", {}):  # explorer.evaluation.slider_floor: what a perfect slider scores with this judge
            lines.append(_row(attribute, "the renderer's own edit (a perfect slider)", entry["renderer_edit"], "floor"))
    return "\n".join(lines)


def _row(attribute: str, label: str, r: Mapping, mark: str) -> str:
    dependent = ", ".join(f"{b} {d['flip']:.2f} / {d['data_implies']:.2f}" for b, d in r["dependent"].items()) or "—"
    skin = f"{r['skin_tone_shift']:+.2f}" if "skin_tone_shift" in r else "—"
    return (f"| {attribute} | {label} | {r['flip_rate']:.2f} | {r['max_other_flip']:.2f} ({r['max_other_attribute'] or '—'}) "
            f"| {skin} | {dependent} | {mark} |")
