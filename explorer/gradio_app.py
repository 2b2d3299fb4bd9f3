"""`python -m explorer.gradio_app`: launcher for the Gradio demo in the top-level `gradio_app.py`.

The core package never imports gradio at import time (it is a UI dependency the training code and
the Streamlit app do without), so this module only forwards to the app module when `main` runs.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    # The app module sits next to app.py at the repository root, which is on sys.path when run as
    # `python -m explorer.gradio_app` from the root, but not necessarily from elsewhere.
    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    import gradio_app

    return gradio_app.main(argv)


if __name__ == "__main__":
    sys.exit(main())
