"""The explorer's pages, declared once, for app.py's st.navigation; and the way back to it from a stray first run.

A folder named pages/ next to app.py makes a fresh Streamlit server run a requested sub-page (say a
bookmarked /walks) directly, without app.py, with a navigation listing every file in pages/, until
some run calls st.navigation (Streamlit's v1 multipage mode). `pages()` notes in the session that
this run came through app.py; `through_app`, called by `page_setup`, declares the real navigation
and reruns when a session's first run did not, so that run and every later one, in every session,
goes through app.py. (AppTest starts every run in that mode; its first run goes through app.py, and
later ones run the page directly, which works, as each page draws its own sidebar.)
"""
from __future__ import annotations

import streamlit as st

_VIA_APP = "ui::via-app"
_SEEN = "ui::session-seen"


def pages() -> list:
    """The pages for st.navigation (app.py calls this on every run, which it notes)."""
    st.session_state[_VIA_APP] = True
    return [
        st.Page("pages/generate.py", title="Generate & sliders", icon=":material/tune:", default=True),
        st.Page("pages/arithmetic.py", title="Vector arithmetic", icon=":material/functions:"),
        st.Page("pages/invert.py", title="Invert & edit", icon=":material/photo_camera:"),
        st.Page("pages/walks.py", title="Latent walks", icon=":material/timeline:"),
        st.Page("pages/feature_map.py", title="Feature map", icon=":material/scatter_plot:"),
        st.Page("pages/model.py", title="Model", icon=":material/monitoring:"),
    ]


def through_app() -> None:
    """On a session's first run: make sure it came through app.py's navigation; if not, declare it and rerun."""
    first_run = not st.session_state.get(_SEEN)
    st.session_state[_SEEN] = True
    if not st.session_state.pop(_VIA_APP, False) and first_run:
        st.navigation(pages())
        st.rerun()
