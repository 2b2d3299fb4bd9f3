"""Plotly figures shared by both front ends (no Streamlit or Gradio here): the feature map, walk plots, training curves."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from explorer.featuremap import ALL_CLASSES, REAL_VS_GENERATED, FeatureMap, point_groups, point_hover_text
from explorer.latent import NormStats

REALISM = "D(x) realism score"
PALETTE = plotly.colors.qualitative.D3  # fixed, clearly distinct colours (the default theme starts with two blues)
UNLABELLED = "#b0b0b0"
SVG_LIMIT = 4000  # up to this many points SVG (works without WebGL); above it WebGL, which stays fast
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


# ----------------------------------------------------------------------------------------------- feature map


def colourings(label_kind: str | None, label_names: Sequence[str]) -> list[str]:
    """What a map with these labels can be coloured by: real vs generated, D's score, every class, each label."""
    return [REAL_VS_GENERATED, REALISM, *([ALL_CLASSES] if label_kind == "class" else []), *(label_names if label_kind else [])]


def map_colourings(fmap: FeatureMap) -> list[str]:
    return colourings(fmap.label_kind if fmap.labels is not None else None, fmap.label_names)


def map_layouts(fmap: FeatureMap) -> list[str]:
    return (["UMAP"] if fmap.coords_umap is not None else []) + ["PCA"]


def subsample(n: int, max_points: int) -> np.ndarray:
    """Indices of at most `max_points` of n points: all of them, or a fixed random subset (sorted)."""
    return np.arange(n) if n <= max_points else np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))


def feature_map_figure(
    fmap: FeatureMap, colour: str = REAL_VS_GENERATED, layout: str = "UMAP", points: np.ndarray | None = None,
    trace_meta: str | None = None, height: int = 560,
) -> go.Figure:
    """A scatter of the map's 2-d layout (UMAP, or the first two PCA components) for `points` (default: all).

    Each marker's customdata is its index in the map, and `trace_meta` marks the traces (the Streamlit page's
    hover previews find them by it). ValueError for a colouring the map does not have (see `map_colourings`).
    """
    if colour not in map_colourings(fmap):
        raise ValueError(f"this feature map cannot be coloured by {colour!r}; choose one of {map_colourings(fmap)}")
    coords = fmap.coords_umap if layout == "UMAP" and fmap.coords_umap is not None else fmap.coords_pca
    shown = np.arange(len(coords)) if points is None else np.asarray(points)
    Scatter = go.Scatter if len(shown) <= SVG_LIMIT else go.Scattergl

    def trace(i: np.ndarray, name: str, **marker) -> go.BaseTraceType:
        return Scatter(
            x=coords[i, 0], y=coords[i, 1], mode="markers", name=name, meta=trace_meta, customdata=i.tolist(),
            text=point_hover_text(fmap, i), hoverinfo="text", marker={"size": 5, "opacity": 0.75, **marker},
        )

    if colour == REALISM:
        traces = [trace(shown, "points", color=fmap.d_score[shown], colorscale="Viridis", cmin=0, cmax=1, colorbar={"title": "D(x)"})]
    else:
        traces = []
        for n, (name, members) in enumerate(point_groups(fmap, colour)):
            i = members[np.isin(members, shown)]
            if len(i):
                traces.append(trace(i, f"{name} ({len(i)})", color=UNLABELLED if name == "unlabelled" else PALETTE[n % len(PALETTE)]))
    figure = go.Figure(traces)
    # No dragmode: Streamlit then starts in pan mode, where a click selects a point (box and lasso are in the toolbar).
    figure.update_layout(
        height=height, margin=MARGIN, legend={"orientation": "h", "itemsizing": "constant"},
        title=f"{'UMAP' if coords is fmap.coords_umap else 'PCA (first two components)'} of discriminator features",
        xaxis={"showticklabels": False}, yaxis={"showticklabels": False},
    )
    return figure


def feature_map_caption(fmap: FeatureMap, shown: int, colour: str) -> str:
    real = int(fmap.is_real.sum())
    return (
        f"{len(fmap.is_real):,} points ({real:,} real, {len(fmap.is_real) - real:,} generated)"
        + (f", showing a random {shown:,}" if shown < len(fmap.is_real) else "") + f"; colour: {colour}."
    )


# ----------------------------------------------------------------------------------------------- walks


def frame_change_figure(distances: np.ndarray, keypoints_at: Sequence[int]) -> go.Figure:
    """Frame-to-frame change along a walk (`explorer.evaluation.smoothness.frame_distances`), keypoints dotted."""
    figure = go.Figure(go.Scatter(x=np.arange(1, len(distances) + 1), y=distances, mode="lines+markers", name="change"))
    for k in keypoints_at:
        figure.add_vline(x=k, line_dash="dot", line_color="grey")
    figure.update_layout(
        title="Frame-to-frame change (mean |Δpixel|, share of the range)", xaxis_title="frame", yaxis_title="change",
        height=260, margin=MARGIN,
    )
    return figure


def norm_figure(norms: np.ndarray, shell: NormStats) -> go.Figure:
    """|z| along a walk against the prior's shell (mean ± std band)."""
    figure = go.Figure(go.Scatter(x=np.arange(len(norms)), y=norms, mode="lines", name="|z|"))
    figure.add_hrect(y0=shell.mean - shell.std, y1=shell.mean + shell.std, fillcolor="green", opacity=0.15, line_width=0)
    figure.update_layout(
        title="|z| along the walk (band: the prior's shell, mean ± std)", xaxis_title="frame", yaxis_title="|z|",
        height=220, margin=MARGIN,
    )
    return figure


# ----------------------------------------------------------------------------------------------- training

# (key in history.jsonl, label, panel): losses, discriminator outputs, speed and diversity
CURVES = [
    ("loss_d", "loss D", 1), ("loss_g", "loss G", 1),
    ("d_real", "D(x)", 2), ("d_fake", "D(G(z))", 2),
    ("img_per_s", "images / s", 3), ("diversity", "sample diversity", 4),
]
PANELS = ("Losses", "Discriminator outputs", "Throughput", "Fixed-noise sample diversity")


def training_curves_figure(rows: list[dict]) -> go.Figure:
    """Four panels of history.jsonl rows against step."""
    figure = make_subplots(rows=2, cols=2, subplot_titles=PANELS, horizontal_spacing=0.08, vertical_spacing=0.2)
    for name, label, panel in CURVES:
        points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), (int, float))]
        if points:
            steps, values = zip(*points)
            figure.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=label), row=(panel - 1) // 2 + 1, col=(panel - 1) % 2 + 1)
    figure.update_xaxes(title_text="step", row=2)
    figure.update_layout(height=560, margin=MARGIN, legend={"orientation": "h"})
    return figure


def fid_by_step_figure(by_step: list[dict]) -> go.Figure:
    figure = go.Figure(go.Scatter(x=[r["step"] for r in by_step], y=[r["fid"] for r in by_step], mode="lines+markers"))
    figure.update_layout(height=280, xaxis_title="step", yaxis_title="FID", margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure
