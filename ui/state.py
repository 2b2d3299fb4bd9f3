"""Streamlit session state that outlives a page: kept widget values, page visits, checkpoint changes, the URL.

Streamlit forgets a widget's value when a run does not draw it (another page, or a run stopped
early), and after a page switch a widget may even start from its default although its key is still
in session_state. So each value that should outlive the page lives in a plain session_state entry
("kept::KEY"), copied back on every change, and copied into the widget once per page visit (or
after Streamlit dropped it). Not on every run: a value pushed into a widget on each rerun would undo
a slider's key presses that arrive while the previous rerun runs, and fragment reruns (which skip
`page_setup`) must not push either. Code that changes such a value (links, buttons) calls `set_kept`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

KEPT = "kept::"
_PAGE = "ui::page"  # the page of the last full run
_VISIT = "ui::visit"  # counts page switches; a kept value is pushed into its widget once per visit
_NEW_PAGE = "ui::new-page"  # True during the first full run of a page visit
_PUSHED = "ui::pushed::"
_CHECKPOINT = "ui::checkpoint::"


def note_page(page: str) -> None:
    """Record which page this full run shows (`page_setup` calls it first, with the page's own name)."""
    state = st.session_state
    new = state.get(_PAGE) != page
    state[_NEW_PAGE] = new
    if new:
        state[_VISIT] = state.get(_VISIT, 0) + 1
    state[_PAGE] = page


def is_new_page() -> bool:
    """True on the first run of the current page in this session (a page switch, or a new session from a link)."""
    return bool(st.session_state.get(_NEW_PAGE, True))


def kept(key: str, default: Any, on_change: Callable[[], None] | None = None) -> dict:
    """Widget kwargs (key, on_change) for a value that survives page switches; pass no value/index as well."""
    state = st.session_state
    shadow = KEPT + key
    if shadow not in state:
        state[shadow] = default
    visit = state.get(_VISIT, 0)
    if state.get(_PUSHED + key) != visit or key not in state:
        state[key] = state[shadow]
        state[_PUSHED + key] = visit

    def changed() -> None:
        state[shadow] = state[key]
        if on_change is not None:
            on_change()

    return {"key": key, "on_change": changed}


def kept_value(key: str, default: Any = None) -> Any:
    return st.session_state.get(KEPT + key, default)


def set_kept(key: str, value: Any) -> None:
    """Change a kept value and its widget (in a callback, or in the script before the widget is drawn)."""
    st.session_state[KEPT + key] = value
    st.session_state[key] = value


def kept_keys(prefix: str) -> list[str]:
    """Widget keys with kept values that start with `prefix` (e.g. every slider of a page)."""
    return [k[len(KEPT):] for k in list(st.session_state.keys()) if str(k).startswith(KEPT + prefix)]


def checkpoint_changed(scope: str, checkpoint: str) -> bool:
    """True when `scope` (a page) last saw another checkpoint, or none: its defaults then come from this one."""
    key = _CHECKPOINT + scope
    changed = st.session_state.get(key) != checkpoint
    st.session_state[key] = checkpoint
    return changed


def set_link(params: Mapping[str, str]) -> None:
    """Make the URL's query string exactly `params` (written only when it differs, so history is not spammed)."""
    wanted = {k: str(v) for k, v in params.items()}
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
