"""Latent walks (Radford et al. 2015, Sec. 6.1): through a series of seeds, or along one direction.

Smooth transitions mean the generator learned a continuous representation rather than memorising
images; sharp jumps in the frame-to-frame distance plot are where it does not. Lerp cuts inside the
prior's shell between keypoints (shown in the norm plot); slerp stays on it.
"""
from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from explorer.latent import (
    WALK_MODES,
    direction_walk,
    latent_norm_stats,
    validate_seed,
    walk,
    z_from_seed,
    z_from_seeds,
)
from explorer.evaluation.smoothness import frame_distances
from explorer.video import frames_to_gif, frames_to_mp4
from pages import common

MAX_KEYPOINTS = 16
PAPER_WALK = "0, 1, 2, 3, 4, 5, 6, 7, 8"  # the paper's figures walk through 9 points


def parse_seeds(text: str) -> tuple[list[int], list[str]]:
    """Seeds from "1, 2 3" text, and messages for the parts that are not seeds."""
    seeds, errors = [], []
    for part in [p for p in re.split(r"[,\s;]+", text.strip()) if p]:
        try:
            seeds.append(validate_seed(int(part)))
        except ValueError as exc:
            errors.append(f"{part!r} is not a seed ({exc})" if part.lstrip("-").isdigit() else f"{part!r} is not a whole number")
    return seeds, errors


@st.cache_data(max_entries=8, show_spinner="Encoding the preview…")
def preview_mp4(frames: np.ndarray, fps: int) -> bytes:
    return frames_to_mp4(frames, fps=fps)


active = common.page_setup()
key, checkpoint = active.key, active.checkpoint
z_dim = checkpoint.config.z_dim
st.title("Latent walks")

mode = st.radio("Walk", ["Through seeds", "Along a direction"], horizontal=True, **common.kept("walk_kind", "Through seeds"))
c1, c2, c3 = st.columns(3)
keypoints_at: list[int] = []
if mode == "Through seeds":
    text = c1.text_input("Keypoint seeds", **common.kept("walk_seeds", PAPER_WALK), help="Whole numbers separated by commas or spaces.")
    steps = c2.slider("Frames per segment", 2, 16, **common.kept("walk_steps", 8))
    interpolation = c3.radio("Interpolation", WALK_MODES[::-1], horizontal=True, **common.kept("walk_interp", "slerp"), help="slerp follows the prior's shell; lerp cuts inside it.")
    loop = c3.checkbox("Loop back to the first seed", **common.kept("walk_loop", False))
    seeds, errors = parse_seeds(text)
    common.show_errors(errors)
    if len(seeds) < 2:
        st.warning("A walk needs at least two keypoint seeds, e.g. " + PAPER_WALK + ".")
        st.stop()
    if len(seeds) > MAX_KEYPOINTS:
        st.warning(f"Using the first {MAX_KEYPOINTS} of {len(seeds)} seeds.")
        seeds = seeds[:MAX_KEYPOINTS]
    latents = walk(z_from_seeds(seeds, z_dim), steps, interpolation, loop=loop)
    keypoints_at = list(range(0, len(latents), steps))
    per_row = steps
else:
    directions = common.all_directions(key)
    common.directions_panel(key, "walks")
    if common.kept_value("walk_direction") not in directions:  # first visit, or another checkpoint's direction
        common.set_kept("walk_direction", next(iter(directions)))
    name = c1.selectbox("Direction", list(directions), format_func=lambda n: common.direction_label(n, directions), **common.kept("walk_direction", None))
    seed = c2.number_input("Seed", 0, 2**32 - 1, **common.kept("walk_seed", 0))
    span = c3.slider("Span (± latent units)", 0.5, 8.0, step=0.5, **common.kept("walk_span", 3.0))
    count = c3.slider("Frames", 3, 61, step=2, **common.kept("walk_frames", 17))
    latents = direction_walk(z_from_seed(int(seed), z_dim), torch.from_numpy(directions[name].vector), float(span), int(count))
    keypoints_at = [int(count) // 2]
    per_row = min(int(count), 12)
    st.caption(directions[name].description)

frames = common.images_for_latents(key, latents.numpy())
st.markdown(f"**{len(frames)} frames**")
common.show_mosaic(frames, nrow=per_row, side=64)

left, right = st.columns([1, 2])
with left:
    fps = st.slider("Frames per second", 2, 30, **common.kept("walk_fps", 12))
    st.video(preview_mp4(frames, fps), loop=True, autoplay=True, muted=True)
    d1, d2 = st.columns(2)
    # The files are encoded only when a button is pressed (the GIF takes seconds for long walks).
    d1.download_button("Download GIF", data=lambda: frames_to_gif(frames, fps=fps), file_name="walk.gif", mime="image/gif", on_click="ignore", key="walk_gif")
    d2.download_button("Download MP4", data=lambda: frames_to_mp4(frames, fps=fps), file_name="walk.mp4", mime="video/mp4", on_click="ignore", key="walk_mp4")
with right:
    distances = frame_distances(frames)  # the measure `training.evaluate --what smoothness` reports
    fig = go.Figure(go.Scatter(x=np.arange(1, len(frames)), y=distances, mode="lines+markers", name="change"))
    for k in keypoints_at:
        fig.add_vline(x=k, line_dash="dot", line_color="grey")
    fig.update_layout(
        title="Frame-to-frame change (mean |Δpixel|, share of the range)", xaxis_title="frame", yaxis_title="change",
        height=260, margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    st.plotly_chart(fig, key="walk_distance")
    shell = latent_norm_stats(z_dim)
    norms = latents.norm(dim=1).numpy()
    fig = go.Figure(go.Scatter(x=np.arange(len(norms)), y=norms, mode="lines", name="|z|"))
    fig.add_hrect(y0=shell.mean - shell.std, y1=shell.mean + shell.std, fillcolor="green", opacity=0.15, line_width=0)
    fig.update_layout(
        title="|z| along the walk (band: the prior's shell, mean ± std)", xaxis_title="frame", yaxis_title="|z|",
        height=220, margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    st.plotly_chart(fig, key="walk_norm")
