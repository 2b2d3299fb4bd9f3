"""The drag-and-drop concept board for vector arithmetic: a Streamlit Custom Component v2, no npm build.

Python sends the thumbnails, the bins and the current assignment as `data`; the JS (assets/board.js,
with board.html and board.css) draws them and reports the whole assignment back after every change.
Between reruns the browser's copy is the newest, so the JS takes `data["assignment"]` only when
`data["version"]` changes: Python bumps the version when it changes the assignment itself (auto-fill,
clear, a link).
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

ASSETS = Path(__file__).resolve().parent / "assets"

_board = st.components.v2.component(
    "latent_lab_concept_board",
    html=(ASSETS / "board.html").read_text(),
    css=(ASSETS / "board.css").read_text(),
    js=(ASSETS / "board.js").read_text(),
)


def concept_board(
    key: str, thumbs: list[dict], bins: list[dict], assignment: list[list[int]], version: int, extra: list[dict] = ()
) -> list[list[int]] | None:
    """Mount the board; returns the assignment the user last made in the browser (None before any drop).

    thumbs: the palette, [{"seed": int, "src": data URL}]; extra: pictures for seeds in bins but not in the
    palette; bins: [{"name": str, "label": str}]; assignment: seeds per bin, applied in the browser only when
    `version` differs from the last one sent (bump it when Python itself changes the assignment).
    """
    result = _board(
        key=key,
        data={"thumbs": thumbs, "extra": list(extra), "bins": bins, "assignment": assignment, "version": version},
        default={"assignment": None},
        on_assignment_change=lambda: None,  # declares the "assignment" state; the page reads it after the call
    )
    return result.assignment
