"""Feature map: real and generated images in the discriminator's feature space (UMAP or PCA), from the core's cache.

Selecting points shows their images and, for each, the nearest real images in feature space: a
generated image that sits on top of one training image is a sign of memorisation. UMAP never runs
in a request unless the user presses the compute button (its first call compiles numba kernels for ~7 s).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer import analysis
from explorer.featuremap import discriminator_accuracy, map_dataset, nearest_real, point_images, real_images
from explorer.real_exemplars import unknown_data_message
from ui import cache
from ui.figures import REAL_VS_GENERATED, feature_map_figure, map_colourings, map_layouts
from ui.hover import await_thumbnails, hover_thumbnails, plot_hover
from ui.sidebar import page_setup
from ui.widgets import run_with_progress, show_image

MAX_SHOWN = 8  # selected points shown with their neighbours
NEIGHBOURS = 5
N_POINTS = 5000  # real and generated points in a map computed here (as `explorer.precompute`)
TRACE_META = "latent-lab-feature-map"  # lets the hover component find this page's traces

active = page_setup("feature_map")
key, checkpoint = active.key, active.checkpoint
st.title("Feature map")
st.caption(
    "Each point is an image, placed by the discriminator's features (the paper's max-pooled D activations, "
    "reduced by PCA, then UMAP). A generated point right on top of a real one may be a memorised training image."
)
if checkpoint.discriminator is None:
    st.info("This checkpoint has no discriminator, so there are no features to map.")
    st.stop()
unknown = unknown_data_message(checkpoint)  # an imported checkpoint: no real points, said before anything is built
if unknown:
    st.info(unknown)

maps = cache.feature_map_files(key)
if not maps:
    st.info("No feature map is cached for this checkpoint. `python -m explorer.precompute CHECKPOINT` builds one offline; or compute it here.")
    method = st.radio(
        "Layout", ["umap", "pca"], key="fmap_method",
        format_func=lambda m: {"umap": "UMAP (about a minute at 5k+5k on 2 cores)", "pca": "PCA only (seconds)"}[m],
    )
    if st.button("Compute feature map (about a minute)" if method == "umap" else "Compute feature map (PCA, seconds)", type="primary"):

        def build(progress):
            try:
                dataset = None if unknown else cache.real_dataset(key, N_POINTS)
            except ValueError as exc:
                st.warning(f"Without real images ({exc}): the map shows generated images only.")
                dataset = None
            probe = lambda: cache.probe(key)[0]  # noqa: E731 - fitted only on a cache miss
            return analysis.load_or_build_feature_map(checkpoint, dataset, n_real=N_POINTS, n_fake=N_POINTS, method=method, probe=probe, progress=progress)

        if run_with_progress("Computing the feature map…", build) is not None:
            st.rerun()
    st.stop()

path = st.selectbox("Cached map", maps, format_func=lambda p: p.stem, key="fmap_file") if len(maps) > 1 else maps[0]
fmap = cache.feature_map(str(path), path.stat().st_mtime)

c1, c2, c3 = st.columns(3)
layout = c1.radio("Layout", map_layouts(fmap), horizontal=True, key="fmap_layout")
colour = c2.selectbox("Colour by", map_colourings(fmap), key="fmap_colour")
show = c3.radio("Show", ["both", "real", "generated"], horizontal=True, key="fmap_show")
visible = np.flatnonzero(np.ones(len(fmap.is_real), bool) if show == "both" else (fmap.is_real if show == "real" else ~fmap.is_real))
event = st.plotly_chart(
    feature_map_figure(fmap, colour, layout, visible, trace_meta=TRACE_META), key="fmap_plot", on_select="rerun",
    selection_mode=("points", "box", "lasso"),
)
accuracy = discriminator_accuracy(fmap)
(st.info if colour == REAL_VS_GENERATED else st.caption)(accuracy.note)
G = checkpoint.generator
# Hover previews are files under static/ (served by Streamlit), written once per map by a background thread
# started after the chart, which reads the real images itself through the core (Streamlit's caches want a
# script thread): the first view of the page then waits for neither the dataset nor the previews.
preview_data: dict = {}


def render_previews(points: np.ndarray) -> list:
    if "dataset" not in preview_data:
        preview_data["dataset"] = map_dataset(fmap, lambda n: analysis.load_real_dataset(checkpoint, n))
    return point_images(G, preview_data["dataset"], fmap, points)


thumbs, thumbs_status = hover_thumbnails(key, path.stem, len(fmap.is_real), render_previews)
if thumbs_status == "ready":
    plot_hover(thumbs, TRACE_META)
    st.caption("Hover over a point to see its image; click, box- or lasso-select points to compare them with their nearest real images.")
elif thumbs_status == "preparing":
    await_thumbnails(key, path.stem)
else:
    st.caption(f"No hover previews ({thumbs_status}); click, box- or lasso-select points to see their images.")


def point_index(point: dict) -> int | None:
    """The map index we attached as customdata (plain ints: a numpy array would travel as a typed-array dict)."""
    value = point.get("customdata")
    if isinstance(value, list):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) and 0 <= value < len(fmap.is_real) else None


# PlotlyState is a dict: its "selection" holds the clicked/boxed/lassoed points.
points = ((event or {}).get("selection") or {}).get("points", [])
selected = np.array([i for i in map(point_index, points) if i is not None], dtype=np.int64)
if len(selected) == 0:
    st.info("Select points (click, box or lasso) to see their images and nearest real neighbours.")
    st.stop()

dataset = map_dataset(fmap, lambda n: cache.real_dataset(key, n))
st.subheader(f"{len(selected)} selected" + (f", showing {MAX_SHOWN}" if len(selected) > MAX_SHOWN else ""))
shown = selected[:MAX_SHOWN]
for i, image in zip(shown, point_images(G, dataset, fmap, shown)):
    cols = st.columns([1, 5])
    kind = f"real #{fmap.index[i]}" if fmap.is_real[i] else f"seed {fmap.index[i]}"
    with cols[0]:
        if image is not None:
            show_image(image, f"{kind} · D {fmap.d_score[i]:.2f}", side=96)
        else:
            st.caption(f"{kind}: the dataset is not available here")
    with cols[1]:
        if not fmap.is_real.any():
            st.caption("No real images in this map, so no nearest-neighbour check.")
            continue
        neighbours = nearest_real(fmap, int(i), k=NEIGHBOURS + int(fmap.is_real[i]))
        neighbours = neighbours[1:] if fmap.is_real[i] else neighbours  # a real point finds itself first
        images = real_images(dataset, neighbours)
        if images is None:
            st.caption("Nearest real images: the dataset is not available on this machine.")
        else:
            st.image(cache.enlarged(images, 96), caption=[f"real #{n}" for n in neighbours])
