"""Readers of packaged datasets: Fashion-MNIST's IDX files, CIFAR-10's python batches, LSUN's LMDB databases."""
from __future__ import annotations

import gzip
import os
import struct
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.datasets import DatasetError, ImageDataset, common, fashion_mnist, load_dataset
from tests.fakedata import CIFAR_CLASSES, rgb, write_cifar

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0, 0, type 0x08, ndim, big-endian dims, data."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_fashion(root: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = idx_bytes(array)
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_files():
    data = load_dataset("fashion-mnist", image_size=32, max_images=256)
    assert isinstance(data, ImageDataset)
    assert data.images.shape == (256, 1, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.shape == (256,) and data.labels.dtype == torch.int64
    assert 0 <= int(data.labels.min()) and int(data.labels.max()) <= 9
    assert len(set(data.labels.tolist())) == 10  # 256 images cover every class
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot" and len(data.class_names) == 10
    assert data.spec == "fashion-mnist" and data.channels == 1 and len(data) == 256
    test = load_dataset(f"fashion-mnist:{DEBIAN_FASHION_MNIST}", image_size=64, channels=3, max_images=8, split="test")
    assert test.images.shape == (8, 3, 64, 64)
    assert torch.equal(test.images[:, 0], test.images[:, 2])  # grey replicated to RGB


def test_fashion_mnist_written_idx_gz_and_raw(tmp_path):
    rng = np.random.default_rng(0)
    train, train_labels = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), np.array([0, 1, 2, 3, 9], dtype=np.uint8)
    test, test_labels = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), np.array([4, 5, 6], dtype=np.uint8)
    write_fashion(tmp_path, "train", train, train_labels, gz=True)
    write_fashion(tmp_path, "t10k", test, test_labels, gz=False)

    data = load_dataset(f"fashion-mnist:{tmp_path}", image_size=28)  # 28 px: no resize, exact pixels
    assert torch.equal(data.images[:, 0], torch.from_numpy(train))
    assert data.labels.tolist() == [0, 1, 2, 3, 9]
    raw = load_dataset(f"fashion-mnist:{tmp_path}", image_size=28, split="test")
    assert torch.equal(raw.images[:, 0], torch.from_numpy(test)) and raw.labels.tolist() == [4, 5, 6]
    both = load_dataset(f"fashion-mnist:{tmp_path}", image_size=32, split="all", max_images=6)
    assert both.images.shape == (6, 1, 32, 32) and both.labels.tolist() == [0, 1, 2, 3, 9, 4]
    with pytest.raises(DatasetError, match="no 'val' split"):
        load_dataset(f"fashion-mnist:{tmp_path}", split="val")


def test_fashion_mnist_broken_files(tmp_path):
    images, labels = np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)
    write_fashion(tmp_path, "train", images, labels, gz=True)
    image_file = tmp_path / "train-images-idx3-ubyte.gz"

    # data cut short: the header promises 4 images
    image_file.write_bytes(gzip.compress(idx_bytes(images)[:-100]))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*truncated"):
        load_dataset(f"fashion-mnist:{tmp_path}")
    # the gzip stream itself cut in half
    image_file.write_bytes(gzip.compress(idx_bytes(images))[:40])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz"):
        load_dataset(f"fashion-mnist:{tmp_path}")
    # not IDX at all
    image_file.write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(DatasetError, match="not an IDX file"):
        load_dataset(f"fashion-mnist:{tmp_path}")
    # labels for fewer images than there are
    write_fashion(tmp_path, "train", images, labels[:3], gz=True)
    with pytest.raises(DatasetError, match="4 images but .* 3 labels"):
        load_dataset(f"fashion-mnist:{tmp_path}")
    # missing file
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="no train-labels-idx1-ubyte"):
        load_dataset(f"fashion-mnist:{tmp_path}")


def test_fashion_mnist_gzip_bomb_is_never_inflated_whole(tmp_path, monkeypatch):
    images, labels = np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)
    write_fashion(tmp_path, "train", images, labels, gz=True)
    image_file = tmp_path / "train-images-idx3-ubyte.gz"
    # 64 MB of zeros behind a header that declares 4 images: ~64 KB of gzip. Reading stops one byte
    # past the declared 3,136 bytes instead of inflating the rest.
    image_file.write_bytes(gzip.compress(idx_bytes(images) + bytes(64 << 20), compresslevel=1))
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"header says 4x28x28 = 3136 bytes of data but the file holds more than that"):
        load_dataset(f"fashion-mnist:{tmp_path}", cache="off")
    assert time.perf_counter() - start < 5

    # A header declaring more than the memory available: refused before any data is inflated (the
    # file holds none). The message gives the size and the bound.
    monkeypatch.setattr(common, "available_memory_bytes", lambda: 50_000_000)
    header_only = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 100_000, 28, 28)
    image_file.write_bytes(gzip.compress(header_only))
    with pytest.raises(DatasetError, match=r"100000x28x28 bytes of data, which needs 78.4 MB.* 50 MB of memory available"):
        fashion_mnist.read_idx(image_file)
    write_fashion(tmp_path, "train", np.zeros((100_000, 1, 1), np.uint8)[:, :0], np.zeros(100_000, np.uint8), gz=True)
    with pytest.raises(DatasetError, match=r"100000 images read and resized to 64 px needs .* memory available"):
        load_dataset(f"fashion-mnist:{tmp_path}", cache="off")


