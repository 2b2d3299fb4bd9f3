"""Small Streamlit display helpers shared by the pages: crisp images, messages, progress, the directions note."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import numpy as np
import streamlit as st

from explorer import analysis
from explorer.images import enlarge, grid, uint8_to_tensor
from explorer.selection import ModelKey
from ui import cache
from ui.state import set_link

DISPLAY_SIDE = 256  # generated images are enlarged to about this many pixels, nearest-neighbour


def show_image(image: np.ndarray, caption: str | None = None, side: int = DISPLAY_SIDE) -> None:
    st.image(enlarge(image, side), caption=caption)


def show_mosaic(images_u8: np.ndarray, nrow: int, caption: str | None = None, side: int = 96) -> None:
    """A grid of uint8 images as one picture (one st.image, so a 3x3 grid stays a square)."""
    mosaic = grid(uint8_to_tensor(images_u8), nrow=nrow)
    tile = images_u8.shape[1]
    st.image(enlarge(mosaic, max(mosaic.shape[:2]) * max(1, side // tile)), caption=caption)


def show_messages(messages: list[str], kind: str = "warning") -> None:
    for message in messages:
        (st.warning if kind == "warning" else st.error)(message[:1].upper() + message[1:])


def run_with_progress(label: str, work: Callable[[Callable[[float, str], None]], Any]) -> Any:
    """Run `work(progress)` under a spinner with a progress bar; returns its result or None after st.error."""
    bar = st.progress(0.0, text="Starting…")
    with st.spinner(label):
        try:
            return work(lambda f, m: bar.progress(min(max(float(f), 0.0), 1.0), text=m))
        except (ValueError, RuntimeError, OSError) as exc:
            st.error(f"{label.rstrip('…')} failed: {exc}")
            return None


def _compute_directions(key: ModelKey, progress: Callable[[float, str], None]):
    """The directions analysis in this request, written to the core's cache.

    Minutes on a CPU: most of it refines the cond: sliders (explorer/refine_directions.py).
    """
    probe, reason = cache.probe(key)
    dataset = None if probe is None else cache.real_dataset(key, analysis.PROBE_IMAGES)
    directions = analysis.load_or_compute_directions(cache.model(key), dataset, probe=probe, progress=progress)
    if reason:
        directions.skipped.setdefault("attributes", reason)
    return directions


def directions_panel(key: ModelKey, where: str) -> None:
    """Say which directions could not be made, or offer the in-request analysis behind a button when none is cached."""
    directions, analysed, problem = cache.directions(key)
    if problem:
        st.warning(problem)
    if analysed:
        if directions.skipped:
            with st.expander(f"{len(directions.skipped)} direction(s) could not be made"):
                for name, why in directions.skipped.items():
                    st.markdown(f"- **{name}**: {why}")
        return
    st.info(
        "Only SeFa directions (closed form) are available: GANSpace and the labelled attribute directions "
        "need an analysis of this checkpoint, which is not cached yet (`python -m explorer.precompute CHECKPOINT` "
        "does it offline)."
    )
    clicked = st.button(
        "Compute GANSpace and attribute directions (minutes on a CPU: each conditional slider is refined through G and D)",
        key=f"compute_dirs_{where}",
    )
    if clicked and run_with_progress("Analysing the checkpoint…", lambda progress: _compute_directions(key, progress)) is not None:
        st.rerun(scope="app")


def link_box(link: Mapping[str, str], caption: str) -> None:
    """Put `link` (query parameters) into the URL and show the full address under `caption`, to copy and share."""
    set_link(link)
    st.caption(caption)
    st.code(f"{(st.context.url or '').split('?')[0]}?{urlencode(link)}", language=None)
