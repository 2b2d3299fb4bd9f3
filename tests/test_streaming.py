"""Training past RAM: batches read from the decoded cache equal the in-memory ones, and so do the trained weights."""
from __future__ import annotations

import torch

from explorer.datasets import load_dataset
from tests.fakedata import make_image_folder
from training.batches import InMemoryBatches, StreamedBatches, batch_source, read_into_memory

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