# ---------------------------------------------------------------------------------------------
# CIFAR-10 and LSUN
# ---------------------------------------------------------------------------------------------

def test_cifar10_python_batches(tmp_path, monkeypatch):
    pixels = write_cifar(tmp_path / "cifar-10-batches-py")
    # The written batches cannot match torchvision's md5 sums of the real files: accept any file
    # that exists (the md5 check itself is torchvision's, exercised below by its failure).
    import torchvision.datasets.cifar as tv_cifar

    with monkeypatch.context() as patch:
        patch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
        train = load_dataset(f"cifar10:{tmp_path}", image_size=32)
        assert train.images.shape == (10, 3, 32, 32) and torch.equal(train.images, torch.from_numpy(pixels[:10]))
        assert train.class_names == CIFAR_CLASSES and train.labels.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
        test = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}", image_size=64, channels=1, split="test")
        assert test.images.shape == (2, 1, 64, 64) and test.labels.tolist() == [5, 6]
        assert len(load_dataset(f"cifar10:{tmp_path}", image_size=32, split="all", max_images=11)) == 11

    with pytest.raises(DatasetError, match="unmodified files"):  # md5 check on: the fake batches fail it
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="missing CIFAR-10 file.*data_batch_3"):
        load_dataset(f"cifar10:{tmp_path}")


def test_lsun_lmdb_without_lmdb_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", None)  # make `import lmdb` fail even where it is installed
    (tmp_path / "bedroom_train_lmdb").mkdir()
    (tmp_path / "bedroom_train_lmdb" / "data.mdb").write_bytes(b"\x00" * 64)
    with pytest.raises(DatasetError, match="pip install lmdb"):
        load_dataset(f"lsun:{tmp_path}")


def test_lsun_exported_jpeg_folder(tmp_path):
    for category, colour in (("bedroom", (10, 20, 30)), ("tower", (200, 100, 0))):
        (tmp_path / category).mkdir()
        for i in range(3):
            rgb(48, 32, colour).save(tmp_path / category / f"{i}.jpg")
    data = load_dataset(f"lsun:{tmp_path}", image_size=16)
    assert data.class_names == ["bedroom", "tower"] and data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    only = load_dataset(f"lsun:{tmp_path}:tower", image_size=16)
    assert only.class_names == ["tower"] and len(only) == 3
    with pytest.raises(DatasetError, match="no image subfolder named kitchen"):
        load_dataset(f"lsun:{tmp_path}:kitchen")


def fake_lmdb_module() -> types.ModuleType:
    """Just enough of the lmdb API for torchvision's LSUN: each "database" is a folder of JPEG files."""

    class Txn:
        def __init__(self, root):
            self.files = sorted(Path(root).glob("*.jpg"))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def stat(self):
            return {"entries": len(self.files)}

        def cursor(self):
            return types.SimpleNamespace(iternext=lambda keys=True, values=False: iter(f.name.encode() for f in self.files))

        def get(self, key):
            return next(f for f in self.files if f.name.encode() == key).read_bytes()

    module = types.ModuleType("lmdb")
    module.open = lambda root, **kwargs: types.SimpleNamespace(begin=lambda write=False: Txn(root))
    return module


def test_lsun_lmdb_through_torchvision(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lmdb", fake_lmdb_module())
    monkeypatch.chdir(tmp_path)  # torchvision writes its key cache file into the current directory
    root = tmp_path / "lsun"
    for category, count in (("bedroom", 3), ("tower", 2)):
        (root / f"{category}_train_lmdb").mkdir(parents=True)
        for i in range(count):
            rgb(60, 40).save(root / f"{category}_train_lmdb" / f"{i}.jpg")
    (root / "tower_val_lmdb").mkdir()
    data = load_dataset(f"lsun:{root}", image_size=16)
    assert data.images.shape == (5, 3, 16, 16)
    assert data.class_names == ["bedroom", "tower"] and data.labels.tolist() == [0, 0, 0, 1, 1]
    towers = load_dataset(f"lsun:{root}:tower", image_size=16, max_images=1)
    assert towers.class_names == ["tower"] and len(towers) == 1
    with pytest.raises(DatasetError, match="kitchen_train_lmdb"):
        load_dataset(f"lsun:{root}:kitchen")
    (root / "tower_val_lmdb" / "0.jpg").write_bytes((root / "tower_train_lmdb" / "0.jpg").read_bytes())
    every = load_dataset(f"lsun:{root}:tower", image_size=16, split="all")
    assert every.class_names == ["tower_train", "tower_val"] and every.labels.tolist() == [0, 0, 1]
