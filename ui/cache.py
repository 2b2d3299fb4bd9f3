"""st.cache wrappers around the core: loaded models, generated images, directions, the probe, datasets, maps.

Keys are `explorer.selection.ModelKey`s (snapshot path + meta.json hash), so a run that moves on
never serves stale weights; analysis results are also keyed on the cache folder's signature, so a
`python -m explorer.precompute` or an in-app compute is picked up on the next run.
"""
from __future__ import annotations

import base64
import gc

import numpy as np
import streamlit as st
import torch

from explorer import analysis
from explorer.arithmetic import ArithmeticChecks, ArithmeticResult, ConceptBin, arithmetic, check_arithmetic
from explorer.arithmetic import consistency_baseline as explorer_consistency_baseline
from explorer.checkpoint import Checkpoint, load_checkpoint
from explorer.datasets import ImageDataset
from explorer.directions import DirectionSet
from explorer.probe import Probe
from explorer.featuremap import FeatureMap, load_feature_map
from explorer.generate import generate, realism
from explorer.images import enlarge, png_bytes, to_uint8
from explorer.latent import z_from_seeds
from explorer.selection import ModelKey
from explorer.ztoken import z_from_token


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def load_model(path: str, meta_sha: str) -> Checkpoint:
    """One loaded (eval-mode, never mutated) checkpoint per snapshot, shared by every session; `meta_sha` keys only.

    Then the heap is frozen (`gc.freeze`): Streamlit runs a full `gc.collect(2)` after every script
    run, fragment reruns included, and with torch, numpy and Streamlit imported that is ~250k
    long-lived objects to walk: 100-150 ms per slider move on this project's 2-core host, more than
    all the rendering work (BENCHMARKS.md, explorer latency). Frozen objects are skipped by the
    cyclic collector; what dies later is still freed by reference counting, and everything created
    after this point is collected as before. The cost: cycles among objects alive at the freeze
    (the first session's own, say) are never reclaimed, once per process.
    """
    checkpoint = load_checkpoint(path)
    if not gc.get_freeze_count():  # once per process: the bulk is the imports, not the checkpoint
        gc.collect()  # no garbage goes into the frozen generation
        gc.freeze()
    return checkpoint


def model(key: ModelKey) -> Checkpoint:
    return load_model(key.path, key.meta_sha)


@st.cache_data(max_entries=64, show_spinner=False)
def images_for_latents(key: ModelKey, z: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W[, 3]) for latents (N, z_dim); cached on the exact latents."""
    return to_uint8(generate(model(key).generator, torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))))


@st.cache_data(max_entries=32, show_spinner=False)
def seed_images(key: ModelKey, seeds: tuple[int, ...]) -> np.ndarray:
    return images_for_latents(key, z_from_seeds(list(seeds), model(key).config.z_dim).numpy())


@st.cache_data(max_entries=64, show_spinner=False)
def images_and_realism(key: ModelKey, z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 images (N, H, W[, 3]) and sigmoid(D(G(z))) (N,) for latents (N, z_dim), from one pass of G.

    The realism is None when the checkpoint has no discriminator. Cached on the exact latents, so a
    page that asks for the unedited and the edited latent separately generates only the edited one
    when a slider moves.
    """
    checkpoint = model(key)
    images = generate(checkpoint.generator, torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)))
    scores = None if checkpoint.discriminator is None else realism(checkpoint.discriminator, images)
    return to_uint8(images), scores


@st.cache_data(max_entries=16, show_spinner=False)
def seed_data_urls(key: ModelKey, seeds: tuple[int, ...]) -> dict[int, str]:
    """PNG data URLs of G(z(seed)) at native size, for <img src> inside components (the board scales them, pixelated)."""
    images = seed_images(key, seeds)
    return {s: "data:image/png;base64," + base64.b64encode(png_bytes(im)).decode("ascii") for s, im in zip(seeds, images)}


@st.cache_data(max_entries=16, show_spinner=False)
def enlarged(images: np.ndarray, side: int) -> list[np.ndarray]:
    return [enlarge(im, side) for im in images]


# ----------------------------------------------------------------------------------------------- analysis


def _signature(key: ModelKey) -> tuple:
    return analysis.analysis_signature(model(key))


@st.cache_resource(max_entries=8, show_spinner=False)
def _directions(key: ModelKey, signature: tuple) -> tuple[DirectionSet, bool, str | None]:
    return analysis.available_directions(model(key))


