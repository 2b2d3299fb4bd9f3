"""Dataset specs, the CelebA, folder and synthetic-faces readers, on small datasets each test writes under tmp_path.

Fashion-MNIST, CIFAR-10 and LSUN (packaged formats): tests/test_datasets_archives.py.
"""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.datasets import DatasetError, DatasetSpec, center_crop_resize, decode, load_dataset, parse_dataset_spec
from tests.fakedata import CELEBA_ATTRIBUTES, attribute_rows, celeba_colour, rgb, write_celeba


# ---------------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [
    "synthetic-faces", "synthetic-faces:100", "fashion-mnist:{tmp}", "celeba:{tmp}", "folder:{tmp}",
    "cifar10:{tmp}", "lsun:{tmp}", "lsun:{tmp}:bedroom,church_outdoor",
])  # fmt: skip
def test_spec_round_trips(tmp_path, template):
    text = template.format(tmp=tmp_path)
    spec = parse_dataset_spec(text)
    assert str(spec) == text
    assert parse_dataset_spec(str(spec)) == spec


def test_spec_fields(tmp_path):
    assert parse_dataset_spec("synthetic-faces") == DatasetSpec("synthetic-faces", None)
    assert parse_dataset_spec("synthetic-faces:12").count == 12
    assert parse_dataset_spec("fashion-mnist", check_exists=False) == DatasetSpec("fashion-mnist", None)
    assert parse_dataset_spec(f"CelebA:{tmp_path}") == DatasetSpec("celeba", str(tmp_path))
    lsun = parse_dataset_spec(f"lsun:{tmp_path}:bedroom,tower")
    assert (lsun.path, lsun.categories) == (str(tmp_path), ("bedroom", "tower"))


def test_spec_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset kind 'mnist'.*celeba.*lsun"):
        parse_dataset_spec("mnist:/data")
    with pytest.raises(DatasetError, match="celeba needs the dataset folder"):
        parse_dataset_spec("celeba")
    with pytest.raises(DatasetError, match="empty path"):
        parse_dataset_spec("folder:")
    with pytest.raises(DatasetError, match="does not exist"):
        parse_dataset_spec(f"celeba:{tmp_path / 'nope'}")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="is not a folder"):
        parse_dataset_spec(f"folder:{tmp_path / 'file.txt'}")
    for bad in ("synthetic-faces:abc", "synthetic-faces:0", "synthetic-faces:"):
        with pytest.raises(DatasetError, match="positive number"):
            parse_dataset_spec(bad)
    # check_exists=False: only the syntax is checked
    assert parse_dataset_spec("celeba:/no/such/dir", check_exists=False).path == "/no/such/dir"


def test_load_argument_errors(tmp_path):
    with pytest.raises(DatasetError, match="channels"):
        load_dataset(f"folder:{tmp_path}", channels=2)
    with pytest.raises(DatasetError, match="split"):
        load_dataset(f"folder:{tmp_path}", split="validation")
    with pytest.raises(DatasetError, match="max_images"):
        load_dataset(f"folder:{tmp_path}", max_images=0)


# ---------------------------------------------------------------------------------------------
# CelebA
# ---------------------------------------------------------------------------------------------

def test_celeba_both_layouts_agree(tmp_path):
    names = [f"{k:06d}.jpg" for k in range(1, 7)]
    rows = attribute_rows(names)
    partition = {name: [0, 0, 0, 0, 1, 2][i] for i, name in enumerate(names)}
    write_celeba(tmp_path / "official", "official", names, rows, partition)
    write_celeba(tmp_path / "kaggle", "kaggle", names, rows, partition)

    official = load_dataset(f"celeba:{tmp_path / 'official'}", image_size=32, split="all")
    kaggle = load_dataset(f"celeba:{tmp_path / 'kaggle'}", image_size=32, split="all")
    assert official.images.shape == (6, 3, 32, 32)
    assert torch.equal(official.images, kaggle.images) and torch.equal(official.attributes, kaggle.attributes)
    assert official.attribute_names == kaggle.attribute_names == CELEBA_ATTRIBUTES
    assert official.attributes.dtype == torch.uint8
    expected = torch.tensor([[1 if v == 1 else 0 for v in rows[n]] for n in names], dtype=torch.uint8)
    assert torch.equal(official.attributes, expected)
    assert official.skipped == {}

    # The crop is exactly the 108x108 box: every output pixel has the box colour (JPEG: +-10).
    for k in range(1, 7):
        colour = torch.tensor(celeba_colour(k), dtype=torch.float32)
        error = (official.images[k - 1].float() - colour[:, None, None]).abs()
        assert error.max() < 20, (k, error.max())

    # list_eval_partition: 0 train, 1 val, 2 test
    assert len(load_dataset(f"celeba:{tmp_path / 'official'}", image_size=32)) == 4
    val = load_dataset(f"celeba:{tmp_path / 'kaggle'}", image_size=32, split="val")
    assert torch.equal(val.images, official.images[4:5])
    test = load_dataset(f"celeba:{tmp_path / 'official'}", image_size=64, split="test", channels=1)
    assert test.images.shape == (1, 1, 64, 64) and torch.equal(test.attributes, expected[5:])
    first = load_dataset(f"celeba:{tmp_path / 'official'}", image_size=32, split="all", max_images=2)
    assert torch.equal(first.images, official.images[:2]) and torch.equal(first.attributes, expected[:2])


