"""Issues 7 and 12, reliability and security: faults, bad input and hostile files. One place that lists each guarantee.

Where a guarantee was already proved elsewhere, that test is listed here and not repeated.

Nothing lost on a crash (SIGKILL at random moments and inside checkpoint writes; --resume continues
from the exact step, optimizer and RNG state, no duplicated or skipped steps)
    test_sigkill_at_random_moments_and_inside_checkpoint_writes_resumes_exactly   (this file; 20 kills: bench/kill_resume.py)
    test_training.py::test_sigkill_then_resume_matches_uninterrupted_run
    test_training.py::test_resume_continues_exactly                               (optimizer state, history without duplicates)
    test_history_survives_a_torn_last_line                                        (this file)

Divergence stops the run with a clear message and keeps the last good checkpoint
    test_training.py::test_nan_loss_stops_and_keeps_last_good_checkpoint          (NaN/Inf losses)
    test_generator_weights_turning_nan_stop_before_they_are_saved                 (this file: finite losses, NaN weights)
    test_discriminator_winning_outright_stops_a_real_run                          (this file; the guard alone: test_training.py)
    test_mode_collapse_stops_a_real_run_with_exit_code_3                          (this file; the guard alone: test_training.py)

Hostile checkpoints are refused with a clear message, no code runs, the app keeps serving
    test_pickles_never_run_via_the_loader_resume_gradio_or_the_app                (this file: marker file never appears)
    test_lying_meta_with_a_huge_architecture_is_refused_before_allocating         (this file)
    test_checkpoint.py::test_pickles_are_never_executed, ::test_truncated_weights_are_refused,
    ::test_wrong_shapes_and_lying_meta_are_refused, ::test_wrong_dtype_is_refused, ::test_bad_meta_is_refused,
    ::test_pointer_outside_run_and_missing_paths
    test_app.py::test_typed_path_outside_the_checkpoints_folder_is_refused, ::test_garbage_file_and_broken_run_give_clear_errors
    test_video_registry_urlstate.py::test_resolve_user_path_confines_paths_to_the_checkpoints_folder (symlinks, "..", "~")
    test_hostile_checkpoints.py: crafted meta.json values (Infinity, 1e30, 2**61, [], format 0, deep nesting) refused
    by the one validation, a seeded fuzz of 400 documents, the listing never raising, links out of a checkpoint,
    FIFOs, /dev/zero and /proc files never read

User files are never overwritten or deleted (issue 12)
    test_cli_guards.py::test_out_with_user_files_is_refused_and_left_untouched, ::test_out_naming_a_file_fails_before_the_data_loads,
    ::test_the_marker_is_the_first_thing_written_into_a_new_or_empty_folder, ::test_a_run_from_before_markers_resumes_and_is_adopted,
    ::test_export_refuses_a_folder_it_did_not_write_and_deletes_nothing

Crafted options and run files give exit 2 and a short message, sizes are bounded before work (issue 12)
    test_cli_guards.py::test_huge_and_malformed_numbers_exit_2_quickly_with_short_messages, ::test_model_too_large_for_memory_is_refused_before_allocating,
    ::test_dataset_smaller_than_one_batch_exits_2, ::test_tampered_config_json_on_resume_is_a_clear_exit_2,
    ::test_a_fifo_for_config_json_is_refused_without_blocking, ::test_tampered_resume_state_is_a_clear_exit_2
    test_cli_guards.py::test_temp_files_of_killed_writers_are_removed_on_resume, ::test_an_aside_copy_of_a_killed_exchange_is_moved_back

Bad data is skipped and counted or refused, never a hang or an OOM
    test_datasets.py::test_folder_with_classes_and_broken_files                   (truncated, zero-byte, non-image)
    test_datasets.py::test_folder_huge_images_are_skipped                         (a 20000x20000 PNG header)
    test_datasets.py::test_celeba_mismatched_rows_are_skipped, ::test_celeba_errors (missing / malformed attribute rows)
    test_datasets.py::test_fashion_mnist_broken_files
    test_special_files_in_a_dataset_folder_never_hang                             (this file: FIFO, /dev/zero link)

Bad requests give clear errors and bounded work
    test_gradio_handlers_refuse_non_finite_and_huge_values_quickly                (this file, every API)
    test_gradio.py::test_bad_input_is_an_error_and_the_server_keeps_serving, ::test_non_finite_numbers_sent_by_hand_are_refused
    test_hostile_url_params_are_repaired_quickly                                  (this file: NaN/inf/huge in the URL)
    test_crafted_board_report_is_bounded                                          (this file: a huge bin from the browser)
    test_video_registry_urlstate.py::test_decode_never_raises_on_hostile_params
    test_app.py::test_malformed_url_seed_warns_and_falls_back, ::test_walk_with_bad_seeds_explains

Under load (5-minute soaks; results in BENCHMARKS.md)
    bench/gradio_load.py --clients 20 --seconds 300, bench/streamlit_soak.py --sessions 10 --seconds 300
    test_streamlit_sessions_interleaved_without_errors                            (this file: a short soak)
    test_gradio_session_state_is_bounded                                          (this file: the leak the soak found)

Disk full: a failed checkpoint write keeps the previous one and says so
    test_disk_full_during_training_stops_cleanly_and_resume_finishes              (this file, four writers' failures)
    test_a_real_full_tmpfs_stops_with_exit_4_at_each_writer                       (this file, a real 2 MB tmpfs)
    test_checkpoint.py::test_failed_write_keeps_previous_checkpoint
"""
from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import pickle
import random
import shutil
import threading
import time
import types
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import explorer.checkpoint as ckpt
import explorer.fsio as fsio
import training.gan as gan
import training.loop as loop
from bench.kill_resume import kill_loop
from explorer.checkpoint import CheckpointError, load_checkpoint
from explorer.datasets import ImageDataset
from explorer.model import Discriminator
from explorer.rundir import LATEST_FILE, latest_snapshot, read_history
from training.config import TrainConfig
from training.run import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "8", "--no-progress",
        "--no-tensorboard", "--log-every", "1", "--dataset", "synthetic-faces:64"]
