"""Invert & edit: your own picture (or a dataset one) -> the z that redraws it -> the Generate page's sliders on it.

Inversion is `explorer.invert.invert_picture` (encoder start, then Adam on pixels + D features). The
edited latent is z + sum of offset * unit direction, as on the Generate page; the link holds z itself
as a compact token (`?z=...&d=...`), since an inverted picture has no seed.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from explorer.images import png_bytes
from explorer.latent import apply_offsets
from explorer.real_exemplars import dataset_labels, matching_indices, unknown_data_message
from explorer.sliders import MAX_OFFSET, default_sliders, direction_label, offered_directions, slider_help
from explorer.urlstate import Z_PARAM, decode_latent_state, encode_latent_state
from ui import cache
from ui import invert as inv
from ui.sidebar import page_setup
from ui.state import checkpoint_changed, is_new_page, kept, kept_keys, kept_value, set_kept
from ui.widgets import link_box, show_image

OFF = "inv_off::"  # slider keys: OFF + direction name

active = page_setup("invert", link=False)
key, checkpoint = active.key, active.checkpoint
z_dim = checkpoint.config.z_dim
directions, _, _ = cache.directions(key)
offered = offered_directions(directions)

if checkpoint_changed("invert", active.label):
    set_kept("inv_dirs", default_sliders(directions))
    set_kept("inv_z", None)
    for name in kept_keys(OFF):
        set_kept(name, 0.0)

st.title("Invert & edit")
params = st.query_params.to_dict()
if is_new_page() and Z_PARAM in params:  # a shared link: its latent and offsets, on the page's first run
    z_link, link_offsets, link_errors = decode_latent_state(params, z_dim, known_directions=set(directions))
    if link_errors:
        st.warning("The link could not be used as it is: " + "; ".join(link_errors) + ".")
    if z_link is not None:
        set_kept("inv_z", z_link.tolist())
        set_kept("inv_dirs", [n for n in offered if n in link_offsets] or default_sliders(directions))
        for name, value in link_offsets.items():
            set_kept(OFF + name, float(value))

encoder = inv.encoder_or_offer(key, "invert")

source = st.radio("Picture", ["Upload", "From the dataset"], horizontal=True, **kept("inv_source", "Upload"))
done = None
if encoder is not None and source == "Upload":
    upload = st.file_uploader(
        f"Your picture (any size and mode: centre-cropped and resized to {checkpoint.config.image_size} px)",
        type=["png", "jpg", "jpeg", "webp", "bmp", "gif"],
    )
    if upload is not None:
        try:
            done = inv.inverted_upload(key, upload.getvalue(), upload.name)
        except ValueError as exc:
            st.error(f"This upload cannot be inverted: {exc}")
elif encoder is not None:
    unknown = unknown_data_message(checkpoint)
    try:
        if unknown:
            raise ValueError(unknown)
        dataset = cache.real_dataset(key, inv.DATASET_IMAGES)
        labels = list(dataset_labels(dataset))
        c1, c2 = st.columns(2)
        by = c1.selectbox("Pick by", ["index", *labels], format_func=lambda n: "index" if n == "index" else f"label: {n}", **kept("inv_by", "index"))
        if by == "index":
            index = int(c2.number_input("Index", 0, len(dataset) - 1, step=1, **kept("inv_index", 0)))
        else:
            draw = int(c2.number_input(f"Draw (a picture labelled {by})", 0, 10**6, step=1, **kept("inv_draw", 0)))
            index = int(matching_indices(dataset, {by: 1}, 1, seed=draw)[0])
        done = inv.inverted_dataset_image(key, index)
    except ValueError as exc:
        st.warning(str(exc))

if done is not None:
    set_kept("inv_z", done.z.tolist())
    a, b = st.columns(2)
    with a:
        show_image(done.picture, "Your picture, as the model sees it", side=192)
    with b:
        show_image(done.reconstruction, f"Reconstruction G(z): pixel RMS {done.pixel_rms:.3f}", side=192)
    st.caption(f"Inverted in {done.seconds:.1f} s; the encoder's first guess had pixel RMS {done.start_pixel_rms:.3f}.")

z_values = kept_value("inv_z")
if z_values is None:
    st.stop()
z = torch.tensor(z_values, dtype=torch.float32)

st.subheader("Edit")
chosen = st.multiselect("Direction sliders", offered, format_func=lambda n: direction_label(n, directions), **kept("inv_dirs", default_sliders(directions)))
offsets = {
    name: st.slider(direction_label(name, directions), -MAX_OFFSET, MAX_OFFSET, step=0.1, **kept(OFF + name, 0.0),
                    help=slider_help(name, directions, checkpoint.meta.get("evaluation")))
    for name in chosen
}
z_edit = apply_offsets(z, offsets, {n: d.vector for n, d in directions.items()})
pair = cache.images_for_latents(key, np.stack([z.numpy(), z_edit.numpy()]))
a, b = st.columns(2)
with a:
    show_image(pair[0], "G(z)", side=192)
with b:
    show_image(pair[1], "G(z + offsets)", side=192)
st.download_button("Download the edit (PNG)", png_bytes(pair[1]), file_name="edit.png", mime="image/png")

link_box(active.link(**encode_latent_state(z.numpy(), offsets)), "Link to this latent and edit (z travels in the link as a token):")
