"""Streamlit helpers shared by the explorer's pages: the checkpoint picker, model/result caches, small widgets.

Everything here is UI glue: it turns widget values into arguments for the UI-free core in
`explorer/`, caches what the core returns, and shows it. A few small array helpers that arguably
belong to the core live at the bottom under "core candidates" until the core grows them.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import streamlit as st
import torch
from streamlit import config as streamlit_config
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer import featuremap
from explorer.checkpoint import (
    META_FILE,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint_dir,
)
from explorer.datasets import DatasetError, ImageDataset, load_dataset
from explorer.directions import (
    Direction,
    DirectionSet,
    load_directions,
    sefa_directions,
)
from explorer.probe import Probe
from explorer.generate import generate, realism
from explorer.images import from_uint8, grid, png_bytes, to_uint8
from explorer.latent import z_from_seeds
from explorer.registry import (
    CHECKPOINTS_ROOT,
    DEFAULT_CHECKPOINT,
    CheckpointInfo,
    list_checkpoints,
    resolve_user_path,
)

ROOT_ENV = "LATENT_LAB_CHECKPOINTS"  # tests (and deployments) point the app at another checkpoints folder
APP_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = APP_DIR / "static"  # served at /app/static/ (server.enableStaticServing in .streamlit/config.toml)
DISPLAY_SIDE = 256  # generated images are enlarged to about this many pixels, nearest-neighbour

# session_state keys of the sidebar, shared by all pages
ACTIVE = "active_checkpoint"
PICK = "ckpt_pick"
TYPED = "ckpt_typed"


# ----------------------------------------------------------------------------------------------- widget state
# Streamlit forgets a widget's value when a run does not draw it (another page, or a run stopped early),
# and after a page switch a widget may even start from its default although its key is still in
# session_state. So each value that should outlive the page lives in a plain session_state entry
# ("kept::KEY"), copied back on every change, and copied into the widget when the widget is new: on
# the first run of a page, or after Streamlit dropped it. Not on every run: a value pushed into a
# widget on each rerun would undo a slider's key presses that arrive while the previous rerun runs.
# Code that changes such a value (URL links, buttons) calls set_kept.

KEPT = "kept::"
_LAST_PAGE = "kept::page"  # the page script of the previous run
_NEW_PAGE = "kept::new-page"  # True on the first run of a page


def note_page() -> None:
    """Record whether this run shows another page than the last one (page_setup calls it first)."""
    ctx = get_script_run_ctx()
    page = ctx.page_script_hash if ctx is not None else ""
    st.session_state[_NEW_PAGE] = st.session_state.get(_LAST_PAGE) != page
    st.session_state[_LAST_PAGE] = page


def is_new_page() -> bool:
    """True on the first run of the current page in this session (a page switch, or a new session from a link)."""
    return bool(st.session_state.get(_NEW_PAGE, True))


def kept(key: str, default: Any, on_change: Callable[[], None] | None = None) -> dict:
    """Widget kwargs (key, on_change) for a value that survives page switches; pass no value/index as well."""
    shadow = KEPT + key
    if shadow not in st.session_state:
        st.session_state[shadow] = default
    if st.session_state.get(_NEW_PAGE, True) or key not in st.session_state:
        st.session_state[key] = st.session_state[shadow]

    def changed() -> None:
        st.session_state[shadow] = st.session_state[key]
        if on_change is not None:
            on_change()

    return {"key": key, "on_change": changed}


def kept_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(KEPT + key, default)


def set_kept(key: str, value: Any) -> None:
    """Change a kept value and its widget (in a callback, or in the script before the widget is drawn)."""
    st.session_state[KEPT + key] = value
    st.session_state[key] = value


def checkpoints_root() -> Path:
    """The folder the picker lists and typed paths are confined to: $LATENT_LAB_CHECKPOINTS or checkpoints/."""
    value = os.environ.get(ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else CHECKPOINTS_ROOT


# ----------------------------------------------------------------------------------------------- models


class ModelKey(NamedTuple):
    """What identifies a loaded model in the caches: the snapshot directory and its meta.json hash.

    The hash changes when a run directory's latest snapshot is replaced by training, so a cached
    model is never served for weights that moved on. A tuple of strings hashes cheaply in st.cache_*.
    """

    path: str
    meta_sha: str

    @property
    def short(self) -> str:
        return self.meta_sha[:16]


def model_key(path: str | os.PathLike) -> ModelKey:
    """Resolve a listed/typed checkpoint path to its snapshot and hash its meta.json (CheckpointError if unusable)."""
    snapshot = resolve_checkpoint_dir(path)
    try:
        sha = hashlib.sha256((snapshot / META_FILE).read_bytes()).hexdigest()
    except OSError as exc:
        raise CheckpointError(f"cannot read {snapshot / META_FILE}: {exc}") from exc
    return ModelKey(str(snapshot), sha)


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=4)
def load_model(path: str, meta_sha: str) -> Checkpoint:
    """One loaded (eval-mode, never mutated) checkpoint per snapshot, shared by every session.

    `meta_sha` is only part of the cache key (see ModelKey).
    """
    return load_checkpoint(path)


def model(key: ModelKey) -> Checkpoint:
    return load_model(key.path, key.meta_sha)


@dataclass
class Active:
    """The checkpoint the sidebar picked, as the pages see it."""

    label: str  # its name under the checkpoints folder, or the typed path
    run_dir: Path  # where history.jsonl, samples/ and curves.png live
    key: ModelKey

    @property
    def checkpoint(self) -> Checkpoint:
        return model(self.key)


def run_dir_for(listed: Path, snapshot: Path) -> Path:
    """The training run folder of a checkpoint: the listed folder, or RUN for a typed RUN/snapshots/step-N."""
    if snapshot.parent.name == "snapshots" and listed == snapshot:
        return snapshot.parent.parent
    return listed


def _format_info(info: CheckpointInfo) -> str:
    if info.error:
        return f"{info.name} (broken)"
    return f"{info.name} · {info.dataset_spec or '?'} · {info.image_size}px · step {info.step}"


def checkpoint_sidebar() -> Active | None:
    """The sidebar picker (listed runs + a typed path), its meta, and the loaded model; None if unusable.

    The result is also left in st.session_state[ACTIVE]. Problems are shown with st.error and never
    raise: the page then tells the user to pick another checkpoint.
    """
    st.session_state[ACTIVE] = None
    root = checkpoints_root()
    infos = list_checkpoints(root)
    st.subheader("Checkpoint")
    names = [info.name for info in infos]
    by_name = {info.name: info for info in infos}
    if names and kept_value(PICK) not in names:
        # first visit, or the picked run disappeared: the shipped default if usable, else the first usable one
        usable = [info.name for info in infos if not info.error] or names
        set_kept(PICK, DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in usable else usable[0])
    if names:
        st.selectbox("Run", names, format_func=lambda n: _format_info(by_name[n]), **kept(PICK, names[0]))
    else:
        st.info(f"No checkpoints under {root}. Train one, e.g. `python -m training.run --dataset synthetic-faces --out checkpoints/my-run`.")
    typed = st.text_input(
        "…or a path inside the checkpoints folder",
        placeholder="e.g. experiments/run-3",
        help=f"Relative to {root}; paths outside it are refused.",
        **kept(TYPED, ""),
    ).strip()

    if typed:
        try:
            listed = resolve_user_path(typed, allowed_roots=(root,))
        except ValueError as exc:
            st.error(f"Cannot use that path: {exc}")
            return None
        label = typed
    elif names:
        info = by_name[kept_value(PICK)]
        if info.error:
            st.error(f"{info.name} cannot be opened: {info.error}")
            return None
        listed, label = info.path, info.name
    else:
        return None

    try:
        key = model_key(listed)
        checkpoint = model(key)
    except (CheckpointError, OSError, ValueError) as exc:
        st.error(f"Cannot load {label}: {exc}")
        return None
    active = Active(label=label, run_dir=run_dir_for(listed, Path(key.path)), key=key)
    _show_meta(checkpoint)
    st.session_state[ACTIVE] = active
    return active


def _show_meta(checkpoint: Checkpoint) -> None:
    cfg, dataset = checkpoint.config, checkpoint.dataset
    colour = "RGB" if cfg.channels == 3 else "grayscale"
    st.caption(
        f"**{dataset.get('spec', 'unknown dataset')}** · step {checkpoint.step:,} · {cfg.image_size} px {colour} · "
        f"z {cfg.z_dim} · {'EMA generator' if checkpoint.generator_kind == 'ema' else 'generator'}"
        + ("" if checkpoint.discriminator is not None else " · no discriminator")
    )
    metrics = checkpoint.meta.get("metrics") or {}
    if metrics:
        with st.expander("Last training metrics"):
            st.dataframe(
                {"metric": list(metrics), "value": [f"{v:.4g}" if isinstance(v, float) else str(v) for v in metrics.values()]},
                hide_index=True,
            )


def page_setup() -> Active:
    """Every page starts here: page config, the sidebar's checkpoint picker, and the page's checkpoint.

    The picker's widgets have the same keys on every page and keep their values across pages (see
    `kept`). Stops the page when no checkpoint is usable; the sidebar then says why.
    """
    if PagesManager.uses_pages_directory and not streamlit_config.get_option("global.appTest"):
        # Streamlit's legacy multipage mode ran this file directly: a folder named pages/ sends a fresh
        # server's first run that way when it asks for a sub-page (e.g. a bookmarked /walks), and then the
        # sidebar lists every pages/*.py, helpers included, until app.py runs. st.navigation clears the
        # same flag; clear it and rerun, so app.py's explicit page list takes over. (AppTest resets the
        # flag before every run; there the page simply runs on, since it draws its own sidebar.)
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title="latent-lab explorer", layout="wide")
    note_page()
    with st.sidebar:
        active = checkpoint_sidebar()
    if active is None:
        st.warning("No usable checkpoint is selected: pick one in the sidebar.")
        st.stop()
    return active


# ----------------------------------------------------------------------------------------------- cached results


@st.cache_data(max_entries=64, show_spinner=False)
def images_for_latents(key: ModelKey, z: np.ndarray) -> np.ndarray:
    """uint8 images (N, H, W[, 3]) for latents (N, z_dim); cached on the exact latents."""
    return to_uint8(generate(model(key).generator, torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))))


@st.cache_data(max_entries=32, show_spinner=False)
def seed_images(key: ModelKey, seeds: tuple[int, ...]) -> np.ndarray:
    return images_for_latents(key, z_from_seeds(list(seeds), model(key).config.z_dim).numpy())


@st.cache_data(max_entries=64, show_spinner=False)
def realism_for_latents(key: ModelKey, z: np.ndarray) -> np.ndarray | None:
    """sigmoid(D(G(z))) for latents (N, z_dim), or None when the checkpoint has no discriminator."""
    checkpoint = model(key)
    if checkpoint.discriminator is None:
        return None
    images = generate(checkpoint.generator, torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)))
    return realism(checkpoint.discriminator, images)


@st.cache_data(max_entries=256, show_spinner=False)
def data_url(image: np.ndarray) -> str:
    """A PNG data URL for <img src> inside components (enlarged so thumbnails are not blurred by the browser)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(upscale(image, 96))).decode("ascii")


