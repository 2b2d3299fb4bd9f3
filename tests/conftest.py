"""Shared fixtures: a tiny checkpoints folder for the explorer's app tests (built once per session).

The apps must not depend on the shipped checkpoints being trained (or good), so the tests build their
own: a 32 px DCGAN of width 8 trained for a few steps on 64 synthetic faces (seconds on a CPU), plus
broken entries for the error paths. `LATENT_LAB_CHECKPOINTS` points the app at the folder and
`LATENT_LAB_CACHE` keeps everything the app derives (directions, feature maps) inside the session's
temp folder.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

TINY = "tiny-faces"  # trained, with its analysis (directions, a PCA feature map) precomputed
BARE = "tiny-faces-bare"  # the same weights without any analysis: the pages' compute buttons


@dataclass
class TinyCheckpoints:
    root: Path  # the checkpoints folder the app lists
    cache: Path  # the app's cache folder
    tiny: Path  # the trained run directory (root / TINY)
    bare: Path  # a copy of it without analysis (root / BARE)
    garbage_file: Path  # random bytes where a checkpoint path might point
    env: dict  # environment for a subprocess app server


def _train_tiny(out: Path) -> None:
    from training.run import main

    code = main(
        [
            "--dataset", "synthetic-faces:64",
            "--out", str(out),
            "--image-size", "32",
            "--g-width", "8",
            "--d-width", "8",
            "--batch-size", "16",
            "--max-steps", "8",  # 2 epochs of 4 steps: two sample grids, a history of 4 windows
            "--log-every", "2",
            "--checkpoint-every", "4",
            "--device", "cpu",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    assert code == 0, "training the tiny test checkpoint failed"


def _precompute(run_dir: Path) -> None:
    """What `python -m explorer.precompute` does, small: directions and a PCA-only feature map (no UMAP JIT)."""
    from explorer.checkpoint import load_checkpoint
    from explorer.datasets import load_dataset
    from explorer.probe import fit_attribute_probe
    from explorer.analysis import load_or_build_feature_map, load_or_compute_directions

    checkpoint = load_checkpoint(run_dir)
    dataset = load_dataset("synthetic-faces:64", image_size=32, channels=3)
    probe = fit_attribute_probe(checkpoint.discriminator, dataset)  # 64 faces: enough for Smiling and Male
    load_or_compute_directions(checkpoint, dataset, n_samples=2000, probe=probe)
    load_or_build_feature_map(checkpoint, dataset, n_real=64, n_fake=64, method="pca", probe=probe)


@pytest.fixture(scope="session", autouse=True)
def _decoded_data_cache(tmp_path_factory):
    """Every dataset the tests load is cached (as the product does) in the session's temp folder, not in $HOME."""
    saved = os.environ.get("LATENT_LAB_DATA_CACHE")
    os.environ["LATENT_LAB_DATA_CACHE"] = str(tmp_path_factory.mktemp("decoded"))
    yield
    if saved is None:
        os.environ.pop("LATENT_LAB_DATA_CACHE", None)
    else:
        os.environ["LATENT_LAB_DATA_CACHE"] = saved


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> TinyCheckpoints:
    base = tmp_path_factory.mktemp("explorer")
    root, cache = base / "checkpoints", base / "cache"
    root.mkdir()
    cache.mkdir()
    saved = {name: os.environ.get(name) for name in ("LATENT_LAB_CHECKPOINTS", "LATENT_LAB_CACHE")}
    # Point the app at the fixture folders before anything renders faces or writes caches.
    os.environ["LATENT_LAB_CHECKPOINTS"] = str(root)
    os.environ["LATENT_LAB_CACHE"] = str(cache)
    _train_tiny(root / TINY)
    shutil.copytree(root / TINY, root / BARE)
    _precompute(root / TINY)

    broken = root / "broken-run"  # listed, but its meta.json is not JSON
    broken.mkdir()
    (broken / "meta.json").write_bytes(os.urandom(256))
    garbage = root / "garbage.ckpt"
    garbage.write_bytes(os.urandom(4096))

    # The app writes hover previews into its static/ folder (it can only serve files from there);
    # remove the ones this session adds.
    thumbs = Path(__file__).resolve().parent.parent / "static" / "thumbs"
    thumbs_before = set(thumbs.iterdir()) if thumbs.is_dir() else set()

    env = {**os.environ, "LATENT_LAB_CHECKPOINTS": str(root), "LATENT_LAB_CACHE": str(cache)}
    yield TinyCheckpoints(root=root, cache=cache, tiny=root / TINY, bare=root / BARE, garbage_file=garbage, env=env)
    for folder in (set(thumbs.iterdir()) if thumbs.is_dir() else set()) - thumbs_before:
        shutil.rmtree(folder, ignore_errors=True)
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets on one torch thread: a second one only adds sync cost (up to 30x the wall time of an inversion on a
    busy 2-core box). For modules that invert or train tiny nets: `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tiny_checkpoints):
    """The tiny checkpoints folder under its short name in the app tests."""
    return tiny_checkpoints
