"""Issue 12, disk full: a failed snapshot write (safetensors, torch.save, JSON) keeps the previous snapshot,
ends the run with exit 4 and a message naming it, and --resume finishes the run (listed in test_reliability.py)."""
from __future__ import annotations

import errno
import math
import os
import types
from pathlib import Path

import pytest
import torch

import explorer.checkpoint as ckpt
import explorer.fsio as fsio
from explorer.checkpoint import load_checkpoint
from explorer.rundir import LATEST_FILE, latest_snapshot, read_history
from tests.support.runs import train_tiny as _train
from training.run import main


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fail_from_call(n: int, real, failure):
    """`real`, except that its n-th and later calls raise `failure` (a disk that has just filled up)."""
    calls = [0]

    def failing(*args, **kwargs):
        calls[0] += 1
        if calls[0] >= n:
            raise failure
        return real(*args, **kwargs)

    return failing


@pytest.mark.parametrize("where", ["weights", "safetensors-error", "torch-save", "pointer"])
def test_disk_full_during_training_stops_cleanly_and_resume_finishes(tmp_path, monkeypatch, capsys, where):
    """ENOSPC on the 3rd snapshot, as each writer reports it: an OSError from a weight file or from moving
    latest.json, safetensors' SafetensorError, torch.save's RuntimeError. Exit 4, previous snapshot intact."""
    from safetensors import SafetensorError

    out = tmp_path / "run"
    if where in ("weights", "safetensors-error"):  # 2 weight files per snapshot: the 5th call is the 3rd snapshot's
        failure = OSError(errno.ENOSPC, "No space left on device") if where == "weights" else SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)")
        monkeypatch.setattr(ckpt, "save_file", _fail_from_call(5, ckpt.save_file, failure))
    elif where == "torch-save":  # what torch.save raises when the disk fills mid-file
        failure = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        monkeypatch.setattr(torch, "save", _fail_from_call(3, torch.save, failure))
        monkeypatch.setattr(os, "statvfs", lambda path: types.SimpleNamespace(f_bavail=0, f_frsize=4096))  # a full disk
    else:
        real, calls = fsio.atomic_write_bytes, [0]

        def failing(path, data):
            if Path(path).name == LATEST_FILE:
                calls[0] += 1
                if calls[0] > 2:
                    return _disk_full()
            return real(path, data)

        monkeypatch.setattr(fsio, "atomic_write_bytes", failing)
    assert _train(out, "--max-steps", "8", "--checkpoint-every", "2") == 4
    err = capsys.readouterr().err
    assert "No space left on device" in err and "previous checkpoint" in err and "step-00000004 is intact" in err, err
    assert "continue from the last checkpoint" in err and "--resume" in err
    assert latest_snapshot(out).name == "step-00000004" and load_checkpoint(out).step == 4
    assert not list((out / "snapshots").glob(".tmp-*")), "no half-written snapshot is left"

    monkeypatch.undo()  # space freed
    assert main(["--out", str(out), "--resume", "--no-progress", "--no-tensorboard"]) == 0
    assert load_checkpoint(out).step == 8
    assert [h["step"] for h in read_history(out)] == list(range(1, 9))
    assert all(math.isfinite(h["loss_d"]) for h in read_history(out))


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 2 MB tmpfs (needs root and mount rights; skipped elsewhere), unmounted afterwards."""
    import subprocess

    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill_leaving(folder: Path, free_bytes: int) -> Path:
    """A filler file that leaves about `free_bytes` free on folder's file system."""
    usage = os.statvfs(folder)
    filler = folder / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, usage.f_bavail * usage.f_frsize - free_bytes))
    return filler


def test_a_real_full_tmpfs_stops_with_exit_4_at_each_writer(small_tmpfs, capsys):
    """Fill a real tmpfs so the next snapshot fails inside a weight file (safetensors) or inside resume.pt
    (torch.save): exit 4, the message names the intact snapshot, nothing half-written stays; after space
    is freed, --resume finishes."""
    out = small_tmpfs / "run"
    assert _train(out, "--max-steps", "2", "--checkpoint-every", "2") == 0
    snapshot = latest_snapshot(out)
    pages = {f.name: -(-f.stat().st_size // 4096) for f in snapshot.iterdir()}
    # free space, in 4 KB pages, at which the step-4 snapshot fails in G's weights / in resume.pt; 4 pages of
    # slack for what the resumed run rewrites first (config.json, history.jsonl) and meta.json
    cases = {
        "generator.safetensors": 4 + pages["generator.safetensors"] // 2,
        "resume.pt": 4 + pages["generator.safetensors"] + pages["discriminator.safetensors"] + pages["resume.pt"] // 2,
    }
    for writer, free_pages in cases.items():
        filler = _fill_leaving(small_tmpfs, free_pages * 4096)
        code = main(["--out", str(out), "--resume", "--max-steps", "8", "--checkpoint-every", "2", "--no-progress", "--no-tensorboard"])
        err = capsys.readouterr().err
        assert code == 4, err
        assert f"No space left on device while writing {writer}" in err, err
        assert "step-00000002 is intact" in err and "continue from the last checkpoint" in err, err
        assert "Traceback" not in err
        assert latest_snapshot(out) == snapshot and load_checkpoint(out).step == 2
        assert not list((out / "snapshots").glob(".tmp-*")), "no half-written snapshot is left"
        filler.unlink()
    assert main(["--out", str(out), "--resume", "--max-steps", "8", "--checkpoint-every", "2", "--no-progress", "--no-tensorboard"]) == 0
    assert load_checkpoint(out).step == 8 and [h["step"] for h in read_history(out)] == list(range(1, 9))