TIMEOUT = 120  # AppTest: the first run imports torch and loads the model


def _train(out: Path, *extra: str) -> int:
    return main(["--out", str(out), *TINY, *extra])


# ----------------------------------------------------------------------------------------------- crashes


def test_sigkill_at_random_moments_and_inside_checkpoint_writes_resumes_exactly(tmp_path):
    """kill -9 of a real `training.run` process 4 times, then finish; compared with an uninterrupted run.

    One kill at a random moment after the first snapshot, three from inside checkpoint writes (half-way
    through a weight file, after a complete snapshot is renamed in but before latest.json moves, half-way
    through latest.json's temp file). After each: a loadable checkpoint whose weights, optimizer and RNG
    state equal the uninterrupted run's at that step, and the next process resumes from exactly that step.
    """
    plan = [("training", round(random.Random().uniform(0.0, 0.5), 2)), "weights:2", "snapshot-rename:1", "pointer:1"]
    result = kill_loop(tmp_path, plan, max_steps=40, checkpoint_every=5, log=lambda line: None)
    rows, final = result["rows"], result["final"]
    assert [row["problems"] for row in rows] == [[]] * len(plan), rows
    assert all(row["exit"] == -9 and row["step_on_disk"] is not None for row in rows), rows
    assert all(row["equals_uninterrupted"] for row in rows), rows
    assert [row["resumed_from"] for row in rows[1:]] == [row["step_on_disk"] for row in rows[:-1]]
    assert final["problems"] == [] and final["history_ok"] and final["step"] == 40, final
    assert final["resumed_from"] == rows[-1]["step_on_disk"]


def test_history_survives_a_torn_last_line(tmp_path):
    """A history line cut short (disk full, or a kill inside the write) is dropped, not a crash on --resume."""
    out = tmp_path / "run"
    assert _train(out, "--max-steps", "4", "--checkpoint-every", "2") == 0
    with open(out / "history.jsonl", "a") as f:
        f.write('{"step": 5, "loss_d": 0.6')  # torn
    assert [h["step"] for h in read_history(out)] == [1, 2, 3, 4]
    assert main(["--out", str(out), "--resume", "--max-steps", "6", "--no-progress", "--no-tensorboard"]) == 0
    assert [h["step"] for h in read_history(out)] == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------------------------- divergence


def _config(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=8, epochs=None, max_steps=20,
                log_every=1, checkpoint_every=2)
    return TrainConfig(**{**base, **kw})


def _dataset(n=32, value=None) -> ImageDataset:
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return ImageDataset(images=images if value is None else torch.full_like(images, value), spec="random")


