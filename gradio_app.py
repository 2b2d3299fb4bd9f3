"""Gradio demo of a trained DCGAN: seeded generation with sliders, vector arithmetic, latent walks, feature map.

    python -m explorer.gradio_app [--checkpoint PATH] [--share] [--host 127.0.0.1] [--port 7860] [--concurrency N]

A second front end over the same UI-free core as the Streamlit explorer (`app.py`): every number
shown here comes from `explorer/`; this file only turns widget values into core arguments,
validates them with messages a visitor can act on, and formats the results. It lives outside the
`explorer` package because the core must not import gradio; `explorer/gradio_app.py` is the
launcher behind `python -m explorer.gradio_app`.

Sharing model: one checkpoint is loaded at start and shared by every visitor. It is in eval mode
and never mutated (see `explorer.generate`), so concurrent requests cannot disturb each other;
whatever belongs to one visitor (which seeds their exemplar gallery shows) lives in `gr.State`.
Every action has an `api_name`, so `gradio_client` can drive the demo: /generate, /exemplars,
/arithmetic, /walk, /feature_map.
"""
from __future__ import annotations

import argparse
import atexit
import inspect
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Before gradio is imported: it reads this at import time, and a demo must not phone home by default.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import numpy as np
import torch

from explorer import directions as directions_core
from explorer import featuremap
from explorer.arithmetic import DEFAULT_JITTER, MAX_BIN_SEEDS, ConceptBin, arithmetic
from explorer.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from explorer.featuremap import FeatureMap
from explorer.generate import MAX_GRID, generate, realism, seed_grid
from explorer.images import grid, to_uint8
from explorer.latent import (
    MAX_SEED,
    WALK_MODES,
    apply_offsets,
    latent_norm_stats,
    validate_seed,
    walk,
    z_from_seed,
    z_from_seeds,
)
from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT, list_checkpoints
from explorer.video import MAX_GIF_FPS, frames_to_gif, frames_to_mp4

# ----------------------------------------------------------------------------------------------- limits
# Public demo: every request's cost is bounded, so one visitor cannot stall the queue for the rest.
RAW_Z_SLIDERS = 4  # the first few raw coordinates of z; the rest are only reachable via directions
DIRECTION_SLIDERS = 6  # direction sliders: cached attribute directions first, then SeFa
SLIDER_SPAN = 4.0  # slider range in latent units (prior std 1): +-4 is already far off the shell
MAX_GALLERY = min(64, MAX_GRID)  # exemplars per gallery page
MAX_KEYPOINTS = 16
MAX_FRAMES_PER_SEGMENT = 60
MAX_WALK_FRAMES = 240  # total frames per walk; the GIF encoder is the slow part (seconds per 60 frames)
GIF_SIDE = 128  # GIF frames are enlarged only to this side (MP4 gets the core's default 256): GIF is ~10x costlier
MAX_JITTER = 2.0
MAX_SEED_TEXT = 4096  # characters in a seed list box; 64 seeds of 10 digits need under 800
MAX_FEATURE_POINTS = 20000  # plotly in the browser stays responsive up to about this many markers
MAX_QUEUE = 128  # waiting requests beyond this are refused at once instead of timing out
# Gradio keeps per-session state (a copy of every component's config, ~150 KB here) for its most recent
# sessions, and each API call without a session is a new session: at gradio's default of 10,000 the
# server grew by ~2 MB/s under load (BENCHMARKS.md, issue 7). A visitor's state here is only the seeds
# their gallery shows, so the last 500 sessions are plenty and memory stays flat.
MAX_SESSIONS = 500
SCRATCH_MAX_AGE_S = 600  # walk files are copied into gradio's cache on return; our copies can go soon after
NO_LINK_MESSAGE = "No public share link could be created (offline, or the share server is unreachable)."