def test_celeba_mismatched_rows_are_skipped(tmp_path):
    on_disk = [f"{k:06d}.jpg" for k in (1, 2, 3, 8)]  # 000008.jpg has no attribute row
    rows = attribute_rows([f"{k:06d}.jpg" for k in (1, 2, 3, 7)])  # 000007.jpg is missing on disk
    write_celeba(tmp_path, "official", on_disk, rows)  # no partition file: every split is all images
    (tmp_path / "img_align_celeba" / "000002.jpg").write_bytes(b"")  # and one empty file
    data = load_dataset(f"celeba:{tmp_path}", image_size=32, split="test")
    assert len(data) == 2
    assert data.skipped == {"missing image": 1, "no attribute row": 1, "empty file": 1}
    expected = torch.tensor([[1 if v == 1 else 0 for v in rows[n]] for n in ("000001.jpg", "000003.jpg")], dtype=torch.uint8)
    assert torch.equal(data.attributes, expected)


def test_celeba_errors(tmp_path):
    with pytest.raises(DatasetError, match="no img_align_celeba"):
        load_dataset(f"celeba:{tmp_path}")
    write_celeba(tmp_path / "nomatch", "kaggle", ["000001.jpg"], attribute_rows(["000009.jpg"]))
    with pytest.raises(DatasetError, match="no image matches a row"):
        load_dataset(f"celeba:{tmp_path / 'nomatch'}")
    write_celeba(tmp_path / "bad", "official", ["000001.jpg"], {"000001.jpg": [1] * 39})
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.txt:3: expected a file name and 40 values"):
        load_dataset(f"celeba:{tmp_path / 'bad'}")


def test_celeba_annotations_in_latin1_or_with_a_bom(tmp_path):
    names = [f"{k:06d}.jpg" for k in range(1, 4)]
    rows = attribute_rows(names)
    write_celeba(tmp_path / "latin1", "official", names, rows)
    attr = tmp_path / "latin1" / "list_attr_celeba.txt"
    # An editor re-saved it in Latin-1 and renamed one attribute "Lächeln" (0xE4 is not UTF-8).
    text = attr.read_text().replace("Smiling", "L\u00e4cheln")
    attr.write_bytes(text.encode("latin-1"))
    data = load_dataset(f"celeba:{tmp_path / 'latin1'}", image_size=16)
    assert data.attribute_names[CELEBA_ATTRIBUTES.index("Smiling")] == "L\u00e4cheln" and len(data) == 3

    # Kaggle's CSV saved with a UTF-8 byte-order mark: the header still starts with image_id.
    write_celeba(tmp_path / "bom", "kaggle", names, rows, {name: 0 for name in names})
    for name in ("list_attr_celeba.csv", "list_eval_partition.csv"):
        path = tmp_path / "bom" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    bom = load_dataset(f"celeba:{tmp_path / 'bom'}", image_size=16)
    assert bom.attribute_names == CELEBA_ATTRIBUTES and torch.equal(bom.attributes, data.attributes)
    # A header that is really wrong says what it found.
    path = tmp_path / "bom" / "list_attr_celeba.csv"
    path.write_text("id,Smiling\n000001.jpg,1\n")
    with pytest.raises(DatasetError, match="expected a header line starting with image_id, found 'id'"):
        load_dataset(f"celeba:{tmp_path / 'bom'}", image_size=16)


# ---------------------------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------------------------


