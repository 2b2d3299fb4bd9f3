"""Training past RAM: batches read from the decoded cache equal the in-memory ones, and so do the trained weights."""
from __future__ import annotations

import dataclasses

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