def test_generator_weights_turning_nan_stop_before_they_are_saved(tmp_path, monkeypatch):
    """G's weights become NaN in the update that ends a window; that window's losses are still finite."""
    real_make_adam = gan.make_adam
    made = []

    def make_adam(params, config, device):
        optimizer = real_make_adam(params, config, device)
        made.append(optimizer)
        if len(made) == 1:  # the first one made is G's
            step, calls = optimizer.step, [0]

            def poisoned_step(*args, **kwargs):
                out = step(*args, **kwargs)
                calls[0] += 1
                if calls[0] == 6:
                    with torch.no_grad():
                        for group in optimizer.param_groups:
                            for p in group["params"]:
                                p.fill_(float("nan"))
                return out

            optimizer.step = poisoned_step
        return optimizer

    monkeypatch.setattr(gan, "make_adam", make_adam)
    with pytest.raises(gan.TrainingDiverged, match="not finite") as info:
        loop.train(_config(tmp_path / "run"), _dataset())
    assert "stopped at step 6" in str(info.value) and "step-00000004" in str(info.value)
    assert load_checkpoint(tmp_path / "run").step == 4  # the NaN weights of step 6 were never written
    assert not (tmp_path / "run" / "snapshots" / "step-00000006").exists()


class _WinningDiscriminator(Discriminator):
    """D that tells white (the real batch here) from anything else perfectly: logit +20 or -20."""

    def forward(self, x):
        logits = super().forward(x)
        return logits * 0 + 40 * (x.float().mean(dim=(1, 2, 3)) - 0.5)


def test_discriminator_winning_outright_stops_a_real_run(tmp_path, monkeypatch):
    monkeypatch.setattr(gan, "Discriminator", _WinningDiscriminator)
    with pytest.raises(gan.TrainingDiverged, match="won outright for 3 log windows") as info:
        loop.train(_config(tmp_path / "run", d_win_patience=3), _dataset(value=255))
    message = str(info.value)
    assert "D(x)=1.000" in message and "D(G(z))=0.0000" in message and "loss_g=20" in message
    assert "Last good checkpoint" in message and "step-00000002" in message
    assert load_checkpoint(tmp_path / "run").step == 2


def test_mode_collapse_stops_a_real_run_with_exit_code_3(tmp_path, monkeypatch, capsys):
    """From step 5 on, every fixed-noise sample is the same image: the CLI stops with code 3 and says why."""
    real_generate, calls = loop.generate, [0]

    def collapsing(G, z, *args, **kwargs):
        images = real_generate(G, z, *args, **kwargs)
        calls[0] += 1
        return images[:1].expand_as(images).clone() if calls[0] >= 5 else images

    class Guard(gan.DivergenceGuard):
        # collapse_std is not a CLI flag; a tiny net's first samples spread only ~1e-4, below the default
        def __init__(self, config):
            super().__init__(dataclasses.replace(config, collapse_std=2e-5))

    monkeypatch.setattr(loop, "generate", collapsing)
    monkeypatch.setattr(loop, "DivergenceGuard", Guard)
    out = tmp_path / "run"
    assert _train(out, "--max-steps", "20", "--checkpoint-every", "2") == 3
    err = capsys.readouterr().err
    assert "mode collapse" in err and "stopped at step 5" in err and "Last good checkpoint" in err and "step-00000004" in err
    assert load_checkpoint(out).step == 4


# ----------------------------------------------------------------------------------------------- hostile checkpoints


