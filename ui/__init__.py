"""The front ends' helpers, outside the UI-free core (`explorer/`).

Streamlit: `navigation` (the page list), `state` (values that outlive a page, the URL), `cache`
(st.cache wrappers around the core), `sidebar` (checkpoint picker and `page_setup`), `widgets`
(display and progress), `hover` (plot hover previews), `board` (the drag-and-drop concept board; its
JS/CSS in `assets/`). Both front ends: `figures` (plotly builders, no Streamlit). Gradio:
`gradio_explorer` (the demo's actions). Importing this package imports neither streamlit nor gradio.

The explorer's servers share a few cores with training runs. OpenMP's default is to spin-wait for
work, and with more threads than free cores the spinning threads take the CPU from the working
ones: on this project's 2-core host under load, G(z) for 2 images took 2-4 s with torch's 2
threads spinning and 0.16-0.3 s with them sleeping (bench/explorer_latency.py, BENCHMARKS.md). So
the app processes let idle OpenMP threads sleep, unless the environment says otherwise. This must
happen before torch loads its OpenMP runtime, hence here: app.py imports this package first.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
