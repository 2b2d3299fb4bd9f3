"""Dependencies run one way: training -> explorer <- front ends. The core never loads a UI.

Every module of explorer/ and training/ is imported, one after the other, in a fresh interpreter; after
each, the interpreter must hold no streamlit, no gradio and none of the front ends' own modules
(app, gradio_app, pages, ui). One process for all of them keeps this to a few seconds.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("streamlit", "gradio", "gradio_client", "app", "gradio_app", "pages", "ui")
CHECK = """
import importlib, json, sys
forbidden = {forbidden!r}
report = {{}}
for name in {modules!r}:
    importlib.import_module(name)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    if loaded:
        report[name] = loaded
        break
print(json.dumps(report))
"""


def core_modules() -> list[str]:
    found = []
    for package in ("explorer", "training"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_core_modules_load_no_front_end():
    modules = core_modules()
    assert {"explorer.analysis", "explorer.sliders", "explorer.latent", "training.run"} <= set(modules)
    code = CHECK.format(forbidden=FORBIDDEN, modules=modules)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}, "a core module loaded a front end"


def test_the_check_would_notice_a_front_end():
    """The same check, fed a module that does import a front end, reports it (so the test above can fail)."""
    code = CHECK.format(forbidden=FORBIDDEN, modules=["explorer.latent", "ui.figures"])
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"ui.figures": ["ui", "ui.figures"]}
