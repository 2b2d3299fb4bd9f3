"""Training past RAM: batches read from the decoded cache equal the in-memory ones, and so do the trained weights."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from explorer.checkpoint import load_checkpoint
from explorer.datasets import load_dataset
from explorer.images import from_uint8
from tests.fakedata import make_image_folder
from training.batches import InMemoryBatches, StreamedBatches, batch_source, read_into_memory
from training.config import TrainConfig
from training.loop import train

CPU = torch.device("cpu")


def cached_folder(tmp_path, n_per_class: int = 8):
    root = make_image_folder(tmp_path / "data", n_per_class=n_per_class)
    return load_dataset(f"folder:{root}", image_size=8, cache=tmp_path / "cache")


def test_streamed_rows_equal_memory_rows_with_read_ahead(tmp_path):
    dataset = cached_folder(tmp_path)
    memory, streamed = InMemoryBatches(dataset, CPU), StreamedBatches(dataset.images_file, CPU)
    try:
        first, second = torch.tensor([5, 0, 15, 5]), torch.tensor([3, 2, 1])
        assert torch.equal(streamed.take(first, upcoming=second), dataset.images[first])
        assert streamed.pending is not None  # the next batch is being read
        assert torch.equal(streamed.take(second), memory.take(second))
        assert torch.equal(streamed.take(torch.tensor([7])), dataset.images[7:8])  # not the read-ahead one
    finally:
        streamed.close()
    assert torch.equal(read_into_memory(dataset.images_file), dataset.images)


def test_the_budget_decides_where_batches_come_from(tmp_path):
    dataset = cached_folder(tmp_path)  # 16 images of 3 x 8 x 8 = 3072 bytes
    assert not batch_source(dataset, CPU, ram_budget_bytes=3072).streamed
    over = batch_source(dataset, CPU, ram_budget_bytes=3071)
    assert over.streamed
    over.close()
    uncached = load_dataset(dataset.spec, image_size=8, cache="off")
    assert not batch_source(uncached, CPU, ram_budget_bytes=1).streamed  # already in memory: nothing to stream from


def weights(run_dir) -> dict:
    checkpoint = load_checkpoint(run_dir)
    return {**checkpoint.generator.state_dict(), **{f"D.{k}": v for k, v in checkpoint.discriminator.state_dict().items()}}


def test_streamed_training_is_bit_identical_and_resumes_exactly(tmp_path):
    """3 epochs of 2 steps: streamed == preloaded, and streamed 3 steps + resume to 6 == 6 straight."""
    root = make_image_folder(tmp_path / "data", n_per_class=8)  # 16 images, batch 8: the epoch order changes twice
    dataset = load_dataset(f"folder:{root}", image_size=32, cache=tmp_path / "cache")
    tiny = dict(image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=8, epochs=None, log_every=2, checkpoint_every=3,
                device="cpu")
    runs = {
        "memory": TrainConfig(out=str(tmp_path / "memory"), max_steps=6, **tiny),
        "streamed": TrainConfig(out=str(tmp_path / "streamed"), max_steps=6, max_ram_gb=1e-6, **tiny),
        "resumed": TrainConfig(out=str(tmp_path / "resumed"), max_steps=3, max_ram_gb=1e-6, **tiny),
    }
    for config in runs.values():
        train(config, dataset)
    train(dataclasses.replace(runs["resumed"], max_steps=6), dataset, resume=True)
    memory = weights(tmp_path / "memory")
    for name in ("streamed", "resumed"):
        other = weights(tmp_path / name)
        assert load_checkpoint(tmp_path / name).step == 6
        assert all(torch.equal(memory[key], other[key]) for key in memory), name


def test_ranks_stream_disjoint_epoch_seeded_shards(tmp_path):
    from training.distributed import Distributed
    from training.loop import Batches

    dataset = cached_folder(tmp_path)  # 16 images; 2 ranks x batch 4: 2 steps per epoch
    config = TrainConfig(image_size=8, batch_size=4, epochs=None, max_steps=4, max_ram_gb=1e-6, z_dim=16)
    shards = {}
    for rank in (0, 1):
        batches = Batches(dataset, config, Distributed(rank, 2, rank), CPU, per_epoch=2)
        assert batches.source.streamed
        for step in range(4):  # two epochs
            real, _ = batches.at(step)
            index = batches.order[(step % 2) * 4 : (step % 2) * 4 + 4]
            assert torch.equal(real, from_uint8(dataset.images[index]))  # the rows read are the rows asked for
            shards.setdefault((rank, step // 2), []).extend(index.tolist())
        batches.source.close()
    for epoch in (0, 1):
        assert not set(shards[0, epoch]) & set(shards[1, epoch])  # disjoint
        assert sorted(shards[0, epoch] + shards[1, epoch]) == list(range(16))  # together: the whole set
    assert shards[0, 0] != shards[0, 1]  # a new order each epoch


@pytest.mark.slow
def test_streamed_run_killed_and_resumed_equals_the_uninterrupted_one(tmp_path):
    """SIGKILL a streamed `training.run` after its first snapshot; --resume finishes it with the same weights and Adam state."""
    root = make_image_folder(tmp_path / "data", n_per_class=8)
    args = ["--dataset", f"folder:{root}", "--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16",
            "--batch-size", "4", "--max-steps", "40", "--checkpoint-every", "2", "--log-every", "1", "--max-ram-gb", "1e-6",
            "--data-cache", str(tmp_path / "cache"), "--device", "cpu", "--no-progress", "--no-tensorboard"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same arithmetic in every process
    run = [sys.executable, "-m", "training.run"]
    assert subprocess.run([*run, *args, "--out", str(tmp_path / "straight")], env=env, capture_output=True).returncode == 0
    killed = subprocess.Popen([*run, *args, "--out", str(tmp_path / "killed")], env=env, stdout=subprocess.PIPE, text=True)
    while not (tmp_path / "killed" / "latest.json").exists() and killed.poll() is None:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    assert "over the" in killed.stdout.read()  # it was streaming from the cache file
    kept = load_checkpoint(tmp_path / "killed").step
    assert kept < 40
    resume = [*run, "--out", str(tmp_path / "killed"), "--resume", "--no-progress", "--no-tensorboard"]
    assert subprocess.run(resume, env=env, capture_output=True).returncode == 0
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "killed")
    assert resumed.step == straight.step == 40
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "killed")
    assert all(torch.equal(a[key], b[key]) for key in a)
    moments_a, moments_b = (torch.load(c.path / "resume.pt", weights_only=True)["opt_d"]["state"] for c in (straight, resumed))
    assert all(torch.equal(moments_a[i][k], moments_b[i][k]) for i in moments_a for k in moments_a[i])