class _Marker:
    """Unpickling this runs code that creates a file: the proof that a pickle was executed."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


@pytest.fixture
def hostile_root(tiny_checkpoints, tmp_path, monkeypatch):
    """A checkpoints folder holding the tiny run, pickles and a run whose weights are a pickle; the app points at it."""
    root, marker, outside = tmp_path / "checkpoints", tmp_path / "PWNED", tmp_path / "outside"
    root.mkdir()
    shutil.copytree(tiny_checkpoints.tiny, root / "good")
    payload = pickle.dumps(_Marker(marker))
    (root / "evil.pt").write_bytes(payload)
    (root / "evil.pkl").write_bytes(payload)
    evil_run = root / "evil-run"
    shutil.copytree(tiny_checkpoints.tiny, evil_run)
    snapshot = latest_snapshot(evil_run)
    (snapshot / "generator.safetensors").write_bytes(payload)
    (snapshot / "resume.pt").write_bytes(payload)
    meta = json.loads((snapshot / "meta.json").read_text())
    meta["files"]["generator"]["sha256"] = ckpt._sha256(snapshot / "generator.safetensors")  # the attacker fixes the hash
    (snapshot / "meta.json").write_text(json.dumps(meta))
    shutil.copytree(tiny_checkpoints.tiny, outside)  # a real checkpoint, but outside the folder
    (root / "escape").symlink_to(outside)
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(root))
    return root, marker, outside


def test_pickles_never_run_via_the_loader_resume_gradio_or_the_app(hostile_root, capsys):
    root, marker, _ = hostile_root
    for path, message in [("evil.pt", "never loaded"), ("evil.pkl", "never loaded"), ("evil-run", "not a readable safetensors file")]:
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(root / path)

    # --resume checks the weights first, then reads resume.pt with torch.load(weights_only=True): refused, exit code 2
    assert main(["--out", str(root / "evil-run"), "--resume", "--no-progress", "--no-tensorboard"]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    evil_resume = root.parent / "evil-resume"  # good weights, hostile resume.pt
    shutil.copytree(root / "good", evil_resume)
    (latest_snapshot(evil_resume) / "resume.pt").write_bytes(pickle.dumps(_Marker(marker)))
    assert main(["--out", str(evil_resume), "--resume", "--no-progress", "--no-tensorboard"]) == 2
    assert "cannot be read as resume state" in capsys.readouterr().err

    import gradio_app

    assert gradio_app.main(["--checkpoint", str(root / "evil.pt")]) == 2
    assert "Cannot open the checkpoint" in capsys.readouterr().err

    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    typed = at.sidebar.text_input(key="ckpt_typed")
    for text, message in [("evil.pt", "never loaded"), ("evil.pkl", "never loaded"),
                          ("evil-run", "not a readable safetensors file"), ("escape", "outside the checkpoints folder"),
                          ("../outside", "outside the checkpoints folder"), ("/etc/passwd", "outside the checkpoints folder")]:
        typed.input(text).run()
        assert not at.exception, (text, at.exception)
        assert message in "\n".join(e.value for e in at.sidebar.error), text
        typed = at.sidebar.text_input(key="ckpt_typed")
    typed.input("good").run()  # and the app keeps serving
    assert not at.exception and not at.error
    assert at.title[0].value == "Generate & sliders" and len(at.get("image")) >= 3
    assert not marker.exists(), "a pickle was executed"


def test_lying_meta_with_a_huge_architecture_is_refused_before_allocating(tiny_checkpoints, tmp_path):
    """meta.json claims g_width 100,000 (terabytes of weights): refused from the file headers in well under a second."""
    run = tmp_path / "liar"
    shutil.copytree(tiny_checkpoints.tiny, run)
    snapshot = latest_snapshot(run)
    meta = json.loads((snapshot / "meta.json").read_text())
    meta["model"].update(g_width=100_000, d_width=100_000)
    (snapshot / "meta.json").write_text(json.dumps(meta))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(run)
    assert time.perf_counter() - start < 5


# ----------------------------------------------------------------------------------------------- bad data


def test_special_files_in_a_dataset_folder_never_hang(tmp_path):
    from explorer.datasets import load_dataset
    from PIL import Image

    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "ok.png")
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block forever
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")  # reading it never ends
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    result = {}
    worker = threading.Thread(target=lambda: result.update(data=load_dataset(f"folder:{tmp_path}", image_size=8)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert "data" in result, "loading hung on a special file"
    data = result["data"]
    assert len(data) == 1 and sum(data.skipped.values()) == 3, data.skipped


# ----------------------------------------------------------------------------------------------- bad requests


def test_gradio_handlers_refuse_non_finite_and_huge_values_quickly(tiny_checkpoints):
    import gradio as gr

    import gradio_app

    ex = gradio_app.Explorer(load_checkpoint(tiny_checkpoints.tiny))
    zeros = [0.0] * len(ex.sliders)
    bad_numbers = [float("nan"), float("inf"), float("-inf"), 1e308, -50, 2**64, "12abc", None]
    calls = []
    for bad in bad_numbers:
        calls += [
            lambda bad=bad: ex.generate(bad, *zeros),
            lambda bad=bad: ex.generate(1, bad, *zeros[1:]),
            lambda bad=bad: ex.exemplars(bad, 8),
            lambda bad=bad: ex.exemplars(0, bad),
            lambda bad=bad: ex.arithmetic("1", "2", "3", bad, 0.25),
            lambda bad=bad: ex.arithmetic("1", "2", "3", 0, bad),
            lambda bad=bad: ex.walk("1, 2", bad, "slerp", False, 12),
            lambda bad=bad: ex.walk("1, 2", 4, "slerp", False, bad),
        ]
    calls += [
        lambda: ex.exemplars(0, 10**9),  # a huge grid
        lambda: ex.walk(", ".join(map(str, range(10**5))), 60, "slerp", True, 12),  # a huge walk
        lambda: ex.walk("1, 2", 10**9, "slerp", True, 12),
        lambda: ex.arithmetic("1 " * 10**6, "2", "3", 0, 0.25),
    ]
    start = time.perf_counter()
    for call in calls:
        with pytest.raises(gr.Error):
            call()
    assert time.perf_counter() - start < 10, "refusals must not do the work first"
    assert ex.generate(3, *zeros)[1].startswith("seed 3")


def test_hostile_url_params_are_repaired_quickly(tiny_checkpoints):
    cases = [
        ({"seed": "1e400", "d": "sefa:0:nan,sefa:1:inf,z:0:-1e308,z:1:1e999"}, ["not a whole number", "NaN is not an offset", "outside +-10"]),
        ({"seed": "99999999999999999999", "d": "z:0:1," * 3000}, ["not a whole number", "characters long"]),
        ({"seed": "-5", "d": ",".join(f"z:{i}:1" for i in range(500))}, ["not a whole number", "only the first 64"]),
    ]
    for params, messages in cases:
        at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
        for key, value in params.items():
            at.query_params[key] = value
        start = time.perf_counter()
        at.run()
        assert not at.exception, at.exception
        warning = "\n".join(w.value for w in at.warning)
        for message in messages:
            assert message in warning, (message, warning)
        assert at.number_input(key="gen_seed").value == 0
        assert all(abs(s.value) <= 10 for s in at.slider if s.key and s.key.startswith("gen_off::"))
        assert time.perf_counter() - start < 60


def test_crafted_board_report_is_bounded(tiny_checkpoints):
    """The board's state comes from the browser: 100,000 seeds in a bin, NaN, bools and negatives are cut down."""
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/arithmetic.py")
    at.run()
    huge = list(range(100_000))
    at.session_state["arith_board"] = {"assignment": [huge, [3, float("nan"), True, -4, 2**40, 3, 4.0], [6, 7, 8], huge]}
    start = time.perf_counter()
    at.run()
    assert not at.exception, at.exception
    assert time.perf_counter() - start < 60
    bins = at.session_state["arith_bins"]
    assert [len(b) for b in bins] == [64, 2, 3] and bins[1] == [3, 4]
    assert any("Y = " in m.value for m in at.markdown)  # a result, from 64 + 2 + 3 exemplars


