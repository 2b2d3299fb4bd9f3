"""Latency of the explorer's actions on a checkpoint (issue 4's and issue 13's targets).

    python -m bench.explorer_latency [--checkpoint checkpoints/synthetic-faces-64] [--repeats 20] [--json out.json]
                                     [--only browser] [--server-threads N]

* in a real browser (`streamlit run app.py` + Debian's chromium, as a user sees it):
  - slider move -> new image: a direction slider on the Generate page is moved by one key press
    (ArrowRight, 0.1 latent units, a new value each time); timed in the page from the keydown to the
    moment the edited image's src changes (a MutationObserver; issue 13's row), and to that image's
    load event (fetched from the server and decoded: shown on the next frame), then the app is left
    to go idle;
  - arithmetic board drop -> new result: a palette sample is dragged with the mouse into a bin of
    a board that already holds a result (opened from a link); timed from the drop event to the moment
    the 3x3 grid's src changes (the thumbs are draggable, so Chromium turns the mouse drag into an
    HTML5 drag-and-drop: it ends in `drop`, and no pointerup reaches the page);
* slider move (server side): a full Streamlit rerun of the Generate page (AppTest, in this process)
  after one direction slider changes, i.e. everything the server does for a whole-page rerun;
* 64-image grid, arithmetic 3x3 grid, 60-frame walk + MP4: the core calls each page makes
  (generation, uint8 conversion, PNG/MP4 encoding), timed directly;
* feature map page, cached: AppTest run of the Feature map page with the precomputed map on disk
  (first visit in a session, which reads the file, and a rerun);
* arithmetic auto-fill: the first click in the process (probe from the checkpoint's cache, or fitted);
* app cold start: `streamlit run app.py` in a new process until the first page's images are
  rendered in headless chromium.

The numbers are p50/p95 over `--repeats` (cold start: one run). The feature map's cold build time
comes from `python -m explorer.precompute` (see BENCHMARKS.md), not from here.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app's own processes (ui/__init__.py), before torch loads

import argparse
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tests.support.local_server import free_port, launch_chromium, start_streamlit, wait_for_streamlit

REPO = Path(__file__).resolve().parent.parent


def percentiles(times: list[float]) -> dict[str, float]:
    ms = np.array(times) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "n": len(times)}


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up: first call allocates
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def core_actions(checkpoint_path: Path, repeats: int) -> dict:
    from explorer.arithmetic import ConceptBin, arithmetic
    from explorer.checkpoint import load_checkpoint
    from explorer.generate import seed_grid
    from explorer.images import png_bytes, to_uint8
    from explorer.latent import walk, z_from_seeds
    from explorer.video import frames_to_mp4
    from explorer.generate import generate

    checkpoint = load_checkpoint(checkpoint_path)
    G, z_dim = checkpoint.generator, checkpoint.config.z_dim
    counter = iter(range(10**6))

    def grid64():
        images, _ = seed_grid(G, 1000 * next(counter), 64)  # new seeds each time: no cache helps
        for image in to_uint8(images):
            png_bytes(image)

    def arithmetic_grid():
        base = 100 * next(counter)
        bins = [ConceptBin("a", [base, base + 1, base + 2], 1.0), ConceptBin("b", [base + 3, base + 4, base + 5], -1.0),
                ConceptBin("c", [base + 6, base + 7, base + 8], 1.0)]
        result = arithmetic(G, bins, z_dim, seed=0)
        for image in to_uint8(result.grid_images):
            png_bytes(image)

    def walk_mp4():
        base = 10 * next(counter)
        z = walk(z_from_seeds(range(base, base + 9), z_dim), frames_per_segment=8, mode="slerp")[:60]
        frames_to_mp4(to_uint8(generate(G, z)))

    return {
        "grid_64": percentiles(timed(grid64, repeats)),
        "arithmetic_3x3": percentiles(timed(arithmetic_grid, repeats)),
        "walk_60_frames_mp4": percentiles(timed(walk_mp4, max(3, repeats // 4))),
    }


def apptest_actions(checkpoint_path: Path, repeats: int) -> dict:
    from streamlit.testing.v1 import AppTest

    os.environ["LATENT_LAB_CHECKPOINTS"] = str(checkpoint_path.parent.resolve())
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    slider = next(s for s in at.slider if str(s.key).startswith("gen_off::"))
    key = slider.key
    values = np.linspace(-3, 3, repeats + 1)
    at.slider(key=key).set_value(float(values[0])).run()
    times = []
    for value in values[1:]:
        start = time.perf_counter()
        at.slider(key=key).set_value(round(float(value), 1)).run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    result = {"slider_move_rerun": percentiles(times), "slider": key}

    at.switch_page("pages/feature_map.py")
    start = time.perf_counter()
    at.run()
    first = time.perf_counter() - start
    assert not at.exception, at.exception
    reruns = []
    for _ in range(3):
        start = time.perf_counter()
        at.run()
        reruns.append(time.perf_counter() - start)
    result["feature_map_page_cached"] = {"first_visit_ms": first * 1000, "rerun_p50_ms": float(np.median(reruns) * 1000)}
    result["feature_map_errors"] = [str(e.value) for e in at.error]

    # First auto-fill in this process: needs the attribute probe (read from the checkpoint's cache
    # when precompute shipped one, else fitted here) and labels the candidate pool.
    at.switch_page("pages/arithmetic.py")
    at.run()
    button = next(b for b in at.button if b.label.startswith("Auto-fill"))
    start = time.perf_counter()
    button.click().run()
    result["arithmetic_autofill_first_click_s"] = time.perf_counter() - start
    assert not at.exception and at.success, (at.exception, [e.value for e in at.error])
    return result


def cold_start(checkpoint_path: Path) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "LATENT_LAB_CHECKPOINTS": str(checkpoint_path.parent.resolve())}
    start = time.perf_counter()
    server = start_streamlit(port, env=env)
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = launch_chromium(p, profile)
            browser_ready = time.perf_counter() - start
            page = browser.new_page()
            deadline = time.monotonic() + 120
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 3", timeout=120_000)
            total = time.perf_counter() - start
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"to_first_page_with_images_s": total, "of_which_browser_launch_s": browser_ready}


IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && !document.querySelector('[data-testid=\"stSkeleton\"]')"
# Installed in the page: on each trigger event (keydown or drop, capture phase) remember the time and the
# watched image's src; a MutationObserver notes when that src changes (Streamlit swaps the <img> or its src),
# and then when that <img> has loaded (fetched and decoded: what the user sees on the next frame).
WATCH_JS = """
([event, caption]) => {
  const find = () => [...document.querySelectorAll('[data-testid="stImage"]')].find(e => e.innerText.includes(caption));
  const img = () => { const el = find(); return el && el.querySelector('img'); };
  const fresh = () => ({ t0: performance.now(), old: (img() || {}).src || null, ms: null, loaded_ms: null });
  window.__latency = { t0: null, old: null, ms: null, loaded_ms: null };
  document.addEventListener(event, () => { window.__latency = fresh(); }, true);
  const check = () => {
    const s = window.__latency, el = img();
    if (s.t0 === null || s.ms !== null || !el || !el.src || el.src === s.old) return;
    s.ms = performance.now() - s.t0;
    const loaded = () => { if (s.loaded_ms === null) s.loaded_ms = performance.now() - s.t0; };
    if (el.complete && el.naturalWidth) loaded(); else el.addEventListener('load', loaded, { once: true });
  };
  new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['src'] });
}
"""


def _wait_idle(page) -> None:
    page.wait_for_timeout(250)
    page.wait_for_function(IDLE, timeout=120_000)


def _measured(page, loaded: list | None = None) -> float:
    """Seconds from the trigger to the new src; the time to the new image's load event is appended to `loaded`."""
    page.wait_for_function("() => window.__latency.loaded_ms !== null", timeout=60_000)
    times = page.evaluate("() => window.__latency")
    if loaded is not None:
        loaded.append(times["loaded_ms"] / 1000)
    return times["ms"] / 1000


