"""Latent walks (Radford et al. 2015, Sec. 6.1): through a series of seeds, or along one direction.

Smooth transitions mean the generator learned a continuous representation rather than memorising
images; sharp jumps in the frame-to-frame distance plot are where it does not. Lerp cuts inside the
prior's shell between keypoints (shown in the norm plot); slerp stays on it.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from explorer.evaluation.smoothness import frame_distances
from explorer.latent import (
    MAX_SEED, PAPER_WALK, WALK_MODES, direction_walk, keypoint_seeds, latent_norm_stats, walk, z_from_seed, z_from_seeds,
)
from explorer.sliders import direction_label, offered_directions
from explorer.video import frames_to_gif, frames_to_mp4
from ui import cache
from ui.figures import frame_change_figure, norm_figure
from ui.sidebar import page_setup
from ui.state import checkpoint_changed, kept, kept_value, set_kept
from ui.widgets import directions_panel, show_messages, show_mosaic


@st.cache_data(max_entries=8, show_spinner="Encoding the preview…")
def preview_mp4(frames: np.ndarray, fps: int) -> bytes:
    return frames_to_mp4(frames, fps=fps)


active = page_setup("walks")
key, checkpoint = active.key, active.checkpoint
z_dim = checkpoint.config.z_dim
st.title("Latent walks")

mode = st.radio("Walk", ["Through seeds", "Along a direction"], horizontal=True, **kept("walk_kind", "Through seeds"))
c1, c2, c3 = st.columns(3)
if mode == "Through seeds":
    text = c1.text_input("Keypoint seeds", **kept("walk_seeds", PAPER_WALK), help="Whole numbers separated by commas or spaces.")
    steps = c2.slider("Frames per segment", 2, 16, **kept("walk_steps", 8))
    interpolation = c3.radio("Interpolation", WALK_MODES[::-1], horizontal=True, **kept("walk_interp", "slerp"), help="slerp follows the prior's shell; lerp cuts inside it.")
    loop = c3.checkbox("Loop back to the first seed", **kept("walk_loop", False))
    seeds, problems = keypoint_seeds(text)
    show_messages(problems)
    if len(seeds) < 2:
        st.stop()
    latents = walk(z_from_seeds(seeds, z_dim), steps, interpolation, loop=loop)
    keypoints_at, per_row = list(range(0, len(latents), steps)), steps
else:
    directions, _, _ = cache.directions(key)
    directions_panel(key, "walks")
    offered = offered_directions(directions)
    if checkpoint_changed("walks", active.label) or kept_value("walk_direction") not in directions:
        set_kept("walk_direction", offered[0])  # the default rule's first: cond:/attr:/class: when labelled, else SeFa
    name = c1.selectbox("Direction", offered, format_func=lambda n: direction_label(n, directions), **kept("walk_direction", None))
    seed = c2.number_input("Seed", 0, MAX_SEED, **kept("walk_seed", 0))
    span = c3.slider("Span (± latent units)", 0.5, 8.0, step=0.5, **kept("walk_span", 3.0))
    count = c3.slider("Frames", 3, 61, step=2, **kept("walk_frames", 17))
    latents = direction_walk(z_from_seed(int(seed), z_dim), torch.from_numpy(directions[name].vector), float(span), int(count))
    keypoints_at, per_row = [int(count) // 2], min(int(count), 12)
    st.caption(directions[name].description)

frames = cache.images_for_latents(key, latents.numpy())
st.markdown(f"**{len(frames)} frames**")
show_mosaic(frames, nrow=per_row, side=64)

left, right = st.columns([1, 2])
with left:
    fps = st.slider("Frames per second", 2, 30, **kept("walk_fps", 12))
    st.video(preview_mp4(frames, fps), loop=True, autoplay=True, muted=True)
    d1, d2 = st.columns(2)
    # The files are encoded only when a button is pressed (the GIF takes seconds for long walks).
    d1.download_button("Download GIF", data=lambda: frames_to_gif(frames, fps=fps), file_name="walk.gif", mime="image/gif", on_click="ignore", key="walk_gif")
    d2.download_button("Download MP4", data=lambda: frames_to_mp4(frames, fps=fps), file_name="walk.mp4", mime="video/mp4", on_click="ignore", key="walk_mp4")
with right:
    # the measure `training.evaluate --what smoothness` reports
    st.plotly_chart(frame_change_figure(frame_distances(frames), keypoints_at), key="walk_distance")
    st.plotly_chart(norm_figure(latents.norm(dim=1).numpy(), latent_norm_stats(z_dim)), key="walk_norm")
