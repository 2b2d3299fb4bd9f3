"""A checkpoint's meta.json: the format's names and the one validation of every value in it.

meta.json comes from disk and may be crafted: `"step": Infinity`, `"z_dim": 1e30`, `"g_width": 2**61`,
`"model": []`, nesting thousands of levels deep. `validate_meta` checks the type, finiteness and
bounds of every value the code uses before anything is built from it, and raises ValueError naming
the field (explorer.checkpoint adds the file). Unknown top-level keys are allowed (newer writers may
add some) but every value, known or not, sits within MAX_DEPTH levels.
"""
from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from explorer import values
from explorer.model import SUPPORTED_IMAGE_SIZES, DCGANConfig

FORMAT_NAME = "latent-lab-dcgan"
FORMAT_VERSION = 1
META_FILE = "meta.json"
RESUME_FILE = "resume.pt"
WEIGHT_FILES = {
    "generator": "generator.safetensors",
    "generator_ema": "generator_ema.safetensors",
    "discriminator": "discriminator.safetensors",
}
MAX_META_BYTES = 4 * 1024 * 1024  # a meta.json is a few KB (50 KB with evaluation results)
MAX_DEPTH = 32  # the shipped ones nest 10 levels (evaluation results)
# z_dim and the widths: far inside int64 for every shape and parameter count the code computes.
# Whether such a model fits in memory is a separate check (training.memory, or the loader's
# comparison with the weight files' headers).
MAX_CHANNELS = 2**20
MAX_STEP = 10**12
_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_model(name: str, model: Any) -> DCGANConfig:
    """A DCGANConfig from a dict of its fields, each checked (missing fields take the defaults)."""
    values.mapping(name, model)
    known = {f.name for f in fields(DCGANConfig)}
    unknown = sorted(set(model) - known)
    if unknown:
        raise ValueError(f"{name} has unknown keys {values.brief(', '.join(map(str, unknown)))}")
    if "image_size" in model:
        values.choice(f"{name}.image_size", model["image_size"], SUPPORTED_IMAGE_SIZES)
    if "channels" in model:
        values.choice(f"{name}.channels", model["channels"], (1, 3))
    for key in ("z_dim", "g_width", "d_width"):
        if key in model:
            values.whole(f"{name}.{key}", model[key], 1, MAX_CHANNELS)
    return DCGANConfig.from_dict(model)


def _optional(meta: dict, key: str, check) -> None:
    if meta.get(key) is not None:
        check(key, meta[key])


def _check_scalars(name: str, mapping: Any) -> None:
    """An object of JSON scalars: strings, finite numbers, booleans or null."""
    values.mapping(name, mapping)
    for key, value in mapping.items():
        if isinstance(value, str):
            values.text(f"{name}.{key}", value)
        elif value is not None and not isinstance(value, bool):
            values.number(f"{name}.{key}", value)


def _check_numbers(name: str, mapping: Any) -> None:
    values.mapping(name, mapping)
    for key, value in mapping.items():
        values.number(f"{name}.{key}", value)


def _check_counts(name: str, mapping: Any) -> None:
    values.mapping(name, mapping)
    for key, value in mapping.items():
        values.whole(f"{name}.{key}", value, 0, 10**15)


def _check_dataset(name: str, dataset: Any) -> None:
    values.mapping(name, dataset)
    _optional(dataset, "spec", lambda key, v: values.text(f"{name}.{key}", v))
    _optional(dataset, "num_images", lambda key, v: values.whole(f"{name}.{key}", v, 0, 10**12))
    for key in ("class_names", "attribute_names", "factor_names"):
        _optional(dataset, key, lambda key, v: values.text_list(f"{name}.{key}", v))
    _optional(dataset, "skipped", lambda key, v: _check_counts(f"{name}.{key}", v))


def _check_exported_from(name: str, exported: Any) -> None:
    values.mapping(name, exported)
    _optional(exported, "generator", lambda key, v: values.choice(f"{name}.{key}", v, ("ema", "raw")))
    for key in ("path", "dtype"):
        _optional(exported, key, lambda key, v: values.text(f"{name}.{key}", v))


def _check_files(name: str, files: Any) -> None:
    values.mapping(name, files)
    if "generator" not in files:
        raise ValueError(f"'{name}' must list at least the generator weights")
    for role, entry in files.items():
        if role not in WEIGHT_FILES or not isinstance(entry, dict) or entry.get("name") != WEIGHT_FILES[role]:
            raise ValueError(f"unexpected weight file entry {values.brief(role)}: {values.brief(entry)}")
        digest = entry.get("sha256")
        if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            raise ValueError(f"{name}.{role}.sha256 must be 64 hex digits or null, got {values.brief(digest)}")


def _upgrade(meta: dict) -> dict:
    """Bring an older meta.json up to FORMAT_VERSION, one version step at a time (StyleGAN legacy.py style).

    Version 1 is the first released format, so there is nothing to upgrade yet; a newer file than
    this code understands is refused rather than guessed at.
    """
    version = values.whole("format_version", meta.get("format_version"), 1, 10**6)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"written by a newer latent-lab (format {version}, this code reads up to {FORMAT_VERSION}); upgrade latent-lab"
        )
    upgrades: dict[int, Any] = {}  # version -> function(meta) -> meta of version + 1
    while version < FORMAT_VERSION:
        meta = upgrades[version](meta)
        version = meta["format_version"]
    return meta


def validate_meta(meta: Any) -> dict:
    """The meta dict, upgraded to FORMAT_VERSION, once every value the code uses has been checked.

    ValueError otherwise, naming the field and (shortened) the value.
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"not a latent-lab checkpoint (format is not {FORMAT_NAME!r})")
    if values.depth(meta) > MAX_DEPTH:
        raise ValueError(f"nested {values.depth(meta)} levels deep, at most {MAX_DEPTH} are accepted")
    meta = _upgrade(meta)
    check_model("model", meta.get("model"))
    values.whole("step", meta.get("step"), 0, MAX_STEP)
    _optional(meta, "epoch", lambda key, v: values.number(key, v, 0, MAX_STEP))
    _optional(meta, "images_seen", lambda key, v: values.whole(key, v, 0, 10**18))
    _optional(meta, "steps_per_epoch", lambda key, v: values.whole(key, v, 1, MAX_STEP))
    _optional(meta, "dataset", _check_dataset)
    _optional(meta, "training", _check_scalars)
    _optional(meta, "metrics", _check_numbers)
    _optional(meta, "parameters", _check_counts)
    _optional(meta, "versions", _check_scalars)
    _optional(meta, "exported_from", _check_exported_from)
    _optional(meta, "saved_at", values.text)
    _optional(meta, "evaluation", values.mapping)
    _check_files("files", meta.get("files"))
    return meta
