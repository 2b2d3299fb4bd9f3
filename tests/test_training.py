"""End-to-end training runs on tiny configs: they assert on what the run writes (diffusers' example-test style)."""
import dataclasses
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import training.distributed as distributed
import training.gan as gan
import training.loop as loop
from explorer.checkpoint import load_checkpoint, read_meta
from explorer.datasets import ImageDataset
from explorer.rundir import latest_snapshot, read_history
from tests import fakedata
from training.config import TrainConfig
from training.run import main

REPO = Path(__file__).resolve().parents[1]
# Tiny nets: 32 px, widths 8, z 16 -> a step takes milliseconds on 2 cores.
TINY = ["--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16", "--batch-size", "8", "--no-progress", "--log-every", "1"]


def _run(out: Path, dataset: str, *extra: str) -> int:
    return main(["--dataset", dataset, "--out", str(out), *TINY, *extra])


def _weights(snapshot: Path, role: str = "generator") -> dict:
    return load_file(str(snapshot / f"{role}.safetensors"))


def _assert_run_outputs(out: Path, steps: int) -> dict:
    snapshot = latest_snapshot(out)
    assert snapshot is not None and snapshot.name == f"step-{steps:08d}"
    _, meta = read_meta(out)
    assert meta["step"] == steps
    assert json.loads((out / "config.json").read_text())["out"] == str(out)
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, steps + 1))
    assert all(math.isfinite(h["loss_d"]) and math.isfinite(h["loss_g"]) for h in history)
    assert (out / "curves.png").stat().st_size > 1000
    assert list((out / "samples").glob("*.png")), "a fixed-noise sample grid is written"
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    checkpoint = load_checkpoint(out)
    with torch.no_grad():
        images = checkpoint.generator(torch.randn(2, checkpoint.config.z_dim))
    assert images.shape == (2, checkpoint.config.channels, 32, 32)
    return meta


def test_synthetic_faces_run_writes_self_describing_checkpoint(tmp_path):
    out = tmp_path / "faces"
    assert _run(out, "synthetic-faces:64", "--max-steps", "2", "--ema") == 0
    meta = _assert_run_outputs(out, 2)
    assert meta["dataset"]["spec"] == "synthetic-faces:64"
    assert "Smiling" in meta["dataset"]["attribute_names"]
    assert meta["model"] == {"image_size": 32, "channels": 3, "z_dim": 16, "g_width": 8, "d_width": 8}
    assert meta["training"]["ema"] is True and "generator_ema" in meta["files"]
    assert {"torch", "torchvision", "python"} <= set(meta["versions"])
    assert {"loss_d", "loss_g", "d_real", "d_fake", "img_per_s"} <= set(meta["metrics"])


def test_fashion_mnist_run_from_debian_files(tmp_path):
    out = tmp_path / "fm"
    assert _run(out, "fashion-mnist", "--max-images", "64", "--max-steps", "2") == 0
    meta = _assert_run_outputs(out, 2)
    assert meta["model"]["channels"] == 1
    assert meta["dataset"]["class_names"][0] == "T-shirt/top"


@pytest.mark.parametrize("layout", ["official", "kaggle"])
def test_celeba_run_on_fake_tree(tmp_path, layout):
    root = fakedata.make_celeba(tmp_path / "celeba", layout=layout, n=16)
    out = tmp_path / "run"
    assert _run(out, f"celeba:{root}", "--max-steps", "2") == 0
    meta = _assert_run_outputs(out, 2)
    assert len(meta["dataset"]["attribute_names"]) == 40


