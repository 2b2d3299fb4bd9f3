"""AppTest helpers shared by the Streamlit page tests (tests/test_app*.py).

The app reads the checkpoints folder from LATENT_LAB_CHECKPOINTS, which the `tiny_checkpoints`
fixture sets (the `tiny` fixture in conftest is the same folder).
"""
from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
ARITH = "pages/arithmetic.py"
WALKS = "pages/walks.py"
FMAP = "pages/feature_map.py"
TIMEOUT = 120  # first runs import torch and load the model; later ones take well under a second


def image_urls(at: AppTest) -> list[str]:
    """Media URLs of every st.image on the page (content-addressed, so a new image means a new URL)."""
    return [img.url for element in at.get("image") for img in element.proto.imgs]


def captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def link(at: AppTest) -> dict[str, str]:
    """The URL's query parameters the app wrote, as {name: value}."""
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def names(options: list[str]) -> list[str]:
    """Direction names of multiselect/selectbox options as shown ("sefa:0 (12%)" -> "sefa:0")."""
    return [o.split(" (")[0] for o in options]


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def app(tiny_checkpoints, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def from_link(params: dict, page: str | None = None) -> AppTest:
    """A new session opened from a shared link: the URL's query parameters before the first run."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    if page is not None:
        at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at
