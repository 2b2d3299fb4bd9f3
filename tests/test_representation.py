"""The representation experiment (explorer.evaluation.representation) and the SVHN reader, on tiny data made here.

Known answers: pixels of a separable 10-class set classify far above chance; the CI is Student t;
the triangle k-means code matches a loop-by-loop reference; the row-space SVM predicts exactly what
plain LinearSVC predicts.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

from explorer.datasets import DatasetError, ImageDataset, load_dataset
from explorer.evaluation.kmeans_features import KMeansFeatures
from explorer.evaluation.representation import (
    L2SVM,
    ci95,
    draw_splits,
    evaluate_features,
    format_table,
    pixel_features,
    random_discriminator,
    representation_table,
)
from explorer.features import discriminator_features, feature_dim
from explorer.model import DCGANConfig, Discriminator

GRID = (1e-4, 1e-2, 1.0)  # a short C grid keeps the tests fast


def class_images(per_class: int, noise: float, size: int = 32, channels: int = 1, seed: int = 0) -> ImageDataset:
    """10 classes, each a fixed random +-1 pattern of 4x4-pixel cells at amplitude 60 around grey 128,
    plus Gaussian pixel noise of std `noise` (0-255 units). Small noise: linearly separable."""
    rng = np.random.default_rng(seed)
    templates = np.sign(rng.standard_normal((10, channels, size // 4, size // 4))).repeat(4, -2).repeat(4, -1)
    labels = np.repeat(np.arange(10), per_class)
    pixels = 128 + 60 * templates[labels] + rng.normal(0, noise, (len(labels), channels, size, size))
    images = torch.from_numpy(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return ImageDataset(images=images, spec="synthetic-classes", class_names=[str(k) for k in range(10)],
                        labels=torch.from_numpy(labels.astype(np.int64)))


def tiny_d(seed: int = 123, channels: int = 1) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(DCGANConfig(image_size=32, channels=channels, d_width=4)).eval()


# One draw of templates (seed 0) split into train and test rows, so both splits share the classes.
@pytest.fixture(scope="module")
def separable():
    full = class_images(per_class=30, noise=20.0)
    train_rows = np.concatenate([np.arange(k * 30, k * 30 + 20) for k in range(10)])
    test_rows = np.setdiff1d(np.arange(300), train_rows)
    split = lambda rows: ImageDataset(images=full.images[rows], spec="s", class_names=full.class_names, labels=full.labels[rows])  # noqa: E731
    return split(train_rows), split(test_rows)


@pytest.fixture(scope="module")
def table(separable):
    train, test = separable
    return representation_table(
        tiny_d(), train, test, labels_per_class=5, draws=3, seed=0, max_test=None,
        val_per_class=5, c_grid=GRID, kmeans_centroids=16, kmeans_patches=2000,
    )


def test_ci95_is_student_t_half_width():
    from scipy.stats import t

    values = [0.80, 0.82, 0.84]
    expected = t.ppf(0.975, 2) * 0.02 / math.sqrt(3)  # sample std of the three is exactly 0.02
    assert ci95(values) == pytest.approx(expected, rel=1e-12)
    assert ci95(values) == pytest.approx(0.04968, abs=1e-5)  # 4.3027 * 0.02 / 1.7321
    assert ci95([0.5, 0.5, 0.5, 0.5]) == 0.0
    assert ci95([0.7]) is None


def test_draw_splits_are_balanced_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), 12)
    splits = draw_splits(labels, labels_per_class=3, val_per_class=2, draws=4, seed=7)
    for labelled, validation in splits:
        assert np.bincount(labels[labelled]).tolist() == [3, 3, 3, 3]
        assert np.bincount(labels[validation]).tolist() == [2, 2, 2, 2]
        assert not set(labelled) & set(validation)
    assert len({tuple(lab) for lab, _ in splits}) == 4  # each draw its own sample
    again = draw_splits(labels, 3, 2, draws=2, seed=7)  # draw d does not depend on how many draws
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(again, splits))
    assert not np.array_equal(draw_splits(labels, 3, 2, 1, seed=8)[0][0], splits[0][0])
    with pytest.raises(ValueError, match="too few"):
        draw_splits(labels, labels_per_class=10, val_per_class=5, draws=1, seed=0)


def test_table_structure_and_known_answers(table, separable):
    results, protocol = table["results"], table["protocol"]
    D = tiny_d()
    assert list(results) == ["discriminator", "pixels", "kmeans", "random_d"]
    assert {m: r["dim"] for m, r in results.items()} == {
        "discriminator": feature_dim(D), "pixels": 32 * 32, "kmeans": 4 * 16, "random_d": feature_dim(D),
    }
    assert protocol["feature_dims"]["kmeans"] == 64 and protocol["test_size"] == 100
    assert protocol["labelled"] == 50 and protocol["validation"] == 50 and protocol["draws"] == 3
    for row in results.values():
        assert len(row["accuracies"]) == len(row["C"]) == 3
        assert set(row["C"]) <= set(GRID)  # C is chosen from the grid
        assert row["accuracy_mean"] == pytest.approx(np.mean(row["accuracies"]))
        assert row["accuracy_ci95"] == pytest.approx(ci95(row["accuracies"]))
        assert row["error_mean"] == pytest.approx(1 - row["accuracy_mean"])
        assert row["accuracy_mean"] > 0.3  # chance is 0.1
    assert results["pixels"]["accuracy_mean"] >= 0.9  # separable by construction
    json.dumps(table, allow_nan=False)  # JSON-serialisable as is
    text = format_table(table)
    assert text.count("\n| ") == 6 and "raw pixels" in text and "± " in text and "| 64 |" in text


def test_reproducible_by_seed_and_draws_differ():
    train, test = class_images(40, noise=110.0, seed=1), class_images(10, noise=110.0, seed=1)
    run = lambda seed: representation_table(  # noqa: E731
        None, train, test, labels_per_class=3, draws=4, seed=seed, methods=("pixels",), max_test=None,
        val_per_class=3, c_grid=GRID,
    )["results"]["pixels"]
    timing = ("seconds", "feature_seconds")
    first, second, other = ({k: v for k, v in run(s).items() if k not in timing} for s in (0, 0, 1))
    assert first == second
    assert first["accuracies"] != other["accuracies"]
    assert len(set(first["accuracies"])) > 1  # noisy data: each draw's labelled set gives another score
    assert 0.1 < first["accuracy_mean"] < 1.0


def test_l2svm_row_space_fit_equals_plain_linearsvc():
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 300)), np.repeat(np.arange(4), 10)
    x[np.arange(40), y] += 3.0
    x_new = rng.standard_normal((25, 300))
    svm = L2SVM(x, y)
    assert svm.reduced.shape == (40, 40)
    for c in (1e-3, 1e-1):
        coef, intercept, converged = svm.fit(c)
        plain = LinearSVC(penalty="l2", loss="squared_hinge", C=c, dual=True, max_iter=10_000, random_state=0).fit(x, y)
        assert converged
        np.testing.assert_allclose(coef, plain.coef_, atol=1e-3)
        assert np.array_equal(svm.predict(coef, intercept, x_new), plain.predict(x_new))


def test_evaluate_features_picks_c_on_validation_only():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 20)
    x = rng.standard_normal((60, 50))
    x[:, :3] += 2.0 * np.eye(3)[y]  # class k shifts feature k
    splits = draw_splits(y, 5, 5, draws=2, seed=0)
    out = evaluate_features(x, y, x, y, splits, c_grid=(1e-3, 1e-1))
    assert set(out["C"]) <= {1e-3, 1e-1} and out["dim"] == 50 and out["svm_fits"] >= 2


def _reference_triangle(km: KMeansFeatures, image: np.ndarray) -> np.ndarray:
    """Loop-by-loop Coates & Ng encoding of one (C, S, S) image: the known answer for transform()."""
    patch, stride = km._geometry(image.shape[-1])
    side = (image.shape[-1] - patch) // stride + 1
    half = (side + 1) // 2
    centers, mean, white = km.centers_.double().numpy(), km.mean_.double().numpy(), km.whiten_.double().numpy()
    pooled = np.zeros((4, km.centroids))
    for i in range(side):
        for j in range(side):
            x = image[:, i * stride : i * stride + patch, j * stride : j * stride + patch].astype(np.float64).ravel()
            x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10.0)
            w = (x - mean) @ white
            z = np.sqrt(((w - centers) ** 2).sum(1))
            pooled[2 * (i >= half) + (j >= half)] += np.maximum(0.0, z.mean() - z)
    return pooled.ravel()


@pytest.mark.parametrize("size,channels,patch", [(32, 1, 6), (16, 3, 5)])
def test_kmeans_features_dimension_and_reference(size, channels, patch):
    images = class_images(4, noise=30.0, size=size, channels=channels).images
    km = KMeansFeatures(centroids=8, n_patches=3000, seed=0).fit(images)
    assert km._geometry(size) == (patch, 1) and km.dim == 32
    assert km.centers_.shape == (8, channels * patch * patch)
    features = km.transform(images[:3])
    assert features.shape == (3, 4 * 8) and features.dtype == np.float32 and (features >= 0).all()
    np.testing.assert_allclose(features[1], _reference_triangle(km, images[1].numpy()), rtol=1e-3, atol=1e-2)
    again = KMeansFeatures(centroids=8, n_patches=3000, seed=0).fit(images)
    assert torch.equal(again.centers_, km.centers_)  # seeded


def test_random_d_is_fresh_seeded_and_leaves_global_rng_alone():
    D = tiny_d()
    state = torch.random.get_rng_state()
    fresh, same = random_discriminator(D, seed=5), random_discriminator(D, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert type(fresh) is Discriminator and fresh.config == D.config and not fresh.training
    weights = [m.weight for m in fresh.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(torch.equal(a, b) for a, b in zip(weights, [m.weight for m in same.modules() if isinstance(m, torch.nn.Conv2d)]))
    assert not torch.equal(fresh.blocks[0][0].weight, D.blocks[0][0].weight)
    assert torch.cat([w.flatten() for w in weights]).std().item() == pytest.approx(0.02, rel=0.1)  # N(0, 0.02)
    images = class_images(2, noise=10.0).images
    assert not np.allclose(discriminator_features(fresh, images), discriminator_features(D, images))


def test_other_image_size_is_resized_and_channel_mismatch_raises():
    train, test = class_images(12, noise=20.0, size=28), class_images(3, noise=20.0, size=28)
    out = representation_table(tiny_d(), train, test, labels_per_class=2, draws=1, methods=("discriminator", "pixels"),
                               val_per_class=2, c_grid=GRID, max_test=20)
    assert out["protocol"]["image_size"] == 32 and out["results"]["pixels"]["dim"] == 32 * 32
    assert out["protocol"]["test_size"] == 20 and out["results"]["pixels"]["accuracy_ci95"] is None
    rgb = class_images(12, noise=20.0, channels=3)
    with pytest.raises(ValueError, match="3 channel.*takes 1.*channels=1"):
        representation_table(tiny_d(), rgb, rgb, labels_per_class=2, draws=1, val_per_class=2)
    with pytest.raises(ValueError, match="unknown method"):
        representation_table(tiny_d(), train, test, methods=("hog",))
    with pytest.raises(ValueError, match="need a discriminator"):
        representation_table(None, train, test, methods=("random_d",))
    assert pixel_features(train.images[:2]).min() >= -1.0 and pixel_features(train.images[:2]).max() <= 1.0


# ---------------------------------------------------------------------------------------------
# SVHN reader
# ---------------------------------------------------------------------------------------------


def write_svhn(folder, name: str, labels: list[int], seed: int) -> np.ndarray:
    """A fake SVHN .mat: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0, as the real files."""
    from scipy.io import savemat

    x = np.random.default_rng(seed).integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": x, "y": np.array(labels, dtype=np.uint8).reshape(-1, 1)})
    return x


def test_svhn_reader(tmp_path, monkeypatch):
    import torchvision.datasets.svhn as tv_svhn

    train_x = write_svhn(tmp_path, "train_32x32.mat", [10, 1, 2, 10, 9], seed=0)
    test_x = write_svhn(tmp_path, "test_32x32.mat", [3, 10], seed=1)
    with pytest.raises(DatasetError, match="unmodified"):  # the fake files fail torchvision's md5 check
        load_dataset(f"svhn:{tmp_path}", image_size=32)
    with monkeypatch.context() as patch:
        patch.setattr(tv_svhn, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
        train = load_dataset(f"svhn:{tmp_path}", image_size=32, split="train")
        assert train.images.shape == (5, 3, 32, 32) and train.images.dtype == torch.uint8
        assert train.labels.tolist() == [0, 1, 2, 0, 9]  # label 10 is digit 0
        assert train.class_names == [str(d) for d in range(10)]
        assert np.array_equal(train.images[3].numpy(), train_x[..., 3].transpose(2, 0, 1))  # (H, W, C, N) -> (C, H, W)
        test = load_dataset(f"svhn:{tmp_path}", image_size=64, channels=1, split="test")
        assert test.images.shape == (2, 1, 64, 64) and test.labels.tolist() == [3, 0]
        assert len(load_dataset(f"svhn:{tmp_path}", image_size=32, split="all")) == 7
        with pytest.raises(DatasetError, match="no 'val' split"):
            load_dataset(f"svhn:{tmp_path}", split="val")
    assert test_x.shape == (32, 32, 3, 2)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(DatasetError, match="missing SVHN file.*test_32x32.mat"):
        load_dataset(f"svhn:{tmp_path}", split="test")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"svhn:{tmp_path / 'nope'}")
