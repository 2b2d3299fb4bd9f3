"""Model: how training went (curves from history.jsonl, sample grids over time) and what the networks are."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch
from PIL import Image

from explorer.architecture import layer_table
from explorer.model import count_parameters
from explorer.rundir import HISTORY_FILE, evaluation_figures, read_history, sample_grid_files
from explorer.selection import ModelKey, training_grid_kind
from ui import cache
from ui.figures import fid_by_step_figure, training_curves_figure
from ui.sidebar import page_setup
from ui.widgets import show_image

KIND = {"ema": "EMA", "raw": "raw"}


@st.cache_data(max_entries=8, show_spinner=False)
def history(run_dir: str, mtime: float) -> tuple[list[dict], str | None]:
    """(rows, problem); `mtime` is only part of the cache key, so a growing history is re-read."""
    try:
        return read_history(run_dir), None
    except (OSError, ValueError) as exc:  # a foreign file
        return [], f"{Path(run_dir) / HISTORY_FILE} could not be read: {exc}"


@st.cache_data(max_entries=32, show_spinner=False)
def picture(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@st.cache_data(max_entries=8, show_spinner=False)
def architecture(key: ModelKey) -> dict[str, list[dict]]:
    checkpoint = cache.model(key)
    cfg = checkpoint.config
    tables = {"Generator": layer_table(checkpoint.generator, torch.zeros(1, cfg.z_dim))}
    if checkpoint.discriminator is not None:
        tables["Discriminator"] = layer_table(checkpoint.discriminator, torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size))
    return tables


active = page_setup("model")
key, checkpoint = active.key, active.checkpoint
explored = KIND[checkpoint.generator_kind]
st.title("Model")
st.caption(f"{active.label} · run folder `{active.run_dir}` · snapshot `{Path(key.path).name}` · the explorer shows the {explored} generator")

st.subheader("Training curves")
history_file = active.run_dir / HISTORY_FILE
rows, problem = history(str(active.run_dir), history_file.stat().st_mtime if history_file.is_file() else 0.0)
if problem:
    st.warning(problem)
elif not rows:
    st.info("No training history (history.jsonl) next to this checkpoint: exported checkpoints may not carry one.")
else:
    st.plotly_chart(training_curves_figure(rows), key="model_curves")
    st.caption(
        "D(x) near 1 and D(G(z)) near 0 for long stretches means D is winning; a diversity collapsing towards 0 "
        "means the generator draws the same image for every z (mode collapse)."
    )

st.subheader("Samples during training")
sample_files = sample_grid_files(active.run_dir)
grid_kind = training_grid_kind(checkpoint)
if not sample_files:
    st.info("No sample grids (samples/*.png) next to this checkpoint.")
else:
    if grid_kind is None:
        st.caption(f"The checkpoint does not record which generator drew these grids; the explorer shows the {explored} one.")
    elif KIND[grid_kind] == explored:
        st.caption(f"Drawn by the {explored} generator, the one the explorer shows.")
    else:
        st.warning(
            f"These grids were drawn during training by the **{KIND[grid_kind]} generator**, while the explorer shows the "
            f"**{explored}** one: they can look different (an EMA generator lags behind early in training and smooths later)."
        )
    index = len(sample_files) - 1
    if len(sample_files) > 1:
        index = st.slider("Grid", 0, len(sample_files) - 1, value=index, key="model_sample", format="%d")
    kind = f"{KIND[grid_kind]} generator, " if grid_kind else ""
    show_image(picture(str(sample_files[index])), f"{sample_files[index].stem} ({index + 1} of {len(sample_files)}, {kind}same fixed noise)", side=640)

st.subheader("Checkpoint")
meta = checkpoint.meta
m = st.columns(4)
m[0].metric("Step", f"{checkpoint.step:,}")
m[1].metric("Epoch", f"{meta['epoch']:.2f}" if isinstance(meta.get("epoch"), (int, float)) else "—")
m[2].metric("Images seen", f"{meta['images_seen']:,}" if isinstance(meta.get("images_seen"), int) else "—")
m[3].metric("Generator", "EMA" if checkpoint.generator_kind == "ema" else "raw")
if meta.get("training_command"):  # validated text (explorer.checkpoint_meta)
    st.caption("Reproduce this run (recorded by `python -m training.export`):")
    st.code(meta["training_command"], language="bash")
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
            st.plotly_chart(fid_by_step_figure(fid["by_step"]), key="model_fid_by_step")
            kind = fid.get("by_step_generator", "the snapshots'")
            st.caption(f"FID of each snapshot of `{fid.get('by_step_run', 'this run')}` ({kind} generator) against the same real images.")
    for name, title in (("probe", "Discriminator features as a representation (the paper's Tables 1-2)"),
                        ("arithmetic", "Vector arithmetic, scored by the eval net"),
                        ("directions", "Sliders, measured: +3 along each from seeds the eval net reads without the attribute")):
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
    figures = {f.name: f for f in evaluation_figures(key.path)}
    if figures:
        chosen = st.selectbox("Evaluation figure", list(figures), key="model_eval_figure")
        show_image(picture(str(figures[chosen])), chosen, side=480)

st.subheader("Architecture")
cfg = checkpoint.config
st.caption(
    f"DCGAN, {cfg.image_size} px, {cfg.channels} channel(s), z ∈ ℝ^{cfg.z_dim}, widths G {cfg.g_width} / D {cfg.d_width}. "
    "Strided (transposed) convolutions, batchnorm except at G's output and D's input, ReLU/Tanh in G, LeakyReLU in D."
)
tables = architecture(key)
for col, (title, table) in zip(st.columns(len(tables)), tables.items()):
    module = checkpoint.generator if title == "Generator" else checkpoint.discriminator
    col.markdown(f"**{title}** · {count_parameters(module):,} parameters")
    col.dataframe(table, hide_index=True, height=36 + 35 * len(table))  # every layer, no inner scrolling
if meta.get("training"):
    with st.expander("Training configuration"):
        st.json(meta["training"])
with st.expander("meta.json"):
    st.json({k: v for k, v in meta.items() if k != "training"})