def test_folder_and_cifar10_runs(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    # Written batches cannot match torchvision's md5 sums of the real files.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    folder = fakedata.make_image_folder(tmp_path / "cats", n_per_class=8)
    assert _run(tmp_path / "a", f"folder:{folder}", "--max-steps", "2") == 0
    assert _assert_run_outputs(tmp_path / "a", 2)["dataset"]["class_names"] == ["class_a", "class_b"]
    cifar = fakedata.make_cifar10(tmp_path / "cifar", n=16)
    assert _run(tmp_path / "b", f"cifar10:{cifar}", "--max-steps", "2") == 0
    assert len(_assert_run_outputs(tmp_path / "b", 2)["dataset"]["class_names"]) == 10


def test_bad_options_fail_fast_with_clear_messages(tmp_path, capsys):
    cases = [
        (["--image-size", "48"], "image-size"),
        (["--dataset", "nope"], "unknown dataset kind"),
        (["--dataset", f"folder:{tmp_path / 'missing'}"], "does not exist"),
        (["--amp", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
        (["--label-smoothing", "0.7"], "label-smoothing"),
        (["--resume"], "holds no checkpoint"),
    ]
    for args, message in cases:
        argv = ["--out", str(tmp_path / "x"), "--dataset", "synthetic-faces:64", "--max-steps", "1", *args]
        assert main(argv) == 2, args
        assert message in capsys.readouterr().err, args
    assert not (tmp_path / "x").exists(), "validation happens before any work"
    if not torch.cuda.is_available():
        assert main(["--out", str(tmp_path / "x"), "--device", "cuda", "--max-steps", "1"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_existing_run_needs_resume_and_dry_run_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out, "synthetic-faces:64", "--max-steps", "1") == 0
    assert _run(out, "synthetic-faces:64", "--max-steps", "2") == 2
    assert "--resume" in capsys.readouterr().err
    assert _run(tmp_path / "dry", "synthetic-faces:64", "--max-steps", "2", "--dry-run") == 0
    printed = capsys.readouterr().out
    assert '"image_size": 32' in printed and "nothing written" in printed
    assert not (tmp_path / "dry").exists()


def test_resume_continues_exactly(tmp_path):
    """Two steps + resume to four == four steps straight: same weights, optimizer state and history."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--checkpoint-every", "2", "--ema"]
    assert _run(straight, "synthetic-faces:32", "--max-steps", "6", *common) == 0
    assert _run(resumed, "synthetic-faces:32", "--max-steps", "2", *common) == 0
    assert main(["--out", str(resumed), "--resume", "--max-steps", "6", "--no-progress"]) == 0  # options from config.json
    a, b = latest_snapshot(straight), latest_snapshot(resumed)
    assert a.name == b.name == "step-00000006"  # crossed an epoch boundary (4 steps per epoch)
    for role in ("generator", "discriminator", "generator_ema"):
        wa, wb = _weights(a, role), _weights(b, role)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), role
    ra = torch.load(a / "resume.pt", weights_only=True)
    rb = torch.load(b / "resume.pt", weights_only=True)
    assert torch.equal(ra["opt_g"]["state"][0]["exp_avg"], rb["opt_g"]["state"][0]["exp_avg"])
    steps = [json.loads(line)["step"] for line in (resumed / "history.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7)), "no duplicated or skipped steps in the history"


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "training.run", "--dataset", "synthetic-faces:64", "--out", str(out), *TINY, "--no-tensorboard", *extra]


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    """Kill -9 mid-run (after the first snapshot); --resume finishes with the uninterrupted run's weights."""
    # One thread: ~10x faster for this tiny net on a busy 2-core box, and both runs use the same count.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["--max-steps", "400", "--checkpoint-every", "5"]
    subprocess.run(_train_cmd(straight, *args), check=True, cwd=REPO, env=env, capture_output=True)
    proc = subprocess.Popen(_train_cmd(killed, *args), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "latest.json").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # land somewhere mid-run, possibly mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    snapshot = latest_snapshot(killed)
    assert snapshot is not None
    killed_at = read_meta(killed)[1]["step"]
    assert 5 <= killed_at < 400, "the kill landed mid-run"
    load_checkpoint(killed)  # loadable as left
    subprocess.run([sys.executable, "-m", "training.run", "--out", str(killed), "--resume", "--no-progress"], check=True, cwd=REPO, env=env, capture_output=True)
    a, b = latest_snapshot(straight), latest_snapshot(killed)
    assert a.name == b.name == "step-00000400"
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_ddp_two_processes_on_cpu_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "training.run", "--dataset", "synthetic-faces:64", "--out", str(out), *TINY, "--max-steps", "3", "--no-tensorboard"]
    result = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    _, meta = read_meta(out)
    assert meta["step"] == 3
    assert meta["steps_per_epoch"] == 4  # 64 images / (8 per process x 2 processes)
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    load_checkpoint(out)


def _tiny_config(out: Path, **kw) -> TrainConfig:
    base = dict(out=str(out), image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=8, epochs=None, max_steps=20, log_every=1, checkpoint_every=2)
    return TrainConfig(**{**base, **kw})


def _random_dataset(n=32) -> ImageDataset:
    return ImageDataset(images=torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)), spec="random")


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = gan.generator_loss
    calls = {"n": 0}

    def poisoned(d_fake, loss):
        calls["n"] += 1
        value = real_loss(d_fake, loss)
        return value * float("nan") if calls["n"] > 5 else value

    monkeypatch.setattr(gan, "generator_loss", poisoned)
    with pytest.raises(gan.TrainingDiverged, match="non-finite loss") as info:
        loop.train(_tiny_config(tmp_path / "run"), _random_dataset())
    assert "step-00000004" in str(info.value)
    assert load_checkpoint(tmp_path / "run").step == 4  # the step-6 state (NaN weights) was never saved


def test_discriminator_winning_outright_stops(tmp_path):
    guard = gan.DivergenceGuard(_tiny_config(tmp_path, d_win_patience=3))
    winning = {"loss_d": 0.001, "loss_g": 12.0, "d_real": 0.999, "d_fake": 0.0005}
    assert guard.check_window(winning) is None and guard.check_window(winning) is None
    assert "won outright" in guard.check_window(winning)
    assert guard.check_window({**winning, "d_fake": 0.3}) is None  # the counter resets


def test_mode_collapse_detected_only_after_diversity_falls():
    guard = gan.DivergenceGuard(TrainConfig(collapse_std=0.02))
    assert guard.check_diversity(0.001) is None  # an untrained G in eval mode: near-constant, not a collapse
    assert guard.check_diversity(0.3) is None
    assert "mode collapse" in guard.check_diversity(0.005)
    same = torch.zeros(8, 3, 4, 4)
    assert gan.sample_diversity(same) == 0.0


def test_bf16_autocast_and_hinge_loss_on_cpu(tmp_path):
    result = loop.train(_tiny_config(tmp_path / "run", amp="bf16", loss="hinge", label_smoothing=0.1, max_steps=4), _random_dataset())
    assert result.step == 4 and all(math.isfinite(v) for v in result.metrics.values())
    assert load_checkpoint(tmp_path / "run").meta["training"]["amp"] == "bf16"


def test_cuda_branches_resolve_clearly_on_cpu():
    assert distributed.resolve_device("cpu").type == "cpu"
    assert distributed.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="fp16"):
        distributed.check_amp("fp16", torch.device("cpu"))
    distributed.check_amp("bf16", torch.device("cpu"))
    dist_info = distributed.distributed_from_env()
    assert (dist_info.rank, dist_info.world_size) == (0, 1) and not dist_info.enabled


