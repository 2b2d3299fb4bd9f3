"""The Vector arithmetic page's real exemplars (Streamlit): inverted pictures in the bins, from uploads or the dataset.

st.session_state[REAL] holds, per bin, a list of `explorer.real_exemplars.InvertedExemplar` (the z token and
where the picture came from) beside the seeds the board holds. Uploads are inverted by the Invert & edit
page's own call (`ui.invert.inverted_upload`: the core's `invert_picture`, cached on the bytes); "fill from
the dataset by label" is `explorer.real_exemplars.fill_bins_from_dataset`, whose rules (which pictures, how
many, the messages) are the core's. A bin's inverted pictures are shown under its name as their
reconstructions G(z), marked "inverted".
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.checkpoint import Checkpoint
from explorer.real_exemplars import (
    DATASET_POOL, FILL_PER_BIN, MAX_FILL_PER_BIN, InvertedExemplar, exemplar_latents, fill_bins_from_dataset, join_exemplars,
    unknown_data_message,
)
from explorer.selection import ModelKey
from ui import cache
from ui import invert as inv
from ui.state import kept
from ui.widgets import run_with_progress

REAL = "arith_real"  # list[list[InvertedExemplar]]: per bin
PICTURE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif"]


def real_bins(n_bins: int) -> list[list[InvertedExemplar]]:
    """The bins' inverted exemplars, as many lists as bins (kept in session_state)."""
    bins = [list(b) for b in (st.session_state.get(REAL) or [])][:n_bins]
    st.session_state[REAL] = bins + [[] for _ in range(n_bins - len(bins))]
    return st.session_state[REAL]


def set_real(bins: list[list[InvertedExemplar]]) -> None:
    st.session_state[REAL] = [list(b) for b in bins]


def _clear(index: int) -> None:
    st.session_state[REAL][index] = []


def show_inverted(key: ModelKey, slot, index: int) -> None:
    """A bin's inverted pictures in `slot` (an st.empty in its column): reconstructions marked "inverted", and a remove button."""
    exemplars = st.session_state[REAL][index]
    if not exemplars:
        return
    with slot.container():
        z = np.stack(exemplar_latents(exemplars, cache.model(key).config.z_dim))
        st.image(cache.enlarged(cache.images_for_latents(key, z), 64), caption=[f"inverted · {e.label}" for e in exemplars])
        st.button("Remove the inverted pictures", key=f"arith_real_clear_{index}", on_click=_clear, args=(index,))


def _add_uploads(key: ModelKey, uploads: list, target: int, seeds: int) -> None:
    """Invert each upload (the Invert & edit page's call) and add it to bin `target`; a bad one is answered in the page."""
    new = []
    for upload in uploads:
        try:
            done = inv.inverted_upload(key, upload.getvalue(), upload.name)
        except ValueError as exc:  # InputImageError: the message names the file and says why
            st.error(f"This upload cannot be inverted: {exc}")
            continue
        new.append(InvertedExemplar(done.token, upload.name))
    bins = st.session_state[REAL]
    bins[target], notes = join_exemplars(bins[target], new, seeds)
    for note in notes:
        st.info(note[:1].upper() + note[1:] + ".")
    if new:
        st.success(f"Added {len(new)} inverted picture{'s' if len(new) > 1 else ''}: shown under the bin's name.")


def _fill(key: ModelKey, checkpoint: Checkpoint, specs: list[tuple[str, float]], k: int, draw: int, encoder) -> list[int]:
    """The dataset fill: bins whose names name the dataset's labels get its pictures (and only those); returns their indices."""
    try:
        dataset = cache.real_dataset(key, DATASET_POOL)
    except ValueError as exc:  # DatasetError
        st.warning(f"The training pictures cannot be read here: {exc}")
        return []
    fill = run_with_progress(
        "Inverting the dataset's pictures…",
        lambda progress: fill_bins_from_dataset(checkpoint, dataset, specs, k, draw, encoder=encoder, progress=progress),
    )
    if fill is None:
        return []
    replaced = [i for i, exemplars in enumerate(fill.exemplars) if exemplars is not None]
    for i in replaced:
        st.session_state[REAL][i] = fill.exemplars[i]
    if fill.filled:
        st.success("Filled with inverted dataset pictures (the bins' generated samples removed): " + "; ".join(fill.filled) + ".")
    for problem in fill.problems:
        st.info(problem[:1].upper() + problem[1:] + ".")
    return replaced


def real_panel(key: ModelKey, checkpoint: Checkpoint, specs: list[tuple[str, float]], seeds: list[list[int]]) -> list[int]:
    """Upload pictures into a bin, or fill the bins from the dataset by label. Returns the bins the fill replaced
    (the page empties their seeds, so they hold the real pictures alone)."""
    with st.expander("Real pictures as exemplars: upload, or fill from the dataset by label"):
        st.caption(
            "Each picture is inverted (the Invert & edit page's encoder + optimisation) and its z joins the bin, averaged "
            "like a generated sample's. The link holds them as z tokens (271 characters each at z 100)."
        )
        unknown = unknown_data_message(checkpoint)  # said first: it holds whether or not an encoder is there yet
        if unknown:
            st.info(unknown)
        encoder = inv.encoder_or_offer(key, "arithmetic")
        if encoder is None:
            return []
        up, fill = st.columns(2)
        with up:
            target = st.selectbox("Into bin", range(len(specs)), format_func=lambda i: specs[min(i, len(specs) - 1)][0], key="arith_real_bin")
            target = min(int(target or 0), len(specs) - 1)
            uploads = st.file_uploader(
                f"Your pictures (centre-cropped and resized to {checkpoint.config.image_size} px)", type=PICTURE_TYPES,
                accept_multiple_files=True, key="arith_uploads",
            )
            if st.button("Invert and add to the bin", disabled=not uploads, key="arith_real_add"):
                _add_uploads(key, uploads, target, len(seeds[target]))
        with fill:
            if unknown:
                st.caption("Filling the bins from the dataset needs the training pictures (see above).")
                return []
            k = int(st.number_input("Pictures per bin", 1, MAX_FILL_PER_BIN, **kept("arith_fill_k", FILL_PER_BIN)))
            draw = int(st.number_input("Draw (which matching pictures)", 0, 10**6, **kept("arith_fill_draw", 0)))
            if st.button("Fill the bins from the dataset by label", key="arith_fill",
                         help="Bins named after the dataset's labels ('smiling woman': Smiling=1, Male=0) get that many of "
                         "its pictures with those labels, inverted."):
                return _fill(key, checkpoint, specs, k, draw, encoder)
    return []
