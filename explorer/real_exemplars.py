"""Real pictures as exemplars for vector arithmetic: pick dataset images by the dataset's own labels, invert them to z.

The paper's arithmetic (Radford et al. 2015, Sec. 6.3) averages the z of a few exemplars per
concept. With inversion (`explorer.invert`) an exemplar can be a real picture: "fill from the
dataset by label" selects images whose ground truth (CelebA's 40 attributes, synthetic faces'
rendered attributes, a folder dataset's class) matches the concept, not images a probe guesses,
and their inverted z go into the bin (`ConceptBin.latents`). Both front ends and
`training.evaluate --what arithmetic` (exemplar source "real") use this module.

In the front ends a bin's real exemplar is an `InvertedExemplar`: its z as a URL token
(`explorer.ztoken`, float16) and where the picture came from. The token, not the float32 z, is what
the arithmetic, the caches and the link use, so a shared link reproduces the result exactly.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from explorer.arithmetic import AUTO_PER_BIN, MAX_BIN_SEEDS, ConceptBin, concept_conditions
from explorer.checkpoint import Checkpoint
from explorer.datasets import ImageDataset
from explorer.directions import Progress
from explorer.encoder import Encoder
from explorer.invert import InversionResult, InversionSettings, invert_images
from explorer.ztoken import z_from_token, z_to_token

DATASET_POOL = 5000  # the dataset's first pictures both pages pick from (by index, or by label)
FILL_PER_BIN = AUTO_PER_BIN  # the paper's three exemplars per concept
MAX_FILL_PER_BIN = 8  # pictures one fill inverts per bin: each costs about a second or more on a CPU


def unknown_data_message(checkpoint: Checkpoint) -> str | None:
    """What to tell a user where a feature needs the training pictures but meta.json names none (an imported checkpoint); else None."""
    if checkpoint.dataset.get("spec"):
        return None
    source = (checkpoint.meta.get("imported_from") or {}).get("generator") or {}
    origin = f"imported from {source['path']}" if source.get("path") else "saved without a dataset"
    return (
        f"This checkpoint was {origin} and its training data is unknown, so there are no real pictures to show or "
        "pick exemplars from (the feature map shows generated images only). Import it again with "
        "`python -m training.import_checkpoint ... --dataset SPEC` to name them; your own uploads still work."
    )


def dataset_labels(dataset: ImageDataset) -> dict[str, np.ndarray]:
    """The dataset's own labels as name -> bool (N,): one column per attribute and one per class name."""
    columns: dict[str, np.ndarray] = {}
    if dataset.attributes is not None:
        values = np.asarray(dataset.attributes)
        columns.update({name: values[:, j] > 0 for j, name in enumerate(dataset.attribute_names or [])})
    if dataset.labels is not None and dataset.class_names:
        labels = np.asarray(dataset.labels)
        columns.update({name: labels == c for c, name in enumerate(dataset.class_names)})
    return columns