# Images travel at their native 32-128 px (API clients get the generator's real output); the page enlarges
# them to fill their box with crisp pixels instead of the browser's default blur.
CSS = """
.pixelated img { image-rendering: pixelated; }
.enlarged img { width: 100%; height: 100%; object-fit: contain; }
"""


def _fail(message: str) -> gr.Error:
    """A gr.Error for the visitor: shown in the page and raised by gradio_client; the server keeps serving.

    print_exception=False: a visitor's typo is not a server fault, so it leaves no traceback in the log.
    """
    return gr.Error(message[:1].upper() + message[1:], print_exception=False)


# ----------------------------------------------------------------------------------------------- input parsing
# Widget values arrive as floats, None, or anything a hand-written API call sends (JSON allows NaN/Infinity
# in Python's parser), so each one is checked before it reaches the core.


def _number(value, name: str, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _fail(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise _fail(f"{name} must be a finite number, got {value!r}")
    if not low <= x <= high:
        raise _fail(f"{name} must be between {low:g} and {high:g}, got {x:g}")
    return x


def _whole(value, name: str, low: int, high: int) -> int:
    x = _number(value, name, low, high)
    if not x.is_integer():
        raise _fail(f"{name} must be a whole number, got {value!r}")
    return int(x)


def _seed(value, name: str = "seed") -> int:
    """A seed from a Number widget (float) or an API call (int); the range check is the core's."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and _is_seed_token(value.strip()):
        value = int(value.strip())
    try:
        return validate_seed(value)
    except ValueError as exc:  # the core's message already starts with "seed must be ..."
        raise _fail(str(exc) if name == "seed" else f"{name}: {exc}") from None


def _is_seed_token(token: str) -> bool:
    # ASCII digits only ("²".isdigit() is true but int() rejects it), and at most len(str(MAX_SEED)) of them,
    # so int() never parses a huge number
    return token.isascii() and token.isdigit() and len(token) <= len(str(MAX_SEED))


def _seed_list(text, name: str, limit: int) -> list[int]:
    """Seeds typed or collected as "12, 40 7": whole numbers separated by commas or spaces."""
    if text is None:
        return []
    if not isinstance(text, str):
        raise _fail(f"{name} must be text listing seeds, e.g. '12, 40, 7'")
    if len(text) > MAX_SEED_TEXT:
        raise _fail(f"{name} is {len(text):,} characters long; list at most {limit} seeds")
    tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    if len(tokens) > limit:
        raise _fail(f"{name} lists {len(tokens)} seeds; at most {limit} are allowed")
    bad = [t for t in tokens if not _is_seed_token(t)]
    if bad:
        raise _fail(f"{name}: {bad[0]!r} is not a seed (a whole number from 0 to {MAX_SEED})")
    return [_seed(int(t), name) for t in tokens]


# ----------------------------------------------------------------------------------------------- shared, read-only model


@dataclass(frozen=True)
class SliderDirection:
    name: str
    label: str
    vector: torch.Tensor  # (z_dim,) unit
    info: str


def cached_feature_map(checkpoint: Checkpoint) -> FeatureMap | None:
    """The cached feature map (UMAP layout preferred, else PCA), or None: the demo never builds one in a request."""
    for method in featuremap.METHODS:
        found = featuremap.cached_feature_map(checkpoint, method=method)
        if found is not None:
            return found
    return None


def slider_directions(checkpoint: Checkpoint, count: int = DIRECTION_SLIDERS) -> tuple[list[SliderDirection], str]:
    """Directions for the sliders, and a note on where they came from.

    SeFa needs only the first layer's weights (milliseconds), so it is always available. Attribute
    directions need the probe on a labelled dataset (minutes), so they are used only when the analysis
    cache already holds them (written by `explorer.featuremap.load_or_compute_directions`).
    """
    found: list = []
    note = "SeFa directions (closed-form factorisation of the first layer)."
    cached = featuremap.cached_directions(checkpoint)
    if cached:
        # mean-difference attribute/class directions; the SVM normals of the same attributes are near-duplicates
        found = [d for d in cached.values() if d.kind in ("attribute", "class") and not d.name.startswith("svm:")]
        if found:
            note = "Attribute directions (probe on discriminator features; score = probe accuracy), then SeFa."
    found += directions_core.sefa_directions(checkpoint.generator, k=count)
    out = []
    for d in found[:count]:
        score = "" if d.score is None else f" ({d.score:.0%})"
        out.append(SliderDirection(d.name, f"{d.name}{score}", torch.from_numpy(d.vector), d.description))
    return out, note


# ----------------------------------------------------------------------------------------------- the actions


def _with_parameters(fn, names: list[str]):
    """fn(*values) under a signature naming each value, all defaulting to 0.

    Gradio names API parameters after the handler's signature (a *args handler shows param_1,
    param_2, ...); named ones let a client send `predict(seed=5, sefa_0=2.0, api_name="/generate")`.
    """

    def call(*values):
        return fn(*values)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    call.__signature__ = inspect.Signature([inspect.Parameter(n, kind, default=0) for n in names])
    call.__name__ = fn.__name__
    return call


class Explorer:
    """The demo's actions over one loaded checkpoint, shared by all visitors.

    Everything here is read-only after construction, except `_feature_map`, which goes once from None to
    a loaded map (under a lock) when the analysis appears in the cache while the demo runs.
    """

    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.G, self.D = checkpoint.generator, checkpoint.discriminator
        self.z_dim = checkpoint.config.z_dim
        self.raw_dims = min(RAW_Z_SLIDERS, self.z_dim)
        self.directions, self.directions_note = slider_directions(checkpoint)
        self._feature_map = cached_feature_map(checkpoint)
        self._feature_map_lock = threading.Lock()
        self.norm = latent_norm_stats(self.z_dim)
        # (API parameter name, label) of each slider after the seed: raw z coordinates, then directions.
        self.sliders = [(f"z_{i}", f"z[{i}] offset") for i in range(self.raw_dims)]
        for i, d in enumerate(self.directions):
            name = re.sub(r"\W+", "_", d.name).strip("_")  # "sefa:0" -> sefa_0, "attr:Smiling" -> attr_Smiling
            taken = {n for n, _ in self.sliders}
            self.sliders.append((name if name and name not in taken else f"direction_{i}", d.label))
        self.generate_api = _with_parameters(self.generate, ["seed", *(name for name, _ in self.sliders)])
        self.scratch = Path(tempfile.mkdtemp(prefix="latent-lab-gradio-"))
        atexit.register(shutil.rmtree, self.scratch, ignore_errors=True)

    # -- helpers
    def _realism_text(self, images: torch.Tensor) -> str:
        if self.D is None:
            return ""
        scores = realism(self.D, images)
        return f" · mean D(x) {scores.mean():.2f}" if len(scores) > 1 else f" · D(x) {scores[0]:.2f}"

    def _scratch_file(self, suffix: str, data: bytes) -> str:
        now = time.time()
        for old in self.scratch.iterdir():
            try:
                if now - old.stat().st_mtime > SCRATCH_MAX_AGE_S:
                    old.unlink()
            except OSError:  # another request removed it first
                pass
        path = self.scratch / f"walk-{uuid.uuid4().hex[:12]}{suffix}"
        path.write_bytes(data)
        return str(path)

    # -- tab 1
    def generate(self, seed, *sliders):
        """seed, RAW_Z_SLIDERS raw offsets, one amount per direction -> (uint8 image, info markdown)."""
        seed = _seed(seed)
        expected = self.raw_dims + len(self.directions)
        if len(sliders) != expected:
            raise _fail(f"expected {expected} slider values after the seed, got {len(sliders)}")
        values = [_number(v, f"slider '{label}'", -SLIDER_SPAN, SLIDER_SPAN) for v, (_, label) in zip(sliders, self.sliders)]
        raw, amounts = values[: self.raw_dims], values[self.raw_dims :]
        offsets = {**{f"z:{i}": v for i, v in enumerate(raw)}, **{d.name: a for d, a in zip(self.directions, amounts)}}
        z = apply_offsets(z_from_seed(seed, self.z_dim), offsets, {d.name: d.vector for d in self.directions})
        image = generate(self.G, z[None])
        info = (
            f"seed {seed} · |z| {z.norm():.2f} (prior shell {self.norm.mean:.2f} ± {self.norm.std:.2f})"
            + self._realism_text(image)
        )
        return to_uint8(image[0]), info

    # -- tab 2
    def exemplars(self, first_seed, count):
        """A gallery page of seeded exemplars: ([(image, caption)], seeds for the visitor's gr.State)."""
        first_seed = _seed(first_seed, "first seed")
        count = _whole(count, "number of exemplars", 1, MAX_GALLERY)
        try:
            images, seeds = seed_grid(self.G, first_seed, count)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        return [(image, f"seed {s}") for image, s in zip(to_uint8(images), seeds)], seeds

    @staticmethod
    def pick(seeds: list[int] | None, target: str, a: str, b: str, c: str, evt: gr.SelectData):
        """Clicking gallery image i appends its seed to the chosen group (once)."""
        groups = {"A": a or "", "B": b or "", "C": c or ""}
        if not seeds or evt.index is None or target not in groups:
            return a, b, c
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(seeds):
            return a, b, c
        seed = str(seeds[index])
        present = [t for t in re.split(r"[\s,;]+", groups[target].strip()) if t]
        if seed not in present:
            groups[target] = ", ".join([*present, seed])
        return groups["A"], groups["B"], groups["C"]

    def arithmetic(self, a_text, b_text, c_text, noise_seed, jitter):
        """A - B + C (Radford et al. Fig. 7) -> (3x3 grid around Y, pixel-space baseline, notes)."""
        bins = []
        for name, text, weight in (("A", a_text, 1.0), ("B", b_text, -1.0), ("C", c_text, 1.0)):
            seeds = _seed_list(text, f"group {name}", MAX_BIN_SEEDS)
            if not seeds:
                raise _fail(f"group {name} is empty: click exemplars in the gallery into it, or type their seeds")
            bins.append(ConceptBin(name, seeds, weight))
        noise_seed = _seed(noise_seed, "noise seed")
        jitter = _number(jitter, "jitter", 0.0, MAX_JITTER)
        try:
            result = arithmetic(self.G, bins, self.z_dim, seed=noise_seed, jitter=jitter)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        notes = ["Centre: G(Y) with Y = mean z(A) − mean z(B) + mean z(C); the other 8 add uniform noise of ±"
                 f"{jitter:g}." + self._realism_text(result.grid_images)]
        notes += [f"⚠ {w}" for w in result.warnings]
        return grid(result.grid_images, nrow=3), to_uint8(result.pixel_result), "\n\n".join(notes)

    # -- tab 3
    def walk(self, seeds_text, frames_per_segment, mode, loop, fps):
        """A walk through seeded keypoints -> (GIF preview, GIF file, MP4 file, info)."""
        seeds = _seed_list(seeds_text, "keypoint seeds", MAX_KEYPOINTS)
        if len(seeds) < 2:
            raise _fail("a walk needs at least two keypoint seeds, e.g. '1, 2, 3'")
        n = _whole(frames_per_segment, "frames per segment", 1, MAX_FRAMES_PER_SEGMENT)
        fps = _number(fps, "frames per second", 1, MAX_GIF_FPS)
        if mode not in WALK_MODES:
            raise _fail(f"mode must be one of {', '.join(WALK_MODES)}, got {mode!r}")
        path = walk(z_from_seeds(seeds, self.z_dim), n, mode=mode, loop=bool(loop))
        if len(path) > MAX_WALK_FRAMES:  # checked on the latents, before any image is generated
            raise _fail(f"this walk has {len(path)} frames; at most {MAX_WALK_FRAMES} are allowed: use fewer seeds or frames per segment")
        frames = to_uint8(generate(self.G, path))
        gif_scale = max(1, GIF_SIDE // self.checkpoint.config.image_size)
        gif = self._scratch_file(".gif", frames_to_gif(frames, fps=fps, scale=gif_scale))
        mp4 = self._scratch_file(".mp4", frames_to_mp4(frames, fps=fps))
        info = f"{len(frames)} frames, {mode}{' (looped)' if loop else ''}, {fps:g} fps"
        return gif, gif, mp4, info

    # -- tab 4
    @property
    def feature_map(self) -> FeatureMap | None:
        """The cached map, looked up again while there is none, so a map built after start-up is picked up."""
        if self._feature_map is None:
            with self._feature_map_lock:
                if self._feature_map is None:
                    self._feature_map = cached_feature_map(self.checkpoint)
        return self._feature_map

    def colorings(self) -> list[str]:
        fmap = self.feature_map
        names = fmap.label_names if fmap is not None else (self.checkpoint.attribute_names or self.checkpoint.class_names)
        return [REAL_VS_GENERATED, REALISM, *names]

    def feature_map_figure(self, color_by, max_points):
        """The cached feature map as (plotly figure, caption), or an error saying why there is none."""
        fmap = self.feature_map
        if fmap is None:
            raise _fail(NO_FEATURE_MAP)
        max_points = _whole(max_points, "number of points", 1, MAX_FEATURE_POINTS)
        color_by = color_by or REAL_VS_GENERATED
        if color_by not in (REAL_VS_GENERATED, REALISM, *(fmap.label_names if fmap.labels is not None else [])):
            raise _fail(f"this feature map cannot be coloured by {color_by!r}; choose one of {self.colorings()}")
        return feature_map_figure(fmap, color_by, max_points)


REAL_VS_GENERATED = featuremap.REAL_VS_GENERATED
REALISM = "D(x) realism score"
NO_FEATURE_MAP = (
    "No feature map has been computed for this checkpoint yet. It embeds thousands of samples with UMAP "
    "(minutes on a CPU), so the demo only shows a cached one: build it once offline "
    "(explorer.featuremap.load_or_build_feature_map, or the precompute script) and it appears here."
)


def feature_map_figure(fmap: FeatureMap, color_by: str, max_points: int):
    """A plotly scatter of the map's 2-d layout (at most max_points, a fixed random subset), and a caption."""
    import plotly.graph_objects as go  # only this tab needs plotly

    umap_layout = fmap.coords_umap is not None
    coords = fmap.coords_umap if umap_layout else fmap.coords_pca
    n = len(coords)
    keep = np.arange(n) if n <= max_points else np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
    xy, hover = coords[keep], np.array(featuremap.point_hover_text(fmap, keep))

    def points(mask, name, **marker):  # mask over `keep`
        return go.Scattergl(
            x=xy[mask, 0], y=xy[mask, 1], mode="markers", name=name, text=hover[mask], hoverinfo="text",
            marker={"size": 4, "opacity": 0.7, **marker},
        )

    if color_by == REALISM:
        score = fmap.d_score[keep]
        traces = [points(np.ones(len(keep), bool), "D(x)", color=score, colorscale="Viridis", cmin=0, cmax=1, colorbar={"title": "D(x)"})]
    else:
        groups = [(np.isin(keep, members), name) for name, members in featuremap.point_groups(fmap, color_by)]
        traces = [points(mask, name) for mask, name in groups if mask.any()]
    method = "UMAP" if umap_layout else "PCA (first two components)"
    figure = go.Figure(traces)
    figure.update_layout(
        height=600, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"itemsizing": "constant"},
        title=f"{method} of discriminator features", xaxis={"showticklabels": False}, yaxis={"showticklabels": False},
    )
    caption = (
        f"{method} of {n:,} points ({int(fmap.is_real.sum()):,} real, {int((~fmap.is_real).sum()):,} generated)"
        + (f", showing a random {len(keep):,}" if len(keep) < n else "") + f"; colour: {color_by}."
    )
    return figure, caption


# ----------------------------------------------------------------------------------------------- layout


def build_demo(checkpoint_path: str | os.PathLike) -> gr.Blocks:
    """The whole demo for one checkpoint (loaded here, once). Raises CheckpointError for an unusable path."""
    checkpoint = load_checkpoint(checkpoint_path)
    ex = Explorer(checkpoint)
    cfg, size = checkpoint.config, checkpoint.config.image_size
    display = max(256, size)
    title = f"latent-lab · {checkpoint.dataset.get('spec', 'DCGAN')} · step {checkpoint.step:,}"

    with gr.Blocks(title="latent-lab", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"## {title}\n{size} px · z ∈ ℝ^{cfg.z_dim} · "
            f"{'EMA generator' if checkpoint.generator_kind == 'ema' else 'generator'}"
            + ("" if checkpoint.discriminator is not None else " · no discriminator (no realism scores)")
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    # No minimum/maximum on seed widgets: the core's range check names the field in its message.
                    seed = gr.Number(value=0, label=f"Seed (0 – {MAX_SEED})", step=1)
                    with gr.Accordion(f"Raw z coordinates 0–{ex.raw_dims - 1}", open=False):
                        raw = [
                            gr.Slider(-SLIDER_SPAN, SLIDER_SPAN, value=0, step=0.05, label=label)
                            for _, label in ex.sliders[: ex.raw_dims]
                        ]
                    gr.Markdown(ex.directions_note)
                    moves = [
                        gr.Slider(-SLIDER_SPAN, SLIDER_SPAN, value=0, step=0.05, label=d.label, info=d.info)
                        for d in ex.directions
                    ]
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column():
                    image = gr.Image(
                        label="G(z)", format="png", height=display, width=display,
                        elem_classes=["pixelated", "enlarged"], elem_id="generated-image", interactive=False,
                    )
                    info = gr.Markdown(elem_id="generate-info")
            inputs = [seed, *raw, *moves]
            generate_button.click(ex.generate_api, inputs, [image, info], api_name="generate")

        with gr.Tab("Vector arithmetic"):
            gr.Markdown(
                "Pick exemplars for three concepts (e.g. A smiling woman, B neutral woman, C neutral man): choose a "
                "group, then click gallery images. Y = mean z(A) − mean z(B) + mean z(C); the paper averages three "
                "exemplars per concept."
            )
            shown_seeds = gr.State([])  # per visitor: gallery index -> seed
            with gr.Row():
                first = gr.Number(value=0, label="First seed", step=1)
                count = gr.Slider(1, MAX_GALLERY, value=min(24, MAX_GALLERY), step=1, label="Exemplars")
                show = gr.Button("Show exemplars")
            gallery = gr.Gallery(
                label="Exemplars (click to add to the chosen group)", columns=8, height="auto",
                allow_preview=False, format="png", elem_classes="pixelated",
            )
            target = gr.Radio(["A", "B", "C"], value="A", label="Clicking adds to group")
            with gr.Row():
                group_a = gr.Textbox(label="A (+): seeds", placeholder="e.g. 3, 17, 42")
                group_b = gr.Textbox(label="B (−): seeds")
                group_c = gr.Textbox(label="C (+): seeds")
            with gr.Row():
                noise_seed = gr.Number(value=0, label="Noise seed", step=1)
                jitter = gr.Slider(0, MAX_JITTER, value=DEFAULT_JITTER, step=0.05, label="Neighbourhood noise ±")
                combine = gr.Button("Compute A − B + C", variant="primary")
            with gr.Row():
                grid_image = gr.Image(label="G(Y) and 8 neighbours", format="png", height=display, elem_classes=["pixelated", "enlarged"], interactive=False)
                pixel_image = gr.Image(label="Same arithmetic on pixels", format="png", height=display, elem_classes=["pixelated", "enlarged"], interactive=False)
            notes = gr.Markdown()
            show.click(ex.exemplars, [first, count], [gallery, shown_seeds], api_name="exemplars")
            gallery.select(ex.pick, [shown_seeds, target, group_a, group_b, group_c], [group_a, group_b, group_c], api_visibility="private")
            combine.click(ex.arithmetic, [group_a, group_b, group_c, noise_seed, jitter], [grid_image, pixel_image, notes], api_name="arithmetic")

        with gr.Tab("Latent walk"):
            with gr.Row():
                walk_seeds = gr.Textbox(value="0, 1, 2, 3", label=f"Keypoint seeds (2–{MAX_KEYPOINTS})")
                per_segment = gr.Slider(1, MAX_FRAMES_PER_SEGMENT, value=16, step=1, label="Frames per segment")
                mode = gr.Radio(list(WALK_MODES), value="slerp", label="Interpolation")
                loop = gr.Checkbox(value=True, label="Loop back to the first seed")
                fps = gr.Slider(1, MAX_GIF_FPS, value=12, step=1, label="Frames per second")
            walk_button = gr.Button("Walk", variant="primary")
            with gr.Row():
                preview = gr.Image(label="Walk", type="filepath", height=display, interactive=False, elem_classes=["pixelated", "enlarged"])
                with gr.Column():
                    gif_file = gr.File(label="GIF")
                    mp4_file = gr.File(label="MP4")
                    walk_info = gr.Markdown()
            walk_button.click(ex.walk, [walk_seeds, per_segment, mode, loop, fps], [preview, gif_file, mp4_file, walk_info], api_name="walk")

        with gr.Tab("Feature map"):
            gr.Markdown(
                "Real and generated images placed by their discriminator features (Radford et al. Sec. 5.1): "
                "generated points far from every real one are modes the generator invented; real regions "
                "without generated points are modes it dropped."
            )
            with gr.Row():
                color_by = gr.Dropdown(choices=ex.colorings(), value=REAL_VS_GENERATED, label="Colour by")
                max_points = gr.Slider(100, MAX_FEATURE_POINTS, value=5000, step=100, label="Points")
                plot_button = gr.Button("Show map", variant="primary")
            plot = gr.Plot(label="Feature map")
            caption = gr.Markdown()
            plot_button.click(ex.feature_map_figure, [color_by, max_points], [plot, caption], api_name="feature_map")
    demo.explorer = ex  # for tests and the launcher's messages
    return demo


# ----------------------------------------------------------------------------------------------- serving


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False, concurrency: int = 2, quiet: bool = False):
    """Start serving without blocking: (local_url, share_url or None). Says clearly when no share link came."""
    demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)
    _, local_url, share_url = demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=True, css=CSS, quiet=quiet,
        state_session_capacity=MAX_SESSIONS,
        ssr_mode=False,  # no Node server: one process, one port, which is what the tests and the load bench drive
    )
    if share:
        if share_url:
            print(f"Public link: {share_url}", flush=True)
        else:
            print(f"{NO_LINK_MESSAGE} Still serving locally at {local_url}", flush=True)
    return local_url, share_url


def default_checkpoint() -> Path:
    return CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m explorer.gradio_app", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()), help="checkpoint or run directory (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a temporary public link")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for every one)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--concurrency", type=int, default=2, help="requests run at once (the rest queue)")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        demo = build_demo(args.checkpoint)
    except CheckpointError as exc:
        usable = [info.name for info in list_checkpoints() if not info.error]
        hint = f" Available under {CHECKPOINTS_ROOT}: {', '.join(usable)}." if usable else ""
        print(f"Cannot open the checkpoint: {exc}.{hint} Pass another with --checkpoint PATH.", file=sys.stderr)
        return 2
    launch(demo, args.host, args.port, args.share, args.concurrency)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