# ----------------------------------------------------------------------------------------------- analysis cache
# The slow analysis (GANSpace + attribute directions, the feature map) is read from the core's cache
# (explorer.featuremap: <checkpoint>/analysis/ as written by `python -m explorer.precompute`, or the
# per-user cache). Computing it happens only behind a button, through the same cache.

PROBE_IMAGES = 4000  # real images the in-app probe may read: a few hundred per attribute value
PROBE_PER_CLASS = 300


def _cached_files(key: ModelKey, pattern: str) -> list[Path]:
    """Analysis files for this checkpoint's weights matching `pattern`, preferred first (see the core)."""
    return featuremap.cached_analysis_files(model(key), pattern)


@st.cache_resource(max_entries=8, show_spinner=False)
def _load_directions_file(path: str, mtime: float) -> DirectionSet:
    return load_directions(path)


@st.cache_resource(max_entries=8, show_spinner=False)
def _sefa(key: ModelKey) -> list[Direction]:
    return sefa_directions(model(key).generator)


def cached_directions(key: ModelKey) -> tuple[DirectionSet | None, str | None]:
    """(the cached analysis' directions, or None; a problem to show, or None)."""
    for path in _cached_files(key, "directions-*.npz"):
        try:
            return _load_directions_file(str(path), path.stat().st_mtime), None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            return None, f"the directions file {path} cannot be read ({exc}); compute them again"
    return None, None


