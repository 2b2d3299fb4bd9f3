"""Issue 12: the CLIs never write where they should not, refuse crafted inputs with exit 2, and clean up after kills.

Every case runs `training.run.main` / `training.export.main` in-process on tiny runs and asserts on
the exit code, the message and the files on disk (before and after).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import training.run as run_cli
from explorer import rundir
from explorer.checkpoint import load_checkpoint
from explorer.rundir import MARKER_FILE, latest_snapshot, read_marker
from training.export import main as export_main
from training.run import main

TINY = ["--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "8", "--no-progress",
        "--no-tensorboard", "--log-every", "1", "--dataset", "synthetic-faces:64"]
RESUME = ["--resume", "--no-progress", "--no-tensorboard"]


def _snapshot_of_folder(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes): compared before and after a refused command."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"my": "own experiment"}')
    (folder / "history.jsonl").write_text('{"step": 1, "note": "mine"}\n')
    (folder / "curves.png").write_bytes(b"\x89PNG my own figure")
    (folder / "thesis.txt").write_text("three years of work")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


def _dead_pid() -> int:
    """The id of a process that has exited (so a temp file named after it is stale)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A 2-step run (a snapshot at step 2, with resume state); tests work on copies."""
    out = tmp_path_factory.mktemp("guards") / "run"
    assert main(["--out", str(out), *TINY, "--max-steps", "2", "--checkpoint-every", "2"]) == 0
    return out


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


# ----------------------------------------------------------------------------------------------- --out


def test_out_with_user_files_is_refused_and_left_untouched(tmp_path, capsys):
    folder = _user_folder(tmp_path / "mine")
    before = _snapshot_of_folder(folder)
    for extra in ([], ["--resume"]):
        assert main(["--out", str(folder), *TINY, "--max-steps", "1", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert "not a latent-lab run" in err and "config.json, curves.png, history.jsonl" in err and "nothing was written" in err, err
        assert _snapshot_of_folder(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "curves.png", "history.jsonl", "sub", "thesis.txt"]


def test_out_naming_a_file_fails_before_the_data_loads(tmp_path, capsys, monkeypatch):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    monkeypatch.setattr(run_cli, "load_dataset", lambda *a, **k: pytest.fail("the dataset was loaded before --out was checked"))
    assert main(["--out", str(target), *TINY, "--max-steps", "1"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"


def test_the_marker_is_the_first_thing_written_into_a_new_or_empty_folder(tmp_path, monkeypatch):
    seen = []
    claim = rundir.claim_run_dir

    def recording_claim(run_dir, adopt=False):
        state = rundir.folder_state(run_dir)
        claim(run_dir, adopt)
        seen.append((state, sorted(p.name for p in Path(run_dir).iterdir())))

    monkeypatch.setattr(rundir, "claim_run_dir", recording_claim)
    (tmp_path / "empty").mkdir()
    for name in ("new", "empty"):
        assert main(["--out", str(tmp_path / name), *TINY, "--max-steps", "1"]) == 0
        assert read_marker(tmp_path / name)["format"] == "latent-lab-run"
    assert seen == [("missing", [MARKER_FILE]), ("empty", [MARKER_FILE])]


def test_a_run_from_before_markers_resumes_and_is_adopted(run_copy, capsys):
    (run_copy / MARKER_FILE).unlink()  # as written by earlier versions: latest.json, no marker
    assert main(["--out", str(run_copy), *TINY, "--max-steps", "4"]) == 2
    assert "already holds a run: pass --resume" in capsys.readouterr().err
    assert main(["--out", str(run_copy), *RESUME, "--max-steps", "4"]) == 0
    assert read_marker(run_copy)["adopted"] is True and load_checkpoint(run_copy).step == 4


# ----------------------------------------------------------------------------------------------- export


def test_export_refuses_a_folder_it_did_not_write_and_deletes_nothing(tiny_run, tmp_path, capsys):
    mine = _user_folder(tmp_path / "home")
    before = _snapshot_of_folder(mine)
    assert export_main([str(tiny_run), str(mine)]) == 2
    assert "is not an exported checkpoint" in capsys.readouterr().err
    assert _snapshot_of_folder(mine) == before

    shipped = tmp_path / "shipped"
    assert export_main([str(tiny_run), str(shipped)]) == 0
    assert export_main([str(tiny_run), str(shipped), "--dtype", "fp32"]) == 0  # an earlier export is replaced
    assert load_checkpoint(shipped).meta["exported_from"]["dtype"] == "torch.float32"
    (shipped / "thesis.txt").write_text("mine")  # ...but not when it also holds someone's file
    assert export_main([str(tiny_run), str(shipped)]) == 2
    assert "thesis.txt, which latent-lab did not write" in capsys.readouterr().err
    assert (shipped / "thesis.txt").read_text() == "mine" and load_checkpoint(shipped).meta["exported_from"]["dtype"] == "torch.float32"

    run_before = _snapshot_of_folder(tiny_run)
    for target in (tiny_run, tiny_run / "snapshots", tiny_run.parent):  # the run itself, inside it, a folder above it
        assert export_main([str(tiny_run), str(target)]) == 2, target
        assert "overlap" in capsys.readouterr().err
    assert _snapshot_of_folder(tiny_run) == run_before


# ----------------------------------------------------------------------------------------------- numbers and sizes


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "1e21"], "--batch-size must be between 2 and 65536, got 1.00e21 (22 digits)"),
        (["--seed", "1e23"], "--seed must be between 0 and 9.22e18 (19 digits), got 1.00e23 (24 digits)"),
        (["--seed", "7" * 300], "got 7.78e299 (300 digits)"),
        (["--max-steps", "1.5"], "'1.5' is not a whole number"),
        (["--g-width", "100000"], "this model would need at least"),
        (["--lr", "nan"], "--lr must be a finite number, got NaN"),
    ],
)
def test_huge_and_malformed_numbers_exit_2_quickly_with_short_messages(tmp_path, capsys, args, message):
    start = time.perf_counter()
    assert main(["--out", str(tmp_path / "x"), *TINY, "--max-steps", "1", *args, "--dry-run"]) == 2
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert message in err, err
    assert max(len(word) for word in err.split()) < 60, "a number was echoed in full"
    assert seconds < 10, f"refusing took {seconds:.1f} s"
    assert not (tmp_path / "x").exists()


def test_model_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys):
    """--g-width 100000: ~10^13 parameters; the estimate runs on the meta device, nothing is allocated."""
    assert main(["--out", str(tmp_path / "x"), "--g-width", "100000", "--d-width", "100000", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "TB to train" in err and "use a smaller --g-width" in err, err


def test_dataset_smaller_than_one_batch_exits_2(tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    Image.new("RGB", (40, 40), (1, 2, 3)).save(folder / "only.png")
    assert main(["--out", str(tmp_path / "x"), *TINY, "--dataset", f"folder:{folder}", "--batch-size", "128"]) == 2
    assert "has 1 usable image(s), fewer than one batch of 128" in capsys.readouterr().err
    assert not (tmp_path / "x").exists(), "nothing is written for a dataset that cannot train"


# ----------------------------------------------------------------------------------------------- tampered runs


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"batch_size": "abc"}', "--batch-size must be a whole number, got 'abc'"),
        ('{"lr": NaN}', "--lr must be a finite number, got NaN"),
        ('{"seed": 1e400}', "--seed must be a whole number, got Infinity"),
        ("[1, 2]", "must hold a JSON object of training options"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ('{"image_size": 64.0}', "--image-size must be one of 32, 64, 128, got 64.0"),
        ("\xff\xfe garbage", "not UTF-8"),
    ],
)
def test_tampered_config_json_on_resume_is_a_clear_exit_2(run_copy, capsys, content, message):
    (run_copy / "config.json").write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    assert main(["--out", str(run_copy), *RESUME]) == 2
    assert message in capsys.readouterr().err
    assert load_checkpoint(run_copy).step == 2


def test_a_fifo_for_config_json_is_refused_without_blocking(run_copy, capsys):
    (run_copy / "config.json").unlink()
    os.mkfifo(run_copy / "config.json")
    result = {}
    worker = threading.Thread(target=lambda: result.update(code=main(["--out", str(run_copy), *RESUME])), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert result.get("code") == 2, "reading config.json blocked on a FIFO"
    assert "is a FIFO" in capsys.readouterr().err


def _tamper_resume(run: Path, edit) -> None:
    path = latest_snapshot(run) / "resume.pt"
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(step=10**6), "its step 1000000 is not the snapshot's step 2"),
        (lambda s: s.update(step="2"), "its step '2' is not the snapshot's step 2"),
        (lambda s: s.pop("opt_d"), "lacks the step, optimizer or RNG state"),
        (lambda s: s["opt_g"]["state"][0].update(exp_avg=torch.zeros(3)), "exp_avg does not have its parameter's shape"),
        (lambda s: s["opt_g"]["param_groups"][0].update(params=[0]), "does not fit"),
        (lambda s: s.update(torch_rng=torch.zeros(7, dtype=torch.uint8)), "does not fit this run"),
        (lambda s: s.update(torch_rng=torch.zeros(7)), "RNG state is not a byte tensor"),
    ],
)
def test_tampered_resume_state_is_a_clear_exit_2(run_copy, capsys, edit, message):
    _tamper_resume(run_copy, edit)
    assert main(["--out", str(run_copy), *RESUME, "--max-steps", "4"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert load_checkpoint(run_copy).step == 2  # nothing trained, nothing overwritten


# ----------------------------------------------------------------------------------------------- killed writers


def test_temp_files_of_killed_writers_are_removed_on_resume(run_copy, request):
    dead = _dead_pid()
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])  # a live writer
    request.addfinalizer(lambda: (writer.kill(), writer.wait()))
    snapshots, samples = run_copy / "snapshots", run_copy / "samples"
    samples.mkdir(exist_ok=True)
    stale = [run_copy / f".latest.json.tmp-{dead}", run_copy / f".config.json.tmp-{dead}", samples / f".epoch_001.png.tmp-{dead}"]
    for path in stale:
        path.write_bytes(b"half")
    (snapshots / f".tmp-step-00000003-{dead}").mkdir()
    (snapshots / f".tmp-step-00000003-{dead}" / "generator.safetensors").write_bytes(b"half")
    live = run_copy / f".latest.json.tmp-{writer.pid}"  # a live writer's: not touched
    live.write_bytes(b"busy")
    assert main(["--out", str(run_copy), *RESUME, "--max-steps", "4"]) == 0
    assert not any(p.exists() for p in stale) and not (snapshots / f".tmp-step-00000003-{dead}").exists()
    assert live.read_bytes() == b"busy"


def test_an_aside_copy_of_a_killed_exchange_is_moved_back(run_copy):
    """replace_dir's fallback killed between its renames: the snapshot exists only as `.old-NAME-PID`."""
    snapshot = latest_snapshot(run_copy)
    aside = snapshot.with_name(f".old-{snapshot.name}-{_dead_pid()}")
    snapshot.rename(aside)
    assert load_checkpoint(run_copy).path == aside  # readers use it as it is
    assert main(["--out", str(run_copy), *RESUME, "--max-steps", "4"]) == 0  # the next writer moves it back first
    assert not aside.exists() and load_checkpoint(run_copy).step == 4


# ----------------------------------------------------------------------------------------------- run summary


def test_run_summary_announces_class_labels_from_subfolders(tmp_path, capsys):
    from tests import fakedata

    folder = fakedata.make_image_folder(tmp_path / "pets", n_per_class=4)
    assert main(["--out", str(tmp_path / "run"), *TINY, "--dataset", f"folder:{folder}", "--max-steps", "1"]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith(f"dataset folder:{folder}: 8 images (3, 32, 32)")
    assert first_line.endswith("; 2 classes from subfolders: class_a, class_b")
