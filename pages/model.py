"""Model: how training went (curves from history.jsonl, sample grids over time) and what the networks are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots

from explorer.model import count_parameters
from explorer.rundir import read_history
from pages import common

# (key in history.jsonl, label, subplot): losses, discriminator outputs, speed and diversity
CURVES = [
    ("loss_d", "loss D", 1), ("loss_g", "loss G", 1),
    ("d_real", "D(x)", 2), ("d_fake", "D(G(z))", 2),
    ("img_per_s", "images / s", 3), ("diversity", "sample diversity", 4),
]
PANELS = ("Losses", "Discriminator outputs", "Throughput", "Fixed-noise sample diversity")


@st.cache_data(max_entries=8, show_spinner=False)
def history(run_dir: str, mtime: float) -> tuple[list[dict], str | None]:
    """(rows, problem); `mtime` is only part of the cache key, so a growing history is re-read."""
    try:
        return read_history(run_dir), None
    except (OSError, ValueError) as exc:  # a half-written last line while training runs, or a foreign file
        return [], f"{Path(run_dir) / 'history.jsonl'} could not be read: {exc}"


@st.cache_data(max_entries=32, show_spinner=False)
def sample_grid(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@st.cache_data(max_entries=8, show_spinner=False)
def architecture(key: common.ModelKey) -> dict[str, list[dict]]:
    checkpoint = common.model(key)
    cfg = checkpoint.config
    tables = {"Generator": common.layer_table(checkpoint.generator, torch.zeros(1, cfg.z_dim))}
    if checkpoint.discriminator is not None:
        image = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size)
        tables["Discriminator"] = common.layer_table(checkpoint.discriminator, image)
    return tables


active = common.page_setup()
key, checkpoint = active.key, active.checkpoint
st.title("Model")
st.caption(f"{active.label} · run folder `{active.run_dir}` · snapshot `{Path(key.path).name}`")

# -- training curves
st.subheader("Training curves")
history_file = active.run_dir / "history.jsonl"
rows, problem = history(str(active.run_dir), history_file.stat().st_mtime if history_file.is_file() else 0.0)
if problem:
    st.warning(problem)
elif not rows:
    st.info("No training history (history.jsonl) next to this checkpoint: exported checkpoints may not carry one.")
else:
    fig = make_subplots(rows=2, cols=2, subplot_titles=PANELS, horizontal_spacing=0.08, vertical_spacing=0.2)
    for name, label, panel in CURVES:
        points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), (int, float))]
        if points:
            steps, values = zip(*points)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines", name=label), row=(panel - 1) // 2 + 1, col=(panel - 1) % 2 + 1)
    fig.update_xaxes(title_text="step", row=2)
    fig.update_layout(height=560, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h"})
    st.plotly_chart(fig, key="model_curves")
    st.caption(
        "D(x) near 1 and D(G(z)) near 0 for long stretches means D is winning; a diversity collapsing towards 0 "
        "means the generator draws the same image for every z (mode collapse)."
    )

# -- sample grids over time
st.subheader("Samples during training")
sample_files = sorted((active.run_dir / "samples").glob("*.png"))
if not sample_files:
    st.info("No sample grids (samples/*.png) next to this checkpoint.")
else:
    index = len(sample_files) - 1
    if len(sample_files) > 1:
        index = st.slider("Grid", 0, len(sample_files) - 1, value=index, key="model_sample", format="%d")
    common.show_image(
        sample_grid(str(sample_files[index])), f"{sample_files[index].stem} ({index + 1} of {len(sample_files)}, same fixed noise)", side=640
    )

# -- metrics and architecture
st.subheader("Checkpoint")
meta = checkpoint.meta
m = st.columns(4)
m[0].metric("Step", f"{checkpoint.step:,}")
m[1].metric("Epoch", f"{meta['epoch']:.2f}" if isinstance(meta.get("epoch"), (int, float)) else "—")
m[2].metric("Images seen", f"{meta['images_seen']:,}" if isinstance(meta.get("images_seen"), int) else "—")
m[3].metric("Generator", "EMA" if checkpoint.generator_kind == "ema" else "raw")
metrics = meta.get("metrics") or {}
if metrics:
    st.dataframe([{"metric": k, "value": v} for k, v in metrics.items()], hide_index=True)

# -- evaluation (python -m training.evaluate writes it into meta.json and figures beside it)
st.subheader("Evaluation")
evaluation = meta.get("evaluation") or {}
if not evaluation:
    st.info(
        "Not evaluated yet. `python -m training.evaluate --checkpoint PATH` measures FID, the paper's SVM probe on D "
        "features, vector arithmetic against ground truth, memorization and walk smoothness, and writes them here."
    )
else:
    st.caption(f"`python -m training.evaluate`, {evaluation.get('evaluated_at', '?')}, seed {evaluation.get('seed', '?')}, "
               f"{evaluation.get('generator', '?')} generator, dataset `{evaluation.get('dataset', '?')}`")
    fid = evaluation.get("fid") or {}
    if "fid" in fid:
        c = st.columns(3)
        c[0].metric("FID", f"{fid['fid']:.4g}")
        c[1].metric("Real-vs-real floor", f"{fid['real_vs_real']:.4g}")
        c[2].metric("Samples", f"{fid['samples']:,}")
        st.caption(f"Feature network: {fid.get('feature_net')}. FIDs are comparable only within one feature network.")
        if fid.get("by_step"):
            by_step = go.Figure(go.Scatter(x=[r["step"] for r in fid["by_step"]], y=[r["fid"] for r in fid["by_step"]], mode="lines+markers"))
            by_step.update_layout(height=280, xaxis_title="step", yaxis_title="FID", margin={"l": 10, "r": 10, "t": 10, "b": 10})
            st.plotly_chart(by_step, key="model_fid_by_step")
            kind = fid.get("by_step_generator", "the snapshots'")
            st.caption(f"FID of each snapshot of `{fid.get('by_step_run', 'this run')}` ({kind} generator) against the same real images.")
    for name, title in (("probe", "Discriminator features as a representation (the paper's Tables 1-2)"),
                        ("arithmetic", "Vector arithmetic, scored by the eval net")):
        result = evaluation.get(name) or {}
        if result.get("table"):
            st.markdown(f"**{title}**")
            st.markdown(result["table"])
        elif result.get("skipped"):
            st.caption(f"{title}: skipped — {result['skipped']}")
    neighbours = evaluation.get("neighbors") or {}
    if "duplicate_rate" in neighbours:
        st.markdown(
            f"**Memorization**: median RMS distance to the nearest training image {neighbours['pixel_rms_median']['generated']:.3f} "
            f"for samples vs {neighbours['pixel_rms_median']['held_out']:.3f} for held-out real images; "
            f"{neighbours['duplicate_rate']:.1%} of samples are closer to a training image than 99 % of held-out images are."
        )
    smooth = evaluation.get("smoothness") or {}
    if "lerp" in smooth:
        st.dataframe([{"walk": mode, **{k: round(v, 4) for k, v in smooth[mode].items()}} for mode in ("lerp", "slerp")], hide_index=True)
    figures = sorted((Path(key.path) / "evaluation").glob("*.png"))
    if figures:
        chosen = st.selectbox("Evaluation figure", [f.name for f in figures], key="model_eval_figure")
        common.show_image(sample_grid(str(Path(key.path) / "evaluation" / chosen)), chosen, side=480)

st.subheader("Architecture")
cfg = checkpoint.config
st.caption(
    f"DCGAN, {cfg.image_size} px, {cfg.channels} channel(s), z ∈ ℝ^{cfg.z_dim}, widths G {cfg.g_width} / D {cfg.d_width}. "
    "Strided (transposed) convolutions, batchnorm except at G's output and D's input, ReLU/Tanh in G, LeakyReLU in D."
)
tables = architecture(key)
cols = st.columns(len(tables))
for col, (title, table) in zip(cols, tables.items()):
    module = checkpoint.generator if title == "Generator" else checkpoint.discriminator
    col.markdown(f"**{title}** · {count_parameters(module):,} parameters")
    col.dataframe(table, hide_index=True, height=36 + 35 * len(table))  # every layer, no inner scrolling
training = meta.get("training")
if training:
    with st.expander("Training configuration"):
        st.json(training)
with st.expander("meta.json"):
    st.json({k: v for k, v in meta.items() if k != "training"})
