"""Which direction sliders the explorer offers, in what order, and which are on at first: one rule for both UIs.

A checkpoint's directions (`explorer.analysis.available_directions`) are named by family:

    sefa:K, ganspace:K         unsupervised (always SeFa; GANSpace when an analysis is cached)
    cond:NAME                  InterFaceGAN conditional: NAME's direction orthogonalised against the other
                               labelled attributes (and skin tone, yaw), then refined at the slider's full
                               offset through G and D (explorer.refine_directions), so that moving it changes
                               NAME and as little else as the generator allows
    attr:NAME, class:NAME      the raw mean difference of confidently labelled samples' z
    svm:NAME                   the linear SVM normal of the same samples
    factor:NAME                a continuous factor's direction (e.g. factor:yaw, factor:skin_tone): the slope of
                               the probe's estimate of NAME on z

For each labelled attribute or class NAME the default slider is `cond:NAME` when the analysis has
it, else the raw `attr:NAME` / `class:NAME`; the others stay selectable. Both UIs show the groups
of `slider_groups` in that order, and start with `default_sliders` on. `slider_help` is a slider's
tooltip in both: the direction's description, then what `training.evaluate --what directions`
measured for that very vector when the checkpoint's meta.json holds it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from explorer.directions import Direction

DEFAULT_SEFA = 3  # SeFa sliders on at first: the strongest few are the clearest edits
MAX_OFFSET = 10.0  # slider range and link limit, latent units (prior std 1): +-3 is already a large edit
LABELLED = ("cond", "attr", "class", "svm")  # the prefixes of labelled directions, default first


@dataclass(frozen=True)
class SliderGroup:
    title: str  # e.g. "Attributes", "SeFa"
    names: list[str]  # direction names, in display order
    open: bool  # shown expanded / selected at first


def concept_of(name: str) -> str | None:
    """"Smiling" for "cond:Smiling", "attr:Smiling", "svm:Smiling", "class:Sneaker"; None for other families."""
    prefix, sep, rest = name.partition(":")
    return rest if sep and prefix in LABELLED else None


def default_labelled(directions: Mapping[str, Direction]) -> list[str]:
    """One slider per labelled attribute/class, in the set's order: cond:NAME if present, else attr:NAME/class:NAME.

    A concept with only an svm: direction gets that one, so no labelled concept goes without a default.
    """
    by_concept: dict[str, dict[str, str]] = {}
    for name in directions:
        concept = concept_of(name)
        if concept is not None:
            by_concept.setdefault(concept, {})[name.partition(":")[0]] = name
    return [next(variants[p] for p in LABELLED if p in variants) for variants in by_concept.values()]


def slider_groups(directions: Mapping[str, Direction]) -> list[SliderGroup]:
    """Every offered direction once: the labelled defaults, SeFa, GANSpace, then the other labelled variants.

    Empty groups are left out. The labelled defaults' title says whether they are attributes or classes.
    """
    defaults = default_labelled(directions)
    kinds = {directions[n].kind for n in defaults}
    groups = [
        SliderGroup("Classes" if kinds == {"class"} else "Attributes", defaults, True),
        SliderGroup("SeFa", [n for n in directions if n.startswith("sefa:")], True),
        SliderGroup("GANSpace", [n for n in directions if n.startswith("ganspace:")], False),
        SliderGroup("Factors (continuous: head turn, skin tone)", [n for n in directions if directions[n].kind == "factor"], False),
        SliderGroup(
            "Other labelled directions (raw mean difference, SVM normal)",
            [n for n in directions if concept_of(n) is not None and n not in defaults], False,
        ),
    ]
    return [g for g in groups if g.names]


def offered_directions(directions: Mapping[str, Direction]) -> list[str]:
    """Every direction name in display order (the groups flattened)."""
    return [n for group in slider_groups(directions) for n in group.names]


def default_sliders(directions: Mapping[str, Direction]) -> list[str]:
    """The sliders on at first: the labelled defaults, then the DEFAULT_SEFA strongest SeFa directions."""
    sefa = [n for n in directions if n.startswith("sefa:")][:DEFAULT_SEFA]
    return default_labelled(directions) + sefa


def direction_label(name: str, directions: Mapping[str, Direction]) -> str:
    """A slider's label in both UIs: "raw z[3]", or the direction's name with its score, e.g. "sefa:0 (12%)"."""
    if name.startswith("z:"):
        return f"raw z[{name[2:]}]"
    d = directions.get(name)
    score = "" if d is None or d.score is None else f" ({d.score:.0%})"
    return f"{name}{score}"


def measured_note(name: str, directions: Mapping[str, Direction], evaluation: object) -> str | None:
    """What `training.evaluate --what directions` measured for this slider, as one sentence; None when it did not.

    `evaluation` is meta.json's "evaluation" (a user's file: anything malformed counts as unmeasured).
    The figures are used only when they were measured on this very vector (its fingerprint): a
    recomputed analysis makes them stale, and then nothing is said.
    """
    concept, direction = concept_of(name), directions.get(name)
    results = evaluation.get("directions") if isinstance(evaluation, Mapping) else None
    entry = results.get(concept) if isinstance(results, Mapping) and concept is not None else None
    by_direction = entry.get("by_direction") if isinstance(entry, Mapping) else None
    r = by_direction.get(name) if isinstance(by_direction, Mapping) else None
    if direction is None or not isinstance(r, Mapping) or r.get("vector") != direction.fingerprint():
        return None
    flip, other, which, seeds, alpha = (r.get(k) for k in ("flip_rate", "max_other_flip", "max_other_attribute", "seeds", "alpha"))
    if not (_fraction(flip) and _fraction(other) and (which is None or isinstance(which, str)) and _count(seeds) and _number(alpha)):
        return None
    note = f"Measured (+{alpha:g} from {seeds} seeds without {concept}, judged by the eval net): {concept} appears on {flip:.0%}"
    note += f"; {which} changes on {other:.0%}" if which else ""
    floor = entry.get("renderer_edit")
    if isinstance(floor, Mapping) and _fraction(floor.get("max_other_flip")) and isinstance(floor.get("max_other_attribute"), str):
        note += f" (a perfect edit changes at most {floor['max_other_flip']:.0%}: {floor['max_other_attribute']})"
    return note + "."


def slider_help(name: str, directions: Mapping[str, Direction], evaluation: object = None) -> str:
    """A slider's tooltip in both UIs: what the direction is, then what was measured for it (`measured_note`)."""
    if name.startswith("z:") or name not in directions:
        return "adds this much to one coordinate of z"
    note = measured_note(name, directions, evaluation)
    return f"{directions[name].description}. {note}" if note else directions[name].description


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fraction(value: object) -> bool:
    return _number(value) and 0.0 <= value <= 1.0


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
