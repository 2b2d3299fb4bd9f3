"""The explorer on a loopback port and Debian's chromium: for the browser tests, and reused by benchmarks and screenshots.

Never downloads a browser: pip's playwright drives the system chromium with the flags that keep it
off the network (the machines here have no internet and refuse background connections).
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(port: int, env: dict | None = None, stdout=subprocess.DEVNULL) -> subprocess.Popen:
    """`streamlit run app.py` on 127.0.0.1:port (the Popen's pid is the server's own, for stopping it by PID)."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.headless", "true",
            "--server.address", "127.0.0.1",
            "--server.port", str(port),
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",  # nothing is edited while it runs; watching costs CPU
        ],
        cwd=REPO, env=env, stdout=stdout, stderr=subprocess.STDOUT,
    )


def wait_for_streamlit(port: int, process: subprocess.Popen, timeout_s: float = 60, log: Path | None = None) -> str:
    """The server's base URL once /_stcore/health answers "ok"; RuntimeError (with the log's tail) if it died or timed out."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return base
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"streamlit did not start (exit code {process.poll()}):\n{tail}")
        time.sleep(0.3)


def launch_chromium(playwright, user_data_dir: str | Path, **options):
    """A persistent context of Debian's chromium on a fresh profile directory (never the user's)."""
    return playwright.chromium.launch_persistent_context(
        user_data_dir=str(user_data_dir), executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS, **options
    )
