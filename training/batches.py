"""Where the training loop gets its real batches: preloaded memory, or rows read from the decoded cache.

The loop decides *which* images make a batch (the epoch order from (seed, epoch), each DDP rank
taking its own interleaved slice of it, so the ranks' shards are disjoint and a resumed run draws
exactly what the uninterrupted one would); a batch source only fetches them, as uint8 (B, C, H, W)
on the training device. Both sources return the same bytes for the same indices, so a streamed run
and an in-memory run train bit-identically.

* `InMemoryBatches`: the whole set on the device, a batch is one index gather (the fast path while
  the set fits the memory budget).
* `StreamedBatches`: the set stays in the decoded-data cache's images.npy; each batch's rows are
  read with pread (sorted by offset) into a small buffer, and the next batch is read on a thread
  while the current step computes. Reads go through the page cache, not a mapping, so the
  process's resident memory stays at a few batches whatever the set's size (mapped pages would
  count in its RSS as they are touched).

`batch_source` picks one from the set's size and the budget (`--max-ram-gb`; default half the
memory available at start, shared by the ranks of this machine).
"""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from explorer.datasets import ImageDataset
from explorer.datasets.common import available_memory_bytes, format_bytes


def default_ram_budget_bytes() -> int:
    """Half the memory available now, split between the training processes on this machine."""
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return available_memory_bytes() // 2 // local_ranks


def ram_budget_bytes(config) -> int | None:
    """A TrainConfig's --max-ram-gb in bytes; None for the default budget."""
    return None if config.max_ram_gb is None else int(config.max_ram_gb * 1e9)


def _npy_data_offset(path: Path) -> tuple[int, tuple[int, ...]]:
    """(byte offset of the data, shape) of a uint8 C-order .npy file."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(file)
        if dtype != np.uint8 or fortran_order:
            raise ValueError(f"{path}: expected C-order uint8 images, got {dtype} fortran_order={fortran_order}")
        return file.tell(), tuple(shape)


def read_into_memory(path: Path) -> torch.Tensor:
    """A cache images.npy read into anonymous memory with plain reads (its mapping is never touched)."""
    offset, shape = _npy_data_offset(path)
    images = torch.empty(shape, dtype=torch.uint8)
    view = memoryview(images.numpy()).cast("B")
    with open(path, "rb", buffering=0) as file:
        file.seek(offset)
        filled = 0
        while filled < len(view):
            got = file.readinto(view[filled : filled + (64 << 20)])
            if not got:
                raise OSError(f"{path}: ends after {filled} of {len(view)} bytes of images")
            filled += got
    return images


class InMemoryBatches:
    """The whole set as one uint8 tensor on the device; a batch is an index gather."""

    streamed = False

    def __init__(self, dataset: ImageDataset, device: torch.device):
        images = dataset.images
        if dataset.images_file is not None:
            images = read_into_memory(dataset.images_file)  # not through the mapping: RSS holds one copy
        self.images = images.to(device)  # uint8 (N, C, H, W), ~1/4 the bytes of float32
        # Indices live on the device too: a pageable host-to-device copy per step would wait for the GPU.
        self.index_device = device

    def take(self, index: torch.Tensor, upcoming: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, C, H, W) on the device for indices (B,) on index_device; `upcoming` is ignored."""
        return self.images[index]

    def close(self) -> None:
        pass


class StreamedBatches:
    """Batches read from the decoded cache's images.npy, one batch ahead on a reader thread."""

    streamed = True

    def __init__(self, path: Path, device: torch.device):
        self.offset, self.shape = _npy_data_offset(path)
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.fd = os.open(path, os.O_RDONLY)
        self.device = device
        self.index_device = torch.device("cpu")  # the reads happen on the host
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="batch-reader")
        self.pending: tuple[bytes, Future] | None = None  # (index bytes, the read of that batch)

    def _read(self, index: np.ndarray) -> torch.Tensor:
        rows = np.empty((len(index), self.row_bytes), np.uint8)
        for position in np.argsort(index, kind="stable"):  # ascending offsets: the disk reads ahead
            start = self.offset + int(index[position]) * self.row_bytes
            got = os.preadv(self.fd, [rows[position]], start)
            if got != self.row_bytes:
                raise OSError(f"short read of image {int(index[position])} from the decoded cache ({got} bytes)")
        batch = torch.from_numpy(rows).view(len(index), *self.shape[1:])
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return batch

    def take(self, index: torch.Tensor, upcoming: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, C, H, W) on the device for CPU indices (B,); starts reading `upcoming` in the background.

        On CUDA the rows come from pinned memory, so the copy to the device does not wait for the GPU."""
        wanted = index.numpy().astype(np.int64, copy=False)
        key = wanted.tobytes()
        if self.pending is not None and self.pending[0] == key:
            batch = self.pending[1].result()
        else:
            batch = self._read(wanted)
        self.pending = None
        if upcoming is not None:
            ahead = upcoming.numpy().astype(np.int64, copy=True)
            self.pending = (ahead.tobytes(), self.reader.submit(self._read, ahead))
        return batch.to(self.device, non_blocking=True)

    def close(self) -> None:
        self.reader.shutdown(wait=True)
        os.close(self.fd)


def streams(dataset: ImageDataset, ram_budget_bytes: int | None = None) -> bool:
    """Whether training reads this set from the decoded cache batch by batch: it is larger than the
    budget (default: default_ram_budget_bytes()) and has a cache file. A larger set without one is
    already in memory (the cache was off), so it trains from memory."""
    budget = default_ram_budget_bytes() if ram_budget_bytes is None else ram_budget_bytes
    return dataset.images_file is not None and dataset.nbytes > budget


def batch_source(dataset: ImageDataset, device: torch.device, ram_budget_bytes: int | None = None):
    """StreamedBatches when `streams`, else InMemoryBatches."""
    if streams(dataset, ram_budget_bytes):
        return StreamedBatches(dataset.images_file, device)
    return InMemoryBatches(dataset, device)


def data_source(dataset: ImageDataset, config) -> str:
    """One line for the user: where the decoded images are and where batches will come from."""
    budget = ram_budget_bytes(config)
    size = f"{format_bytes(dataset.nbytes)} decoded"
    where = f"cached in {dataset.images_file.parent}" if dataset.images_file is not None else "not cached"
    limit = format_bytes(default_ram_budget_bytes() if budget is None else budget)
    if streams(dataset, budget):
        return f"data: {size}, {where}; over the {limit} memory budget, so batches are read from the cache file"
    return f"data: {size}, {where}; preloaded (memory budget {limit})"
