"""Streamlit helpers of the Invert & edit page: the checkpoint's inversion encoder and cached inversions.

The encoder is trained once per checkpoint (`explorer.encoder`, minutes on CPU) and cached beside
it; the page never trains one without the user asking. Inversions are cached on the exact input
(an upload's bytes, or a dataset index), so a slider move never re-inverts.
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from explorer.encoder import Encoder, cached_encoder, load_or_train_encoder
from explorer.invert import InvertedPicture, invert_picture
from explorer.real_exemplars import DATASET_POOL
from explorer.selection import ModelKey
from ui import cache
from ui.widgets import run_with_progress

DATASET_IMAGES = DATASET_POOL  # dataset pictures offered by index or label


@st.cache_resource(max_entries=4, show_spinner=False)
def _loaded_encoder(key: ModelKey) -> Encoder:
    found = cached_encoder(cache.model(key))
    if found is None:
        raise LookupError("no cached encoder")  # not cached by st.cache_resource: looked up again next run
    return found[0]


def encoder(key: ModelKey) -> Encoder | None:
    """The checkpoint's cached encoder, or None when none has been trained yet."""
    try:
        return _loaded_encoder(key)
    except LookupError:
        return None


def train_encoder(key: ModelKey, progress: Callable[[float, str], None]) -> None:
    """Train the encoder in this request and cache it beside the checkpoint (the next run finds it)."""
    load_or_train_encoder(cache.model(key), progress=progress, progress_bar=False)


def encoder_or_offer(key: ModelKey, where: str) -> Encoder | None:
    """The cached encoder; without one, say why inversion waits and offer to train it here (then rerun the app)."""
    found = encoder(key)
    if found is None:
        st.info(
            "This checkpoint has no inversion encoder yet. Training one on the generator's own samples takes minutes on a "
            "CPU (`python -m explorer.precompute` does it ahead of time); it is then cached beside the checkpoint."
        )
        if st.button("Train the encoder now", key=f"train_encoder_{where}"):
            run_with_progress("Training the inversion encoder…", lambda progress: train_encoder(key, progress))
            st.rerun(scope="app")
    return found


@st.cache_data(max_entries=16, show_spinner="Inverting the picture…")
def inverted_upload(key: ModelKey, data: bytes, name: str) -> InvertedPicture:
    """InputImageError (ValueError) with a message for the user when the upload is not a usable picture."""
    return invert_picture(cache.model(key), data, name, encoder=encoder(key))


@st.cache_data(max_entries=16, show_spinner="Inverting the picture…")
def inverted_dataset_image(key: ModelKey, index: int) -> InvertedPicture:
    dataset = cache.real_dataset(key, DATASET_IMAGES)
    return invert_picture(cache.model(key), dataset.images[index].numpy(), encoder=encoder(key))