def all_directions(key: ModelKey) -> dict[str, Direction]:
    """name -> Direction: SeFa (closed form, milliseconds, always there) plus whatever analysis is cached."""
    found = {d.name: d for d in _sefa(key)}
    cached, _ = cached_directions(key)
    if cached:
        found.update(cached)
    return found


@st.cache_resource(max_entries=2, show_spinner=False)
def real_dataset(key: ModelKey, max_images: int) -> ImageDataset:
    """The checkpoint's training set (its first `max_images`), at the checkpoint's size; ValueError if unavailable."""
    return load_real_dataset(model(key), max_images)


def load_real_dataset(checkpoint: Checkpoint, max_images: int) -> ImageDataset:
    """`real_dataset` without Streamlit's caches, for background threads (no script context there)."""
    spec = checkpoint.dataset.get("spec")
    if not spec:
        raise DatasetError("the checkpoint does not record which dataset it was trained on")
    cfg = checkpoint.config
    return load_dataset(spec, image_size=cfg.image_size, channels=cfg.channels, max_images=max_images)


@st.cache_resource(max_entries=4, show_spinner=False)
def attribute_probe(key: ModelKey) -> Probe:
    """The linear attribute/class probe on D's features: a cached one, else fitted on part of the training set.

    A fit (seconds to a minute) happens the first time a page needs a probe for a checkpoint without
    a cached one, and is cached beside the directions. ValueError (DatasetError included) when the
    checkpoint has no discriminator, or its dataset cannot be read here or has no labels.
    """
    checkpoint = model(key)
    cached = featuremap.cached_probe(checkpoint) if checkpoint.discriminator is not None else None
    if cached is not None:  # e.g. the one `python -m explorer.precompute` wrote (more labels than the app uses)
        return cached
    return featuremap.load_or_fit_probe(checkpoint, lambda: real_dataset(key, PROBE_IMAGES), max_per_class=PROBE_PER_CLASS)


