"""Screenshots of the real explorer on the shipped default checkpoint, for the README.

    python docs/screenshots.py            # writes docs/img/*.png and docs/img/walk.gif

Starts `streamlit run app.py` on 127.0.0.1 (stopped by PID at the end), opens each page in
Debian's chromium through pip playwright, waits until Streamlit is idle, and saves a full-page
screenshot. The walk GIF is the paper's 9-seed slerp walk from the same checkpoint, made by the
same core functions the Latent walks page calls.
"""
from __future__ import annotations

import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.local_server import free_port, launch_chromium, start_streamlit, wait_for_streamlit  # noqa: E402

OUT = REPO / "docs" / "img"
PAGES = {"generate": "", "arithmetic": "arithmetic", "walks": "walks", "feature-map": "feature_map", "model": "model"}
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && !document.querySelector('[data-testid=\"stSkeleton\"]')"


def walk_gif(path: Path) -> None:
    from explorer.checkpoint import load_checkpoint
    from explorer.generate import generate
    from explorer.images import to_uint8
    from explorer.latent import walk, z_from_seeds
    from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT
    from explorer.video import frames_to_gif

    checkpoint = load_checkpoint(CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT)
    z = walk(z_from_seeds(range(9), checkpoint.config.z_dim), frames_per_segment=8, mode="slerp")
    path.write_bytes(frames_to_gif(to_uint8(generate(checkpoint.generator, z)), fps=12, scale=2))


def main() -> int:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    walk_gif(OUT / "walk.gif")
    port = free_port()
    server = start_streamlit(port)
    try:
        wait_for_streamlit(port, server, timeout_s=90)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = launch_chromium(p, profile, viewport={"width": 1400, "height": 1000})
            page = browser.new_page()
            for name, url_path in PAGES.items():
                page.goto(f"http://127.0.0.1:{port}/{url_path}", timeout=120_000)
                page.wait_for_selector("[data-testid='stAppViewContainer']", timeout=120_000)
                time.sleep(2)
                page.wait_for_function(IDLE, timeout=300_000)
                time.sleep(3)  # images and plotly finish drawing after the script run ends
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                print("saved", OUT / f"{name}.png", flush=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