def directions(key: ModelKey) -> tuple[DirectionSet, bool, str | None]:
    """`explorer.analysis.available_directions`: (SeFa + cached directions, whether an analysis is cached, problem)."""
    return _directions(key, _signature(key))


@st.cache_resource(max_entries=2, show_spinner=False)
def real_dataset(key: ModelKey, max_images: int) -> ImageDataset:
    """The checkpoint's training set (its first `max_images`); ValueError (DatasetError) if unavailable here."""
    return analysis.load_real_dataset(model(key), max_images)


@st.cache_resource(max_entries=4, show_spinner=False)
def _cached_probe(key: ModelKey, signature: tuple) -> Probe | None:
    checkpoint = model(key)
    return analysis.cached_probe(checkpoint) if checkpoint.discriminator is not None else None


def cached_probe(key: ModelKey) -> Probe | None:
    """The probe if the analysis cache holds one for these weights (a lookup: never fits)."""
    return _cached_probe(key, _signature(key))


def probe(key: ModelKey) -> tuple[Probe | None, str | None]:
    """(the attribute/class probe, None) or (None, why there is none). Without a cached probe this fits one
    (seconds to a minute) into the analysis cache, where `cached_probe` then finds it.
    """
    found = cached_probe(key)
    if found is not None:
        return found, None
    try:
        return analysis.app_probe(model(key), lambda: real_dataset(key, analysis.PROBE_IMAGES)), None
    except ValueError as exc:  # DatasetError is a ValueError
        return None, str(exc)


@st.cache_resource(max_entries=4, show_spinner="Reading the feature map…")
def feature_map(path: str, mtime: float) -> FeatureMap:
    return load_feature_map(path)


@st.cache_data(max_entries=8, show_spinner=False)
def _feature_map_files(key: ModelKey, signature: tuple) -> list:
    return analysis.find_feature_maps(model(key))


def feature_map_files(key: ModelKey) -> list:
    """Cached feature-map files of this checkpoint, preferred first (`explorer.analysis.find_feature_maps`)."""
    return _feature_map_files(key, _signature(key))



# ----------------------------------------------------------------------------------------------- arithmetic


@st.cache_data(max_entries=8, show_spinner=False)
def probe_predictions(key: ModelKey, seeds: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """(column names, probabilities (N, columns)) of the probe on G(z(seed)); fits the probe if none is cached."""
    from explorer.features import discriminator_features

    found, reason = probe(key)
    if found is None:
        raise ValueError(reason)
    checkpoint = model(key)
    images = generate(checkpoint.generator, z_from_seeds(list(seeds), checkpoint.config.z_dim))
    return found.names, found.predict_proba(discriminator_features(checkpoint.discriminator, images))


def _bins(key: ModelKey, bins: tuple) -> list[ConceptBin]:
    z_dim = model(key).config.z_dim
    return [ConceptBin(name, list(seeds), weight, latents=[z_from_token(t, z_dim) for t in tokens]) for name, seeds, weight, tokens in bins]


@st.cache_data(max_entries=16, show_spinner=False)
def arithmetic_result(key: ModelKey, bins: tuple, noise_seed: int, jitter: float) -> ArithmeticResult:
    """`explorer.arithmetic.arithmetic` for bins ((name, seeds, weight, inverted pictures' z tokens), ...).
    ValueError for unusable bins."""
    checkpoint = model(key)
    return arithmetic(checkpoint.generator, _bins(key, bins), checkpoint.config.z_dim, seed=noise_seed, jitter=jitter)


@st.cache_data(max_entries=4, show_spinner=False)
def consistency_baseline(key: ModelKey) -> float:
    checkpoint = model(key)
    return explorer_consistency_baseline(checkpoint.generator, checkpoint.discriminator)


@st.cache_data(max_entries=16, show_spinner=False)
def arithmetic_checks(key: ModelKey, bins: tuple, noise_seed: int, jitter: float, judged: bool) -> ArithmeticChecks:
    """`explorer.arithmetic.check_arithmetic` of `arithmetic_result` (needs D); with `judged`, the cached probe's
    verdict (part of the key, so a probe fitted later shows up).
    """
    result = arithmetic_result(key, bins, noise_seed, jitter)
    probe = cached_probe(key) if judged else None
    return check_arithmetic(model(key).discriminator, _bins(key, bins), result, consistency_baseline(key), probe)