# ----------------------------------------------------------------------------------------------- under load


def test_streamlit_sessions_interleaved_without_errors(tiny_checkpoints):
    """A short version of bench/streamlit_soak.py: 2 interleaved AppTest sessions moving widgets on random pages."""
    from bench.streamlit_soak import soak

    result = soak(sessions=2, seconds=8, seed=0)
    assert result["errors"] == 0, result["error_kinds"]
    assert result["reruns"] >= 4 and result["pages_visited"]


@pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")  # gradio's queue vs pandas 3
def test_gradio_session_state_is_bounded(tiny_checkpoints, monkeypatch):
    """Every API call without a session is a new gradio session (~150 KB of state): only the last MAX_SESSIONS are kept."""
    import httpx

    import gradio_app
    from bench.gradio_load import call_generate
    from tests.support.local_server import free_port

    monkeypatch.setattr(gradio_app, "MAX_SESSIONS", 3)
    demo = gradio_app.build_demo(tiny_checkpoints.tiny)
    try:
        url, _ = gradio_app.launch(demo, port=free_port(), quiet=True)
        with httpx.Client(timeout=60) as client:
            for seed in range(8):
                call_generate(client, url, seed, len(demo.explorer.sliders))
        assert len(demo.state_holder.session_data) <= 3
    finally:
        demo.close()


# ----------------------------------------------------------------------------------------------- disk full


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