def probe_or_reason(key: ModelKey) -> tuple[Probe | None, str | None]:
    try:
        return attribute_probe(key), None
    except ValueError as exc:  # DatasetError is a ValueError
        return None, str(exc)


def compute_directions_now(key: ModelKey, progress: Callable[[float, str], None]) -> DirectionSet:
    """The directions analysis in this request (tens of seconds), written to the core's cache."""
    probe, reason = probe_or_reason(key)
    dataset = None if probe is None else real_dataset(key, PROBE_IMAGES)
    directions = featuremap.load_or_compute_directions(model(key), dataset, probe=probe, progress=progress)
    if reason:
        directions.skipped.setdefault("attributes", reason)
    return directions


def run_with_progress(label: str, work: Callable[[Callable[[float, str], None]], Any]) -> Any:
    """Run `work(progress)` under a spinner with a progress bar; returns its result or None after st.error."""
    bar = st.progress(0.0, text="Starting…")
    with st.spinner(label):
        try:
            return work(lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0), text=m))
        except (ValueError, RuntimeError, OSError) as exc:
            st.error(f"{label.rstrip('…')} failed: {exc}")
            return None


def directions_panel(key: ModelKey, where: str) -> None:
    """Say which directions exist, and offer the in-request analysis behind a button when none is cached."""
    cached, problem = cached_directions(key)
    if problem:
        st.warning(problem)
    if cached is not None:
        if cached.skipped:
            with st.expander(f"{len(cached.skipped)} direction(s) could not be made"):
                for name, why in cached.skipped.items():
                    st.markdown(f"- **{name}**: {why}")
        return
    st.info(
        "Only SeFa directions (closed form) are available: GANSpace and the labelled attribute directions "
        "need an analysis of this checkpoint, which is not cached yet (`python -m explorer.precompute CHECKPOINT` "
        "does it offline)."
    )
    clicked = st.button("Compute GANSpace and attribute directions (about a minute)", key=f"compute_dirs_{where}")
    if clicked and run_with_progress("Analysing the checkpoint…", lambda progress: compute_directions_now(key, progress)) is not None:
        st.rerun()