def test_data_order_and_noise_are_functions_of_seed_epoch_step():
    assert torch.equal(loop.epoch_order(100, 0, 3), loop.epoch_order(100, 0, 3))
    assert not torch.equal(loop.epoch_order(100, 0, 3), loop.epoch_order(100, 0, 4))
    a = torch.randn(4, generator=loop.step_generator(torch.device("cpu"), 0, 17, 0))
    b = torch.randn(4, generator=loop.step_generator(torch.device("cpu"), 0, 17, 1))
    assert not torch.equal(a, b), "each DDP rank draws its own z"


def test_export_cli_makes_small_flat_checkpoint(tmp_path):
    from training.export import main as export_main

    assert _run(tmp_path / "run", "synthetic-faces:64", "--max-steps", "2", "--ema") == 0
    assert export_main([str(tmp_path / "run"), str(tmp_path / "shipped")]) == 0
    shipped = load_checkpoint(tmp_path / "shipped")
    assert shipped.step == 2 and shipped.discriminator is not None
    assert set(shipped.meta["files"]) == {"generator", "discriminator"}
    assert (tmp_path / "shipped" / "history.jsonl").is_file()
    # the command that reproduces the run is recorded, and parses back to the run's own config
    command = shipped.meta["training_command"]
    assert command.startswith("python -m training.run --dataset synthetic-faces:64 --out ") and " --ema " in command
    from training.run import build_parser, resolve_config

    rebuilt = dataclasses.asdict(resolve_config(build_parser().parse_args(shlex.split(command)[3:])))
    recorded = shipped.meta["training"]
    assert {key: rebuilt[key] for key in recorded} == recorded


