"""Soak test of the Streamlit explorer: N browser-less sessions moving widgets on every page for a fixed time.

    python -m bench.streamlit_soak [--sessions 10] [--seconds 300] [--seed 0] [--json out.json]

Each session is a Streamlit AppTest of `app.py` (its own session state, the server's script runner,
the real pages). The sessions are interleaved in one thread, one rerun at a time in turn: AppTest is
not thread-safe (each run creates and tears down Streamlit's one global Runtime, so concurrent
AppTests break each other), and on 2 cores a server runs about two reruns at once anyway. They share
what a server's sessions share: the st.cache_resource models and st.cache_data results. A session's
turn: pick a page at random, switch to it, then move one to three of its widgets to random values
(sliders, seeds, the board's bins, the walk mode, the feature map's colouring), rerunning after
each change. Every rerun is timed.

Reported: reruns done, errors (exceptions raised by a rerun, exceptions the page rendered, and
st.error messages, by kind), rerun time p50/p95/max, and this process's RSS (all sessions, models
and caches) after every session's first run, every 30 s, and at the end. The checkpoint is the
app's default (checkpoints/synthetic-faces-64) unless LATENT_LAB_CHECKPOINTS points elsewhere.
RSS comes from /proc, so it needs Linux.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PAGES = {
    "generate": "pages/generate.py",
    "arithmetic": "pages/arithmetic.py",
    "walks": "pages/walks.py",
    "feature_map": "pages/feature_map.py",
    "model": "pages/model.py",
}
THUMBS = REPO / "static" / "thumbs"


def rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _widget(at, kind: str, key: str):
    """The widget with this key on the current page, or None (a page may not draw it on this run)."""
    try:
        return getattr(at, kind)(key=key)
    except (KeyError, IndexError):
        return None


def _actions(page: str, rng: random.Random):
    """Widget changes for a page: callables at -> bool (False when the widget was not there)."""

    def slider(key, low, high, step=None):
        def act(at):
            w = _widget(at, "slider", key)
            if w is None:
                return False
            value = rng.uniform(low, high) if step is None else low + step * rng.randint(0, int(round((high - low) / step)))
            w.set_value(round(value, 1) if step is None else value)
            return True

        return act

    def number(key, low, high):
        def act(at):
            w = _widget(at, "number_input", key)
            if w is None:
                return False
            w.set_value(rng.randint(low, high))
            return True

        return act

    def radio(key, options):
        def act(at):
            w = _widget(at, "radio", key)
            if w is None:
                return False
            w.set_value(rng.choice(options))
            return True

        return act

    def board(at):
        seeds = [rng.sample(range(0, 24), rng.randint(1, 3)) for _ in range(3)]
        at.session_state["arith_board"] = {"assignment": seeds}
        return True

    def colour(at):
        w = _widget(at, "selectbox", "fmap_colour")
        if w is None:
            return False
        w.set_value(rng.choice(w.options))
        return True

    return {
        "generate": [slider("gen_off::sefa:0", -3, 3), slider("gen_off::sefa:1", -3, 3), number("gen_seed", 0, 10**6),
                     slider("gen_count", 1, 64, step=1)],
        "arithmetic": [board, slider("arith_jitter", 0.0, 1.0, step=0.05), number("arith_noise", 0, 10**6)],
        "walks": [slider("walk_steps", 2, 16, step=1), radio("walk_kind", ["Through seeds", "Along a direction"]),
                  slider("walk_fps", 2, 30, step=1)],
        "feature_map": [colour, radio("fmap_show", ["both", "real", "generated"])],
        "model": [slider("model_sample", 0, 1, step=1)],
    }[page]


def soak(sessions: int = 10, seconds: float = 300, seed: int = 0, log=None) -> dict:
    """Run the soak in this process and return the measurements (see the module docstring)."""
    import logging

    # AppTest outside a server logs "missing ScriptRunContext" warnings by the hundred: noise here.
    logging.disable(logging.WARNING)
    try:
        return _soak(sessions, seconds, seed, log)
    finally:
        logging.disable(logging.NOTSET)


def _soak(sessions: int, seconds: float, seed: int, log) -> dict:
    from streamlit.testing.v1 import AppTest

    app_path = str(REPO / "app.py")
    thumbs_before = set(THUMBS.iterdir()) if THUMBS.is_dir() else set()
    times: list[float] = []
    errors: Counter = Counter()
    pages_visited: Counter = Counter()

    def record_run(at, label: str) -> None:
        t0 = time.perf_counter()
        try:
            at.run()
        except Exception as exc:  # noqa: BLE001 - a failed rerun is a data point
            errors[f"{label}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
            return
        times.append(time.perf_counter() - t0)
        for e in at.exception:
            errors[f"{label}: exception: {str(e.value)[:120]}"] += 1
        for e in at.error:
            errors[f"{label}: st.error: {str(e.value)[:120]}"] += 1

    def turn(at, rng: random.Random, stop_at: float) -> None:
        page = rng.choice(list(PAGES))
        at.switch_page(PAGES[page])
        record_run(at, page)
        pages_visited[page] += 1
        actions = _actions(page, rng)
        for action in rng.sample(actions, k=min(len(actions), rng.randint(1, 3))):
            if time.monotonic() >= stop_at:
                break
            try:
                changed = action(at)
            except Exception as exc:  # noqa: BLE001 - e.g. a value the widget refuses: our bug, counted
                errors[f"{page}: widget: {type(exc).__name__}: {str(exc)[:120]}"] += 1
                continue
            if changed:
                record_run(at, page)

    rngs = [random.Random(seed * 1000 + i) for i in range(sessions)]
    apps = [AppTest.from_file(app_path, default_timeout=300) for _ in range(sessions)]
    for at in apps:
        record_run(at, "first run")
    first_runs = len(times)  # every session has done its first run: models loaded, caches warm
    gc.collect()
    rss_start = rss_mib()
    timeline = [(0.0, rss_start)]
    t0 = time.monotonic()
    stop_at = t0 + seconds
    while time.monotonic() < stop_at:
        for at, rng in zip(apps, rngs):
            if time.monotonic() >= stop_at:
                break
            turn(at, rng, stop_at)
            elapsed = time.monotonic() - t0
            if elapsed - timeline[-1][0] >= 30:
                timeline.append((round(elapsed, 1), rss_mib()))
                if log:
                    log(f"{elapsed:6.0f} s  reruns {len(times) - first_runs:6d}  errors {sum(errors.values())}  RSS {timeline[-1][1]:.0f} MiB")
    window = time.monotonic() - t0
    gc.collect()
    rss_end = rss_mib()
    timeline.append((round(window, 1), rss_end))
    for folder in (set(THUMBS.iterdir()) if THUMBS.is_dir() else set()) - thumbs_before:  # hover previews it wrote
        shutil.rmtree(folder, ignore_errors=True)

    ms = np.array(times[first_runs:]) * 1000
    pct = (lambda q: round(float(np.percentile(ms, q)), 1) if len(ms) else None)
    return {
        "sessions": sessions,
        "seconds_requested": seconds,
        "window_s": round(window, 1),
        "reruns": len(ms),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "pages_visited": dict(pages_visited),
        "rerun_ms": {"p50": pct(50), "p95": pct(95), "max": round(float(ms.max()), 1) if len(ms) else None},
        "rss_mib": {"start": rss_start, "end": rss_end, "peak_sampled": max(v for _, v in timeline if v is not None)},
        "rss_timeline": timeline,
        "checkpoints": os.environ.get("LATENT_LAB_CHECKPOINTS") or str(REPO / "checkpoints"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = soak(args.sessions, args.seconds, args.seed, log=lambda line: print(line, flush=True))
    rss, ms = result["rss_mib"], result["rerun_ms"]
    print(f"sessions {result['sessions']}, window {result['window_s']} s, pages {result['pages_visited']}")
    print(f"reruns {result['reruns']}, errors {result['errors']}, rerun p50/p95/max {ms['p50']} / {ms['p95']} / {ms['max']} ms")
    print(f"RSS start {rss['start']:.0f} MiB -> end {rss['end']:.0f} MiB (peak sampled {rss['peak_sampled']:.0f}); timeline {result['rss_timeline']}")
    for kind, n in result["error_kinds"].items():
        print(f"  error x{n}: {kind}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["errors"] == 0 and result["reruns"] > 0 else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # The page's daemon threads (hover-preview writers) can abort the interpreter's normal shutdown
    # ("terminate called without an active exception"); the results are written, so leave at once.
    os._exit(code)
