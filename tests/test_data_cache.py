"""The decoded-data cache (explorer.datasets.cache): written once, memory-mapped after, rebuilt when files change."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.datasets import cache as decoded_cache
from explorer.datasets import decode, load_dataset
from tests.fakedata import make_celeba, make_image_folder


def entries(folder) -> list:
    return sorted(path for path in folder.iterdir() if not path.name.startswith("."))


@pytest.fixture
def no_decoding(monkeypatch):
    """Makes any decode fail: a load that still works was served by the cache."""

    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    def apply():
        monkeypatch.setattr(decode, "decode_image_file", fail)

    return apply


def test_second_load_is_memory_mapped_from_the_cache(tmp_path, no_decoding):
    root = make_image_folder(tmp_path / "data", n_per_class=3)
    (root / "class_a" / "broken.png").write_bytes(b"")
    cache = tmp_path / "cache"
    first = load_dataset(f"folder:{root}", image_size=16, cache=cache)
    [entry] = entries(cache)
    assert sorted(p.name for p in entry.iterdir()) == ["header.json", "images.npy", "labels.npy"]  # no pickle
    header = json.loads((entry / "header.json").read_text())
    assert header["count"] == 6 and header["class_names"] == ["class_a", "class_b"] and header["skipped"] == {"empty file": 1}

    no_decoding()
    second = load_dataset(f"folder:{root}", image_size=16, cache=cache)
    assert second.images_file == entry / "images.npy"
    with open("/proc/self/maps") as maps:  # memory-mapped, not read into memory
        assert str(entry / "images.npy") in maps.read()
    assert torch.equal(second.images, first.images) and torch.equal(second.labels, first.labels)
    assert second.class_names == first.class_names and second.skipped == {"empty file": 1}
    second.images[0] += 1  # copy-on-write: the cache file is never written through
    assert torch.equal(load_dataset(f"folder:{root}", image_size=16, cache=cache).images, first.images)
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another entry
        load_dataset(f"folder:{root}", image_size=8, cache=cache)


def test_changed_files_rebuild_and_replace_the_entry(tmp_path):
    root = make_image_folder(tmp_path / "data", n_per_class=2)
    cache = tmp_path / "cache"
    before = load_dataset(f"folder:{root}", image_size=8, cache=cache)
    [old] = entries(cache)
    Image.new("RGB", (20, 20), (9, 9, 9)).save(root / "class_b" / "1.png")  # same name, new content and size
    after = load_dataset(f"folder:{root}", image_size=8, cache=cache)
    [new] = entries(cache)
    assert new != old and new.name.split("-")[0] == old.name.split("-")[0]  # same request, other files
    assert torch.equal(after.images[:3], before.images[:3]) and torch.all(after.images[3] == 9)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(root / "class_b" / "new.png")  # an added file
    assert len(load_dataset(f"folder:{root}", image_size=8, cache=cache)) == 5 and len(entries(cache)) == 1


def test_attributes_and_short_decodes_round_trip(tmp_path, no_decoding):
    root = make_celeba(tmp_path / "celeba", n=6)
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    cache = tmp_path / "cache"
    # 6 rows, one undecodable: the entry's images.npy was allocated for 6 and is cut to 5 rows.
    first = load_dataset(f"celeba:{root}", image_size=8, cache=cache)
    [entry] = entries(cache)
    assert np.load(entry / "images.npy").shape == (5, 3, 8, 8)
    assert os.path.getsize(entry / "images.npy") == 128 + 5 * 3 * 8 * 8
    no_decoding()
    second = load_dataset(f"celeba:{root}", image_size=8, cache=cache)
    assert torch.equal(second.images, first.images) and torch.equal(second.attributes, first.attributes)
    assert second.attribute_names == first.attribute_names and second.skipped == first.skipped == {"not an image": 1}


def test_synthetic_faces_factors_and_the_opt_out(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setenv(decoded_cache.ENV, str(tmp_path / "cache"))
    faces = load_dataset("synthetic-faces:5", image_size=16)  # "auto": the environment's folder
    [entry] = entries(tmp_path / "cache")
    again = load_dataset("synthetic-faces:5", image_size=16)
    assert again.images_file == entry / "images.npy" and torch.equal(again.factors, faces.factors)
    assert again.factor_names == faces.factor_names and again.attributes.dtype == torch.uint8
    assert not (tmp_path / "user-cache").exists()  # rendered for the decoded cache: no second .npz copy
    off = load_dataset("synthetic-faces:5", image_size=16, cache="off")
    assert off.images_file is None and torch.equal(off.images, faces.images)
    monkeypatch.setenv(decoded_cache.ENV, "off")
    assert decoded_cache.resolve_cache_dir("auto") is None


def test_unusable_cache_folder_only_warns(tmp_path):
    root = make_image_folder(tmp_path / "data", n_per_class=2)
    (tmp_path / "a-file").write_text("x")
    with pytest.warns(RuntimeWarning, match="not usable"):
        data = load_dataset(f"folder:{root}", image_size=8, cache=tmp_path / "a-file" / "cache")
    assert len(data) == 4 and data.images_file is None


def test_damaged_entry_and_abandoned_builds_are_replaced(tmp_path):
    root = make_image_folder(tmp_path / "data", n_per_class=2)
    cache = tmp_path / "cache"
    first = load_dataset(f"folder:{root}", image_size=8, cache=cache).images.clone()  # not the mapping damaged below
    [entry] = entries(cache)
    (entry / "images.npy").write_bytes(b"garbage")
    killed = cache / ".tmp-0-0-999999999-x"  # a builder that died mid-decode (no such process)
    killed.mkdir()
    again = load_dataset(f"folder:{root}", image_size=8, cache=cache)
    assert torch.equal(again.images, first) and again.images_file == entry / "images.npy"
    assert not killed.exists() and not list(cache.glob(".tmp-*"))