def test_export_of_an_earlier_snapshot_ships_only_what_came_before_it(tmp_path):
    """Exporting RUN/snapshots/step-N takes the run's history and grids up to step N, not the run's later ones."""
    from training.export import main as export_main

    # 64 images / batch 8 = 8 steps per epoch: grids at steps 8 and 16, snapshots every 4 steps
    assert _run(tmp_path / "run", "synthetic-faces:64", "--max-steps", "16", "--checkpoint-every", "4", "--keep-snapshots", "10") == 0
    assert [g.name for g in sorted((tmp_path / "run" / "samples").glob("*.png"))] == ["epoch_001.png", "epoch_002.png"]
    assert export_main([str(tmp_path / "run" / "snapshots" / "step-00000012"), str(tmp_path / "at12")]) == 0
    shipped = load_checkpoint(tmp_path / "at12")
    assert shipped.step == 12
    assert [row["step"] for row in read_history(tmp_path / "at12")] == list(range(1, 13))
    assert [g.name for g in (tmp_path / "at12" / "samples").glob("*.png")] == ["epoch_001.png"]
    assert not (tmp_path / "at12" / "curves.png").exists()  # drawn from the whole history
    # the latest snapshot ships everything, as the run folder does
    assert export_main([str(tmp_path / "run" / "snapshots" / "step-00000016"), str(tmp_path / "at16")]) == 0
    assert [row["step"] for row in read_history(tmp_path / "at16")] == list(range(1, 17))
    assert (tmp_path / "at16" / "curves.png").is_file()


def test_conv_ceiling_counts_the_paper_step(tmp_path):
    """bench/conv_ceiling: the step's FLOPs and its conv units (the ceiling BENCHMARKS.md compares the step with)."""
    from bench.conv_ceiling import main as ceiling_main

    out = tmp_path / "ceiling.json"
    assert ceiling_main(["--batch-size", "2", "--repeats", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    # G's 5 convs once (weight grads; input grads but for z), D's 5 on real and fake (weight grads), and once in
    # the G step through the frozen D (input grads only)
    units = [(u["layer"][0], u["grads"], u["per_step"]) for u in result["units"]]
    assert units == [("G", "dw", 1)] + [("G", "dx+dw", 1)] * 4 + [("D", "dw", 2), ("D", "dx", 1)] + [("D", "dx+dw", 2), ("D", "dx", 1)] * 4
    assert result["units"][1]["input"] == [2, 512, 4, 4]
    seconds = sum(u["ms"] * u["per_step"] for u in result["units"]) / 1e3
    assert result["ceiling_img_per_s"] == pytest.approx(2 / seconds)
    # FLOPs scale with the batch: 2.27 GFLOP per image, as at batch 128
    assert result["gflop_per_image"] == pytest.approx(291.2 / 128, rel=0.01)
    assert result["step_img_per_s"] > 0 and result["host"]["cpu_model"]


def test_callbacks_receive_every_hook_in_order(tmp_path):
    """The typed Callback interface: a subclass overrides only what it needs; train calls each hook in turn."""
    from training.callbacks import Callback

    class Recorder(Callback):
        def __init__(self):
            self.calls = []

        def on_start(self, state):
            self.calls.append(("start", state.step))

        def on_step(self, state):
            self.calls.append(("step", state.step))

        def on_log(self, state, metrics):
            self.calls.append(("log", state.step, sorted(metrics)))

        def on_samples(self, state, images, tag):
            self.calls.append(("samples", tag, tuple(images.shape)))

        def on_end(self, state):
            self.calls.append(("end", state.step))

    class OnlyEnd(Callback):  # every other hook is the base class's no-op
        def on_end(self, state):
            self.seen = state.step

    recorder, only_end = Recorder(), OnlyEnd()
    loop.train(_tiny_config(tmp_path / "run", max_steps=4, log_every=2, checkpoint_every=100), _random_dataset(), callbacks=[recorder, only_end])
    metrics = ["d_fake", "d_real", "diversity", "epoch", "img_per_s", "loss_d", "loss_g"]
    assert recorder.calls == [
        ("start", 0), ("step", 1), ("step", 2), ("log", 2, metrics), ("step", 3), ("step", 4), ("log", 4, metrics),
        ("samples", "epoch_001", (64, 3, 32, 32)), ("end", 4),
    ]
    assert only_end.seen == 4