def matching_indices(dataset: ImageDataset, conditions: Mapping[str, int | bool], limit: int, seed: int = 0) -> np.ndarray:
    """Up to `limit` indices (sorted) of images whose labels meet every condition (name -> 0/1), drawn reproducibly by `seed`.

    ValueError for a label the dataset does not have (the message lists those it has), for no
    conditions, or when no image matches.
    """
    columns = dataset_labels(dataset)
    if not columns:
        raise ValueError(f"{dataset.spec} has no labels (no attributes or classes) to pick exemplars by")
    if not conditions:
        raise ValueError("give at least one label condition, e.g. {'Smiling': 1, 'Male': 0}")
    unknown = sorted(set(conditions) - set(columns))
    if unknown:
        raise ValueError(f"{dataset.spec} has no label {', '.join(unknown)}; it has: {', '.join(columns)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    ok = np.ones(len(dataset), dtype=bool)
    for name, value in conditions.items():
        ok &= columns[name] == bool(value)
    matching = np.flatnonzero(ok)
    if len(matching) == 0:
        wanted = ", ".join(f"{name}={int(bool(v))}" for name, v in conditions.items())
        raise ValueError(f"no image of {dataset.spec} has {wanted}")
    return np.sort(np.random.default_rng(seed).permutation(matching)[:limit])


@dataclass
class RealBin:
    bin: ConceptBin  # latents = the inverted z of the chosen images
    indices: np.ndarray  # dataset rows used
    inversion: InversionResult  # reconstructions, pixel RMS etc. for the UI to show beside the pictures


def _rows(result: InversionResult, rows: slice) -> InversionResult:
    """One bin's share of a batched inversion."""
    return replace(
        result, z=result.z[rows], reconstruction=result.reconstruction[rows], losses={k: v[rows] for k, v in result.losses.items()},
        rms=result.rms[rows], perceptual=result.perceptual[rows], start_rms=result.start_rms[rows], seconds=result.seconds[rows],
    )


# ----------------------------------------------------------------------------------------------- the front ends' bins


@dataclass(frozen=True)
class InvertedExemplar:
    """A real picture in a concept bin, as both front ends keep it."""

    token: str  # its inverted z as a URL token (`explorer.ztoken`): what the arithmetic, caches and links use
    label: str  # where it came from, for the UI: an upload's file name, "fashion-mnist #12", "from the link"

    def z(self, z_dim: int) -> np.ndarray:
        return z_from_token(self.token, z_dim)


def exemplar_latents(exemplars: Sequence[InvertedExemplar], z_dim: int) -> list[np.ndarray]:
    """The (z_dim,) z of each exemplar, for `ConceptBin.latents`; ValueError for a token of another z_dim."""
    return [e.z(z_dim) for e in exemplars]


def join_exemplars(existing: Sequence[InvertedExemplar], new: Sequence[InvertedExemplar], seeds: int) -> tuple[list[InvertedExemplar], list[str]]:
    """A bin's inverted exemplars with `new` added: (exemplars, notes for the user).

    The same picture twice (same token) counts once, as a seed does; a bin holds at most
    MAX_BIN_SEEDS exemplars in all, its `seeds` generated ones included, and what does not fit is left out.
    """
    out, notes = list(existing), []
    tokens = {e.token for e in out}
    for exemplar in new:
        if exemplar.token in tokens:
            notes.append(f"{exemplar.label} is already in the bin")
        elif seeds + len(out) >= MAX_BIN_SEEDS:
            notes.append(f"{exemplar.label} was left out: a bin holds at most {MAX_BIN_SEEDS} exemplars")
        else:
            out.append(exemplar)
            tokens.add(exemplar.token)
    return out, notes


@dataclass
class DatasetFill:
    """What "fill from the dataset by label" did to each bin."""

    bins: list[RealBin | None]  # per bin; None where it was left as it was (see `problems`)
    exemplars: list[list[InvertedExemplar] | None]  # the same pictures as the front ends keep them
    filled: list[str]  # e.g. "'smiling woman': Smiling=1, Male=0 (faces #3, #17, #40)"
    problems: list[str]  # why a bin was left as it was


def fill_bins_from_dataset(
    checkpoint: Checkpoint,
    dataset: ImageDataset,
    bins: Sequence[tuple[str, float]],
    k: int = FILL_PER_BIN,
    seed: int = 0,
    settings: InversionSettings = InversionSettings(),
    encoder: Encoder | None = None,
    progress: Progress | None = None,
) -> DatasetFill:
    """Each bin (name, weight) whose name names the dataset's own labels ("smiling woman" -> Smiling=1, Male=0,
    as auto-fill reads names) gets k matching pictures drawn by `seed`, all inverted in one batch.

    ValueError for a bad k or a dataset without labels; a bin whose name names no label, or whose
    labels no picture has, is reported in `problems` and left as it was.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_FILL_PER_BIN:
        raise ValueError(f"pictures per bin must be a whole number from 1 to {MAX_FILL_PER_BIN}, got {k!r}")
    columns = list(dataset_labels(dataset))
    if not columns:
        raise ValueError(f"{dataset.spec} has no labels (no attributes or classes) to pick exemplars by")
    picked: list[tuple[dict, np.ndarray] | None] = []
    filled, problems = [], []
    for name, _ in bins:
        conditions = concept_conditions(name, columns)
        if not conditions:
            shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
            problems.append(f"'{name}' names none of {dataset.spec}'s labels ({shown}), so it was left as it was")
            picked.append(None)
            continue
        try:
            picked.append((conditions, matching_indices(dataset, conditions, k, seed)))
        except ValueError as exc:
            problems.append(f"'{name}' was left as it was: {exc}")
            picked.append(None)
    wanted = [int(i) for p in picked if p is not None for i in p[1]]
    result = invert_images(checkpoint, dataset.images[np.array(wanted, dtype=np.int64)], settings, encoder, progress) if wanted else None
    out, exemplars, first = [], [], 0
    for (name, weight), p in zip(bins, picked):
        if p is None:
            out.append(None)
            exemplars.append(None)
            continue
        conditions, indices = p
        share = _rows(result, slice(first, first + len(indices)))
        first += len(indices)
        out.append(RealBin(ConceptBin(name, [], weight, latents=list(share.z)), indices, share))
        exemplars.append([InvertedExemplar(z_to_token(z), f"{dataset.spec} #{i}") for z, i in zip(share.z, indices)])
        wanted_text = ", ".join(f"{c}={v}" for c, v in conditions.items())
        filled.append(f"'{name}': {wanted_text} ({', '.join(f'#{i}' for i in indices)})")
    return DatasetFill(out, exemplars, filled, problems)
