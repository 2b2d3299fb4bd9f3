"""Load test of the Gradio demo: N concurrent clients calling /generate for a fixed time.

    python -m bench.gradio_load [--checkpoint PATH] [--clients 20] [--seconds 60] [--concurrency 2] [--json out.json]

The demo runs in its own process (`python gradio_app.py`, as deployed), so its resident
memory is measured alone, not mixed with the clients'. Each client is a thread that loops over
Gradio's HTTP API (POST /gradio_api/call/generate, then read the event stream until the result),
the same two requests gradio_client makes, without gradio_client's per-call thread and polling
overhead eating the CPU the server is being measured on. Every call uses a fresh random seed.

Reported: completed calls, errors (by message), throughput (calls/s over the timed window),
latency p50/p95/p99/max (submit to result, so queueing time included), and the server's RSS
after start-up (model loaded, one warm-up call), at the end, and the peak sampled every 0.5 s.
RSS comes from /proc, so the RSS columns need Linux.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from tests.support.local_server import free_port

REPO = Path(__file__).resolve().parent.parent
MAX_SEED = 2**32 - 1  # explorer.latent.MAX_SEED, without importing torch into the client process


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def call_generate(client: httpx.Client, url: str, seed: int, n_sliders: int) -> None:
    """One /generate call through the HTTP API; raises with the server's message on an error event."""
    response = client.post(f"{url}gradio_api/call/generate", json={"data": [seed] + [0] * n_sliders})
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event = None
    with client.stream("GET", f"{url}gradio_api/call/generate/{event_id}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"server error: {line[6:200]}")
                return
    raise RuntimeError(f"event stream ended without a result (last event {event!r})")


def slider_count(url: str) -> int:
    """Number of /generate inputs after the seed, from the demo's API description."""
    info = httpx.get(f"{url}gradio_api/info", timeout=30).json()
    return len(info["named_endpoints"]["/generate"]["parameters"]) - 1


def start_server(checkpoint: str, port: int, concurrency: int, log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "gradio_app.py", "--checkpoint", checkpoint, "--port", str(port),
           "--host", "127.0.0.1", "--concurrency", str(concurrency)]
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the demo exited with code {proc.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the demo did not answer within {timeout:.0f} s; log: {log_path}")


def run(args: argparse.Namespace) -> dict:
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}/"
    out_dir = REPO / "bench" / "output"
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "gradio_load_server.log"
    t0 = time.monotonic()
    proc = start_server(args.checkpoint, port, args.concurrency, log_path)
    try:
        wait_until_up(url, proc, log_path)
        startup_s = time.monotonic() - t0
        n_sliders = slider_count(url)
        with httpx.Client(timeout=args.timeout) as warm:
            call_generate(warm, url, 0, n_sliders)  # first call pays lazy initialisation: not part of the window
        rss_start = rss_mib(proc.pid)

        latencies: list[float] = []
        errors: Counter = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        peak = [rss_start or 0.0]
        timeline = [(0.0, rss_start)]  # (seconds into the window, RSS MiB) every 30 s: does it plateau?
        done = threading.Event()

        def client_loop(index: int) -> None:
            rng = random.Random(index)
            with httpx.Client(timeout=args.timeout) as client:
                while time.monotonic() < stop_at:
                    start = time.monotonic()
                    try:
                        call_generate(client, url, rng.randint(0, MAX_SEED), n_sliders)
                    except Exception as exc:  # noqa: BLE001 (any failure is a data point: counted, reported, load goes on)
                        with lock:
                            errors[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1
                        continue
                    with lock:
                        latencies.append(time.monotonic() - start)

        def sample_rss() -> None:
            while not done.wait(0.5):
                value = rss_mib(proc.pid)
                if value is not None:
                    peak[0] = max(peak[0], value)
                    elapsed = time.monotonic() - window_start
                    if elapsed - timeline[-1][0] >= 30:
                        timeline.append((round(elapsed, 1), value))

        window_start = time.monotonic()
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        window = time.monotonic() - window_start  # includes the last calls started before stop_at
        done.set()
        sampler.join()
        rss_end = rss_mib(proc.pid)
        if rss_end is not None:
            peak[0] = max(peak[0], rss_end)
        timeline.append((round(window, 1), rss_end))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

    lat = np.array(latencies) * 1000
    pct = (lambda q: float(np.percentile(lat, q)) if len(lat) else None)
    return {
        "checkpoint": args.checkpoint,
        "clients": args.clients,
        "server_concurrency": args.concurrency,
        "seconds_requested": args.seconds,
        "window_s": round(window, 2),
        "startup_s": round(startup_s, 2),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "throughput_per_s": round(len(latencies) / window, 2) if window > 0 else None,
        "latency_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": float(lat.max()) if len(lat) else None},
        "server_rss_mib": {"start": rss_start, "end": rss_end, "peak": peak[0] or None},
        "server_rss_timeline": timeline,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m": os.getloadavg()[0]},
    }


def table(result: dict) -> str:
    fmt = lambda v, unit="": "n/a" if v is None else f"{v:,.1f}{unit}"
    lat, rss = result["latency_ms"], result["server_rss_mib"]
    rows = [
        ("clients / server concurrency", f"{result['clients']} / {result['server_concurrency']}"),
        ("window", fmt(result["window_s"], " s")),
        ("calls ok / errors", f"{result['ok']} / {result['errors']}"),
        ("throughput", fmt(result["throughput_per_s"], " calls/s")),
        ("latency p50 / p95 / p99", f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['p99'])} ms"),
        ("latency max", fmt(lat["max"], " ms")),
        ("server RSS start / end / peak", f"{fmt(rss['start'])} / {fmt(rss['end'])} / {fmt(rss['peak'])} MiB"),
        ("server start-up", fmt(result["startup_s"], " s")),
        ("load average (1 min, at the end)", f"{result['machine']['load_avg_1m']:.2f} on {result['machine']['cpus']} CPUs"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines.append("server RSS every 30 s: " + ", ".join(f"{t:.0f} s {v:.0f}" for t, v in result["server_rss_timeline"] if v is not None))
    lines += [f"  error x{n}: {kind}" for kind, n in result["error_kinds"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "synthetic-faces-64"))
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=2, help="the demo's --concurrency (requests run at once)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--timeout", type=float, default=120, help="per-call timeout, seconds")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["ok"] == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