def make_messy_folder(root: Path) -> None:
    (root / "cat" / "nested" / "deeper").mkdir(parents=True)
    (root / "dog").mkdir()
    rgb(40, 30).save(root / "cat" / "a.png")
    rgb(50, 50).save(root / "cat" / "nested" / "deeper" / "b.JPG")
    Image.new("L", (20, 20), 77).save(root / "cat" / "gray.png")
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(root / "dog" / "rgba.png")  # fully transparent
    Image.new("P", (20, 20), 3).save(root / "dog" / "palette.gif")
    full = root / "dog" / "full.jpg"
    rgb(64, 64).save(full, quality=90)
    (root / "dog" / "trunc.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    (root / "dog" / "empty.png").write_bytes(b"")
    (root / "dog" / "text.png").write_text("this is not a PNG\n")
    (root / "dog" / "notes.txt").write_text("ignored: not an image extension")
    (root / "dog" / "._rgba.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # hidden: ignored
    rgb(10, 10).save(root / "loose.png")  # next to the class folders


def test_folder_with_classes_and_broken_files(tmp_path):
    make_messy_folder(tmp_path)
    data = load_dataset(f"folder:{tmp_path}", image_size=16)
    # sorted: cat/a.png, cat/gray.png, cat/nested/deeper/b.JPG, dog/palette.gif, dog/rgba.png
    assert data.images.shape == (5, 3, 16, 16)
    assert data.class_names == ["cat", "dog"] and data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.skipped == {"truncated": 1, "empty file": 1, "not an image": 1, "outside class folders": 1}
    assert torch.all(data.images[1] == 77)  # grey -> RGB
    assert torch.all(data.images[4] == 255)  # transparent -> composited on white
    assert torch.all(data.images[0, 0] == 200) and torch.all(data.images[0, 1] == 30)

    grey = load_dataset(f"folder:{tmp_path}", image_size=16, channels=1)
    assert grey.images.shape == (5, 1, 16, 16) and torch.all(grey.images[1] == 77)

    # max_images: the first N decodable files in sorted order; only files looked at are counted
    first = load_dataset(f"folder:{tmp_path}", image_size=16, max_images=4)
    assert torch.equal(first.images, data.images[:4]) and first.labels.tolist() == [0, 0, 0, 1]
    assert first.skipped == {"empty file": 1, "outside class folders": 1}


def test_folder_unlabelled_nested_and_center_crop(tmp_path):
    (tmp_path / "only" / "deep").mkdir(parents=True)
    wide = np.zeros((30, 40, 3), np.uint8)
    wide[:, :5] = wide[:, 35:] = (255, 0, 0)  # red margins outside the centred 30x30 square
    wide[:, 5:35] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "only" / "deep" / "wide.png")
    rgb(12, 12).save(tmp_path / "only" / "small.bmp")
    rgb(12, 12).save(tmp_path / "top.webp", lossless=True)
    data = load_dataset(f"folder:{tmp_path}", image_size=30)  # a single subfolder: no labels
    assert data.class_names is None and data.labels is None and len(data) == 3
    assert torch.all(data.images[0, 2] == 255) and torch.all(data.images[0, 0] == 0)  # wide.png: the blue centre only


def test_folder_huge_images_are_skipped(tmp_path, monkeypatch):
    rgb(40, 30).save(tmp_path / "a.png")
    rgb(20, 20).save(tmp_path / "b.png")
    # A 200-byte PNG whose header claims 20000x20000 (400 M pixels): PIL refuses it at open
    # (DecompressionBombError); it must be counted, never decoded.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)  # width, height, 8 bit, RGB
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "c.png").write_bytes(png)
    data = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert len(data) == 2 and data.skipped == {"too large": 1}

    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 1000)  # 40x30 = 1200 pixels is now too large
    data = load_dataset(f"folder:{tmp_path}", image_size=8)
    assert len(data) == 1 and data.skipped == {"too large": 2}


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no image files"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "broken.png").write_bytes(b"")
    (tmp_path / "broken.jpg").write_text("nope")
    with pytest.raises(DatasetError, match="none of the 2 image files could be decoded"):
        load_dataset(f"folder:{tmp_path}")


# ---------------------------------------------------------------------------------------------
# Synthetic faces
# ---------------------------------------------------------------------------------------------


def test_synthetic_faces(tmp_path, monkeypatch):
    faces = pytest.importorskip("explorer.datasets.synthetic_faces")
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path))  # keep load_cached's .npz cache out of $HOME
    data = load_dataset("synthetic-faces:6", image_size=32)
    assert data.images.shape == (6, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.attributes.shape == (6, len(faces.ATTRIBUTE_NAMES)) and data.attributes.dtype == torch.uint8
    assert data.factors.shape == (6, len(faces.FACTOR_NAMES)) and data.factors.dtype == torch.float32
    assert data.attribute_names == list(faces.ATTRIBUTE_NAMES) and data.factor_names == list(faces.FACTOR_NAMES)
    assert data.spec == "synthetic-faces:6"
    first = load_dataset("synthetic-faces:6", image_size=32, max_images=4)  # renders 4: face i depends on (seed, i)
    assert torch.equal(first.images, data.images[:4]) and torch.equal(first.factors, data.factors[:4])
    grey = load_dataset("synthetic-faces:6", image_size=32, channels=1, split="test")
    assert grey.images.shape == (6, 1, 32, 32)


def test_synthetic_faces_size_is_bounded_before_rendering(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=r"synthetic-faces:99999999999999 rendered at 64 px needs 1\.26e\+09 GB, more than"):
        load_dataset("synthetic-faces:99999999999999")
    from training.run import main

    for dry_run in ([], ["--dry-run"]):
        assert main(["--dataset", "synthetic-faces:99999999999999", "--out", str(tmp_path / "run"), "--device", "cpu", *dry_run]) == 2
    assert time.perf_counter() - start < 10 and not (tmp_path / "run").exists()


def test_shared_crop_resize_helper():
    images = torch.arange(2 * 3 * 20 * 30, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(2, 3, 20, 30)
    out = center_crop_resize(images, 20)
    assert torch.equal(out, images[..., 5:25])  # the centred 20x20 square, no resize
    assert center_crop_resize(images, 8).shape == (2, 3, 8, 8)
    assert center_crop_resize(images[0], 8, crop=10).shape == (3, 8, 8)
