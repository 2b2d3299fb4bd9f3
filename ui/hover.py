"""Hover previews for the feature map: plotly hover labels cannot hold images, so a small component shows them.

The map's points carry their index in customdata; the component (assets/hover.js) hooks `plotly_hover`
on the page's plots and shows a floating <img> whose file is served by Streamlit's static file
serving: static/thumbs/<checkpoint>/<map>/<index>.png, written once per map by a background thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.images import png_bytes
from explorer.selection import ModelKey

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"  # served at /app/static/ (server.enableStaticServing)
THUMB_BATCH = 500
_jobs: dict[str, threading.Thread] = {}  # one writer per map and server process, whatever the sessions
_errors: dict[str, str] = {}
_lock = threading.Lock()
_hover = st.components.v2.component("latent_lab_plot_hover", js=(Path(__file__).resolve().parent / "assets" / "hover.js").read_text())


def preview_folder(key: ModelKey, map_id: str) -> Path:
    """Where the previews of one map of one checkpoint are written (static/thumbs/<checkpoint>/<map>/)."""
    return STATIC_DIR / "thumbs" / key.short / map_id


def hover_thumbnails(key: ModelKey, map_id: str, count: int, render: Callable[[np.ndarray], list]) -> tuple[str | None, str]:
    """(URL prefix of the map's preview files, status): "ready", "preparing", or why there are none.

    The first call for a map starts a background thread that writes `render(points)` for all `count`
    points (thousands of generator passes: tens of seconds), so the page shows the plot at once.
    `render` must not call Streamlit.
    """
    folder = preview_folder(key, map_id)
    prefix = f"app/static/thumbs/{key.short}/{map_id}/"  # relative: works under any server.baseUrlPath
    if (folder / ".complete").is_file():
        return prefix, "ready"
    if not STATIC_DIR.is_dir():
        return None, f"the folder {STATIC_DIR} is missing"
    with _lock:
        if str(folder) in _errors:
            return None, _errors[str(folder)]
        if str(folder) not in _jobs:
            job = threading.Thread(target=_write, args=(folder, count, render), name=f"thumbs-{map_id}", daemon=True)
            _jobs[str(folder)] = job
            job.start()
    return prefix, "preparing"


def _write(folder: Path, count: int, render: Callable[[np.ndarray], list]) -> None:
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
        with _lock:
            _errors[str(folder)] = f"{type(exc).__name__}: {exc}"


def await_thumbnails(key: ModelKey, map_id: str) -> None:
    """A note that polls every 2 s and reruns the page once the previews are written."""
    marker = preview_folder(key, map_id) / ".complete"

    @st.fragment(run_every=2.0)
    def poll() -> None:
        if marker.is_file():
            st.rerun(scope="app")
        st.caption("Preparing hover previews in the background; meanwhile click, box- or lasso-select points to see their images.")

    poll()


def plot_hover(prefix: str, trace_meta: str) -> None:
    """Mount the hover-preview hook (invisible) for plot traces whose `meta` is `trace_meta`."""
    _hover(key="plot_hover", data={"prefix": prefix, "meta": trace_meta}, height=0)
