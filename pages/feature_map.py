"""Feature map: real and generated images in the discriminator's feature space (UMAP or PCA), from the core's cache.

Selecting points shows their images and, for each, the nearest real images in feature space: a
generated image that sits on top of one training image is a sign of memorisation. UMAP never runs
in a request unless the user presses the compute button (its first call compiles numba kernels for ~7 s).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import streamlit as st

from explorer.datasets import ImageDataset
from explorer.featuremap import (
    ALL_CLASSES,
    REAL_VS_GENERATED,
    FeatureMap,
    load_feature_map,
    load_or_build_feature_map,
    nearest_real,
    point_groups,
    point_hover_text,
)
from explorer.generate import generate
from explorer.images import to_uint8
from explorer.latent import z_from_seeds
from pages import common

MAX_SHOWN = 8  # selected points shown with their neighbours
NEIGHBOURS = 5
N_POINTS = 5000  # real and generated points in a map computed here (as `explorer.precompute`)
TRACE_META = "latent-lab-feature-map"  # lets the hover component find this page's traces
PALETTE = plotly.colors.qualitative.D3
UNLABELLED = "#b0b0b0"
SVG_LIMIT = 4000  # up to this many points, SVG (works without WebGL); above it WebGL, which stays fast


@st.cache_resource(max_entries=4, show_spinner="Reading the feature map…")
def read_map(path: str, mtime: float) -> FeatureMap:
    return load_feature_map(path)


def map_dataset(fmap: FeatureMap, load: Callable[[int], ImageDataset]) -> ImageDataset | None:
    """The dataset the map's real points index, via load(max_images) (its first N images suffice:
    dataset prefixes are stable). None for a generated-only map, or when the dataset cannot be read here.

    The page loads through Streamlit's cache (common.real_dataset); the hover-preview thread, which
    runs outside Streamlit's script context, through the core (common.load_real_dataset).
    """
    if not fmap.is_real.any():
        return None
    try:
        return load(int(fmap.index[fmap.is_real].max()) + 1)
    except ValueError:
        return None


def real_images(dataset: ImageDataset | None, indices: np.ndarray) -> np.ndarray | None:
    """uint8 HWC (or HW) images of dataset indices; None without the dataset."""
    if dataset is None:
        return None
    images = dataset.images[np.asarray(indices)].permute(0, 2, 3, 1).numpy()
    return images[..., 0] if images.shape[-1] == 1 else images


def point_images(G, dataset: ImageDataset | None, fmap: FeatureMap, points: np.ndarray) -> list[np.ndarray | None]:
    """The image behind each map point: the dataset image for a real point, G(z(seed)) for a generated one.

    No Streamlit calls: the hover previews are rendered with it in a background thread.
    """
    points = np.asarray(points)
    out: list[np.ndarray | None] = [None] * len(points)
    real = np.flatnonzero(fmap.is_real[points])
    fake = np.flatnonzero(~fmap.is_real[points])
    if len(fake):
        generated = to_uint8(generate(G, z_from_seeds(fmap.index[points[fake]].tolist(), G.config.z_dim)))
        for j, image in zip(fake, generated):
            out[j] = image
    images = real_images(dataset, fmap.index[points[real]]) if len(real) else None
    if images is not None:
        for j, image in zip(real, images):
            out[j] = image
    return out


ATTRIBUTE_PREFIX = "attribute: "


def colour_options(fmap: FeatureMap) -> list[str]:
    options = [REAL_VS_GENERATED, "D score"]
    if fmap.label_kind == "class":
        options.append(ALL_CLASSES)
    elif fmap.label_kind == "attribute":
        options += [ATTRIBUTE_PREFIX + name for name in fmap.label_names]
    return options


active = common.page_setup()
key, checkpoint = active.key, active.checkpoint
st.title("Feature map")
st.caption(
    "Each point is an image, placed by the discriminator's features (the paper's max-pooled D activations, "
    "reduced by PCA, then UMAP). Real and generated images mixing well means G covers the data; a generated "
    "point right on top of a real one may be a memorised training image."
)
if checkpoint.discriminator is None:
    st.info("This checkpoint has no discriminator, so there are no features to map.")
    st.stop()

maps = common._cached_files(key, "featuremap-*.npz")
if not maps:
    st.info(
        "No feature map is cached for this checkpoint. `python -m explorer.precompute CHECKPOINT` builds one "
        "offline; or compute it here."
    )
    method = st.radio(
        "Layout",
        ["umap", "pca"],
        format_func=lambda m: {"umap": "UMAP (about a minute at 5k+5k on 2 cores)", "pca": "PCA only (seconds)"}[m],
        key="fmap_method",
    )
    label = "Compute feature map (about a minute)" if method == "umap" else "Compute feature map (PCA, seconds)"
    if st.button(label, type="primary"):

        def build(progress):
            probe, _ = common.probe_or_reason(key)
            try:
                dataset = common.real_dataset(key, N_POINTS)
            except ValueError as exc:
                st.warning(f"Without real images ({exc}): the map shows generated images only.")
                dataset = None
            return load_or_build_feature_map(checkpoint, dataset, n_real=N_POINTS, n_fake=N_POINTS, method=method, probe=probe, progress=progress)

        if common.run_with_progress("Computing the feature map…", build) is not None:
            st.rerun()
    st.stop()

if len(maps) > 1:
    path = st.selectbox("Cached map", maps, format_func=lambda p: p.stem, key="fmap_file")
else:
    path = maps[0]
fmap = read_map(str(path), path.stat().st_mtime)

c1, c2, c3 = st.columns(3)
layouts = (["UMAP"] if fmap.coords_umap is not None else []) + ["PCA"]
layout = c1.radio("Layout", layouts, horizontal=True, key="fmap_layout")
options = colour_options(fmap)
colour = c2.selectbox("Colour by", options, key="fmap_colour")
show = c3.radio("Show", ["both", "real", "generated"], horizontal=True, key="fmap_show")
coords = fmap.coords_umap if layout == "UMAP" else fmap.coords_pca
visible = np.ones(len(coords), bool) if show == "both" else (fmap.is_real if show == "real" else ~fmap.is_real)



Scatter = go.Scatter if visible.sum() <= SVG_LIMIT else go.Scattergl
fig = go.Figure()
if colour == "D score":
    i = np.flatnonzero(visible)
    fig.add_trace(
        Scatter(
            x=coords[i, 0], y=coords[i, 1], mode="markers", name="points", meta=TRACE_META, customdata=i.tolist(),
            text=point_hover_text(fmap, i), hoverinfo="text",
            marker={"size": 5, "color": fmap.d_score[i], "colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": "D(x)"}},
        )
    )
else:
    for n, (name, i) in enumerate(point_groups(fmap, colour.removeprefix(ATTRIBUTE_PREFIX))):
        i = i[visible[i]]
        # Fixed, clearly distinct colours (the theme's default palette starts with two blues); grey for unlabelled.
        color = UNLABELLED if name == "unlabelled" else PALETTE[n % len(PALETTE)]
        if len(i):
            fig.add_trace(
                Scatter(
                    x=coords[i, 0], y=coords[i, 1], mode="markers", name=f"{name} ({len(i)})", meta=TRACE_META,
                    customdata=i.tolist(), text=point_hover_text(fmap, i), hoverinfo="text",
                    marker={"size": 5, "opacity": 0.75, "color": color},
                )
            )
# No dragmode: Streamlit then starts in pan mode, where a click selects a point (box and lasso are in the toolbar).
fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
event = st.plotly_chart(fig, key="fmap_plot", on_select="rerun", selection_mode=("points", "box", "lasso"))
G = checkpoint.generator
# Hover previews are files under static/ (served by Streamlit), written once per map in a background
# thread, started after the chart so that its image generation does not compete with drawing the map.
# The thread reads the real images itself (through the core, not Streamlit's cache, which wants a
# script thread): the first view of the page then waits for neither the dataset nor the previews.

preview_data: dict = {}  # the preview thread's dataset, loaded by its first batch (this run's thread only)


def render_previews(points: np.ndarray) -> list:
    if "dataset" not in preview_data:
        preview_data["dataset"] = map_dataset(fmap, lambda n: common.load_real_dataset(checkpoint, n))
    return point_images(G, preview_data["dataset"], fmap, points)


thumbs, thumbs_status = common.hover_thumbnails(key, path.stem, len(coords), render_previews)
if thumbs_status == "ready":
    common.plot_hover(thumbs, TRACE_META)
    st.caption("Hover over a point to see its image; click, box- or lasso-select points to compare them with their nearest real images.")
elif thumbs_status == "preparing":
    common.await_thumbnails(key, path.stem)
else:
    st.caption(f"No hover previews ({thumbs_status}); click, box- or lasso-select points to see their images.")



def point_index(point: dict) -> int | None:
    """The map index we attached as customdata (plain ints: a numpy array would travel as a typed-array dict)."""
    value = point.get("customdata")
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) and 0 <= value < len(coords) else None


# PlotlyState is a dict: its "selection" holds the clicked/boxed/lassoed points.
points = ((event or {}).get("selection") or {}).get("points", [])
selected = np.array([i for i in map(point_index, points) if i is not None], dtype=np.int64)
if len(selected) == 0:
    st.info("Select points (click, box or lasso) to see their images and nearest real neighbours.")
    st.stop()

dataset = map_dataset(fmap, lambda n: common.real_dataset(key, n))
st.subheader(f"{len(selected)} selected" + (f", showing {MAX_SHOWN}" if len(selected) > MAX_SHOWN else ""))
shown = selected[:MAX_SHOWN]
has_real = bool(fmap.is_real.any())
for i, image in zip(shown, point_images(G, dataset, fmap, shown)):
    cols = st.columns([1, 5])
    kind = f"real #{fmap.index[i]}" if fmap.is_real[i] else f"seed {fmap.index[i]}"
    with cols[0]:
        if image is not None:
            common.show_image(image, f"{kind} · D {fmap.d_score[i]:.2f}", side=96)
        else:
            st.caption(f"{kind}: the dataset is not available here")
    with cols[1]:
        if not has_real:
            st.caption("No real images in this map, so no nearest-neighbour check.")
            continue
        neighbours = nearest_real(fmap, int(i), k=NEIGHBOURS + int(fmap.is_real[i]))
        if fmap.is_real[i]:
            neighbours = neighbours[1:]  # a real point finds itself first
        images = real_images(dataset, neighbours)
        if images is None:
            st.caption("Nearest real images: the dataset is not available on this machine.")
        else:
            st.image([common.upscale(im, 96) for im in images], caption=[f"real #{n}" for n in neighbours])