def direction_label(name: str, directions: dict[str, Direction]) -> str:
    if name.startswith("z:"):
        return f"raw z[{name[2:]}]"
    d = directions.get(name)
    score = "" if d is None or d.score is None else f" ({d.score:.0%})"
    return f"{name}{score}"


# ----------------------------------------------------------------------------------------------- hover previews
# Plotly's hover labels cannot hold images. The map's points carry their index in customdata; a small
# component hooks `plotly_hover` on the page's plots and shows a floating <img> whose file is served
# by Streamlit's static file serving (static/thumbs/<checkpoint>/<map>/<index>.png, written once).

THUMB_BATCH = 500
_thumb_jobs: dict[str, threading.Thread] = {}  # one writer per map and server process, whatever the sessions
_thumb_errors: dict[str, str] = {}
_thumb_lock = threading.Lock()


def _thumb_folder(key: ModelKey, map_id: str) -> Path:
    return STATIC_DIR / "thumbs" / key.short / map_id


def hover_thumbnails(
    key: ModelKey, map_id: str, count: int, render: Callable[[np.ndarray], list]
) -> tuple[str | None, str]:
    """(URL prefix of the map's preview files, status): "ready", "preparing", or why there are none.

    The first call for a map starts a background thread that writes `render(points)` for all `count`
    points (thousands of generator passes: tens of seconds), so the page shows the plot at once.
    `render` must not call Streamlit.
    """
    folder = _thumb_folder(key, map_id)
    prefix = f"app/static/thumbs/{key.short}/{map_id}/"  # relative: works under any server.baseUrlPath
    if (folder / ".complete").is_file():
        return prefix, "ready"
    if not STATIC_DIR.is_dir():
        return None, f"the folder {STATIC_DIR} is missing"
    with _thumb_lock:
        if str(folder) in _thumb_errors:
            return None, _thumb_errors[str(folder)]
        if str(folder) not in _thumb_jobs:
            job = threading.Thread(target=_write_thumbnails, args=(folder, count, render), name=f"thumbs-{map_id}", daemon=True)
            _thumb_jobs[str(folder)] = job
            job.start()
    return prefix, "preparing"


def _write_thumbnails(folder: Path, count: int, render: Callable[[np.ndarray], list]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, count, THUMB_BATCH):
            points = np.arange(start, min(start + THUMB_BATCH, count))
            for i, image in zip(points, render(points)):
                if image is not None:
                    # Written in place, not temp + rename: a Streamlit server starting meanwhile sizes static/
                    # file by file and dies on a vanished temp file. Nobody reads a preview before .complete.
                    (folder / f"{i}.png").write_bytes(png_bytes(image))
        (folder / ".complete").write_text("ok\n")
    except Exception as exc:  # noqa: BLE001 - any failure is shown on the page; the plot works without previews
        with _thumb_lock:
            _thumb_errors[str(folder)] = f"{type(exc).__name__}: {exc}"


def await_thumbnails(key: ModelKey, map_id: str) -> None:
    """A note that polls every 2 s and reruns the page once the previews are written."""
    marker = _thumb_folder(key, map_id) / ".complete"

    @st.fragment(run_every=2.0)
    def poll() -> None:
        if marker.is_file():
            st.rerun()
        st.caption("Preparing hover previews in the background; meanwhile click, box- or lasso-select points to see their images.")

    poll()


