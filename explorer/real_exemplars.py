"""Real pictures as exemplars for vector arithmetic: pick dataset images by the dataset's own labels, invert them to z.

The paper's arithmetic (Radford et al. 2015, Sec. 6.3) averages the z of a few exemplars per
concept. With inversion (`explorer.invert`) an exemplar can be a real picture: "fill from the
dataset by label" selects images whose ground truth (CelebA's 40 attributes, synthetic faces'
rendered attributes, a folder dataset's class) matches the concept, not images a probe guesses,
and their inverted z go into the bin (`ConceptBin.latents`). Both front ends and
`training.evaluate --what arithmetic` (exemplar source "real") use this module.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from explorer.arithmetic import MAX_BIN_SEEDS, ConceptBin
from explorer.checkpoint import Checkpoint
from explorer.datasets import ImageDataset
from explorer.encoder import Encoder
from explorer.invert import InversionResult, InversionSettings, invert_images


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


def fill_bin_from_dataset(
    checkpoint: Checkpoint,
    dataset: ImageDataset,
    name: str,
    conditions: Mapping[str, int | bool],
    weight: float,
    k: int = 3,
    seed: int = 0,
    settings: InversionSettings = InversionSettings(),
    encoder: Encoder | None = None,
) -> RealBin:
    """A concept bin of k real dataset images matching `conditions`, each inverted through the checkpoint's G."""
    if not 1 <= k <= MAX_BIN_SEEDS:
        raise ValueError(f"k must be 1..{MAX_BIN_SEEDS}, got {k}")
    indices = matching_indices(dataset, conditions, k, seed)
    result = invert_images(checkpoint, dataset.images[indices], settings, encoder)
    return RealBin(ConceptBin(name, [], weight, latents=list(result.z)), indices, result)