def _board_drops(page, thumbs, bins, repeats: int, drops: list) -> None:
    """Drag palette samples into bins, one at a time; each drop's time to the new 3x3 grid appended to `drops`."""
    for k in range(repeats + 1):
        source, target = thumbs.nth(3 + k).bounding_box(), bins.nth(k % 3).bounding_box()
        page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=8)
        page.mouse.up()
        drops.append(_measured(page))
        _wait_idle(page)


def browser_actions(checkpoint_path: Path, repeats: int, server_threads: int | None = None) -> dict:
    """The two browser-measured rows (see the module doc) on a fresh server for `checkpoint_path`."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "LATENT_LAB_CHECKPOINTS": str(checkpoint_path.parent.resolve())}
    if server_threads:
        env["OMP_NUM_THREADS"] = str(server_threads)  # torch's intra-op threads in the server process
    log = Path(tempfile.mkdtemp()) / "server.log"
    with open(log, "wb") as out:
        server = start_streamlit(port, env=env, stdout=out)
    try:
        base = wait_for_streamlit(port, server, timeout_s=120, log=log)
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = launch_chromium(p, profile, viewport={"width": 1400, "height": 1000})
            page = browser.new_page()
            page.goto(f"{base}/?ckpt={checkpoint_path.name}", timeout=120_000)
            page.get_by_text("G(z + offsets)").first.wait_for(timeout=120_000)
            _wait_idle(page)
            page.evaluate(WATCH_JS, ["keydown", "G(z + offsets)"])
            thumb = page.locator('[data-testid="stSlider"]').filter(has_text="sefa:0").get_by_role("slider")
            slider, slider_loaded = [], []
            for _ in range(repeats + 1):  # the first move warms the caches of this session
                thumb.focus()
                page.keyboard.press("ArrowRight")
                slider.append(_measured(page, slider_loaded))
                _wait_idle(page)
            result = {
                "browser_slider_move_to_new_image": percentiles(slider[1:]),
                "browser_slider_move_to_image_loaded": percentiles(slider_loaded[1:]),
            }
            print("browser slider", result, flush=True)  # kept even if the board part below fails

            link = "bins=smiling%20woman:1:0;neutral%20woman:-1:1;neutral%20man:1:2"
            page.goto(f"{base}/arithmetic?ckpt={checkpoint_path.name}&{link}", timeout=120_000)
            page.get_by_text("G(Y) in the centre").first.wait_for(timeout=120_000)
            _wait_idle(page)
            page.evaluate(WATCH_JS, ["drop", "G(Y) in the centre"])
            thumbs, bins = page.locator(".palette .thumb"), page.locator(".bin")
            drops = []
            try:
                _board_drops(page, thumbs, bins, repeats, drops)
                result["browser_board_drop_to_new_result"] = percentiles(drops[1:])
            except PlaywrightTimeout as exc:  # reported as such, never as a figure
                result["browser_board_drop_to_new_result"] = {"error": f"no new result after drop {len(drops) + 1}: {exc.message[:200]}"}
            browser.close()
    finally:
        os.kill(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, signal.SIGKILL)
    result["server_torch_threads"] = server_threads or "default"
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "synthetic-faces-64"))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json")
    p.add_argument("--skip-cold-start", action="store_true")
    p.add_argument("--only", choices=["browser"], help="only the browser-measured rows")
    p.add_argument("--server-threads", type=int, help="OMP_NUM_THREADS for the browser rows' server (default: torch's)")
    args = p.parse_args(argv)
    path = Path(args.checkpoint)
    results = {"checkpoint": str(path), "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}
    results.update(browser_actions(path, args.repeats, args.server_threads))
    print("browser", {k: v for k, v in results.items() if k.startswith("browser")}, flush=True)
    if args.only != "browser":
        if not args.skip_cold_start:
            results["cold_start"] = cold_start(path)
            print("cold start", results["cold_start"], flush=True)
        results.update(core_actions(path, args.repeats))
        results.update(apptest_actions(path, args.repeats))
    results["load_average_after"] = os.getloadavg()
    for key, value in results.items():
        print(f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