_HOVER_JS = """
export default function ({ data }) {
  // One floating <img> and one hook per plot for the whole page; repeated calls only update the settings.
  const state = (window.__latentLabHover = window.__latentLabHover || {});
  state.prefix = data.prefix;
  state.meta = data.meta;
  if (!state.img) {
    state.img = document.createElement('img');
    Object.assign(state.img.style, {
      position: 'fixed', pointerEvents: 'none', zIndex: 100000, width: '96px', height: '96px', display: 'none',
      imageRendering: 'pixelated', border: '2px solid white', boxShadow: '0 2px 8px rgba(0,0,0,0.4)', borderRadius: '4px',
    });
    state.img.className = 'latent-lab-hover-thumb';
    document.body.appendChild(state.img);
  }
  const hide = () => { state.img.style.display = 'none'; };
  const hook = () => {
    document.querySelectorAll('.js-plotly-plot').forEach(gd => {
      if (gd.__latentLabHover || typeof gd.on !== 'function') return;
      gd.__latentLabHover = true;
      gd.on('plotly_hover', ev => {
        const p = ev.points && ev.points[0];
        if (!p || p.customdata === undefined || p.customdata === null || !p.data || p.data.meta !== state.meta) return;
        const index = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
        state.img.src = state.prefix + index + '.png';
        const e = ev.event || {};
        state.img.style.left = ((e.clientX || 0) + 16) + 'px';
        state.img.style.top = ((e.clientY || 0) + 16) + 'px';
        state.img.style.display = 'block';
      });
      gd.on('plotly_unhover', hide);
    });
  };
  hook();
  // Plots re-render (new elements) on reruns: keep looking for unhooked ones while this page is open.
  if (!state.timer) state.timer = setInterval(() => {
    if (!document.querySelector('.js-plotly-plot')) hide();
    hook();
  }, 500);
}
"""
_hover = st.components.v2.component("latent_lab_plot_hover", js=_HOVER_JS)


def plot_hover(prefix: str, trace_meta: str) -> None:
    """Mount the hover-preview hook (invisible) for plot traces whose `meta` is `trace_meta`."""
    _hover(key="plot_hover", data={"prefix": prefix, "meta": trace_meta}, height=0)


# ----------------------------------------------------------------------------------------------- display


def upscale(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """Integer nearest-neighbour enlargement so small samples show crisp pixels instead of browser blur."""
    factor = max(1, side // max(image.shape[0], image.shape[1]))
    return image.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else image


def show_image(image: np.ndarray, caption: str | None = None, side: int = DISPLAY_SIDE) -> None:
    st.image(upscale(image, side), caption=caption)


def show_mosaic(images_u8: np.ndarray, nrow: int, caption: str | None = None, side: int = 96) -> None:
    """A grid of uint8 images as one picture (one st.image, so a 3x3 grid stays a square)."""
    mosaic = grid(uint8_to_tensor(images_u8), nrow=nrow)
    tile = images_u8.shape[1]
    st.image(upscale(mosaic, max(mosaic.shape[:2]) * max(1, side // tile)), caption=caption)


def show_errors(messages: list[str], kind: str = "warning") -> None:
    for message in messages:
        (st.warning if kind == "warning" else st.error)(message[:1].upper() + message[1:])


# ----------------------------------------------------------------------------------------------- core candidates
# Small helpers that arguably belong to the core (explorer/); kept here until it provides them.


def uint8_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W[, C]) as produced by `explorer.images.to_uint8` -> float (N, C, H, W) in [-1, 1] (its inverse)."""
    x = from_uint8(torch.from_numpy(np.ascontiguousarray(images)))
    return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


def layer_table(module: torch.nn.Module, example: torch.Tensor) -> list[dict]:
    """One row per leaf layer: name, type, settings, output shape (from one forward pass) and parameters."""
    module = copy.deepcopy(module)  # hooks on a private copy: the cached model is shared with other sessions
    rows: list[dict] = []
    hooks = []

    def settings(layer: torch.nn.Module) -> str:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            return f"{layer.in_channels}→{layer.out_channels}, k{layer.kernel_size[0]} s{layer.stride[0]} p{layer.padding[0]}"
        if isinstance(layer, torch.nn.BatchNorm2d):
            return f"{layer.num_features} channels"
        if isinstance(layer, torch.nn.LeakyReLU):
            return f"slope {layer.negative_slope}"
        return ""

    for name, layer in module.named_modules():
        if list(layer.children()):
            continue

        def hook(layer, inputs, output, name=name):
            rows.append(
                {
                    "layer": name,
                    "type": type(layer).__name__,
                    "settings": settings(layer),
                    "output": " × ".join(str(s) for s in tuple(output.shape)[1:]) or "1",
                    "parameters": sum(p.numel() for p in layer.parameters()),
                }
            )

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.no_grad():  # the loaded models are in eval mode and stay so (they are shared by sessions)
            module(example)
    finally:
        for h in hooks:
            h.remove()
    return rows
