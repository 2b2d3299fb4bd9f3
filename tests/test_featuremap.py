"""The feature map (layout, labels, nearest neighbours, what a point shows, D's accuracy), the analysis cache
(explorer.analysis) and the precompute CLI."""
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer import analysis
from explorer.analysis import (
    cached_directions,
    cached_feature_map,
    feature_map_cache_path,
    load_or_build_feature_map,
    load_or_compute_directions,
)
from explorer.checkpoint import load_checkpoint, write_checkpoint_dir
from explorer.directions import Direction, DirectionSet
from explorer.probe import fit_attribute_probe
from explorer.featuremap import (
    UNKNOWN,
    FeatureMap,
    build_feature_map,
    discriminator_accuracy,
    map_dataset,
    nearest_real,
    point_images,
)
from explorer.generate import generate, realism
from explorer.images import to_uint8
from explorer.latent import z_from_seeds
from explorer.model import DCGANConfig, Discriminator, Generator
from explorer.precompute import main as precompute
from tests.test_directions import brightness_dataset

CONFIG = DCGANConfig(image_size=32, g_width=8, d_width=8, z_dim=16)


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "user-cache"))
    torch.manual_seed(0)
    meta = {"model": CONFIG.to_dict(), "step": 1, "dataset": {"spec": f"folder:{tmp_path / 'not-here'}"}}
    write_checkpoint_dir(tmp_path / "ckpt", meta, {"generator": Generator(CONFIG), "discriminator": Discriminator(CONFIG)})
    return load_checkpoint(tmp_path / "ckpt")


@pytest.fixture(scope="module")
def dataset():
    return brightness_dataset(n=60)


def test_pca_feature_map_holds_real_then_generated_points(checkpoint, dataset):
    calls = []
    fm = build_feature_map(checkpoint, dataset, n_real=40, n_fake=30, seed=3, method="pca", progress=lambda f, m: calls.append(f))
    assert fm.coords_umap is None and fm.coords_pca.shape == (70, 2) and fm.features_pca50.shape == (70, 50)
    assert fm.is_real.tolist() == [True] * 40 + [False] * 30
    real = fm.index[:40]
    assert len(set(real)) == 40 and (np.diff(real) > 0).all() and real.max() < 60
    assert fm.index[40:].tolist() == list(range(3, 33))  # generated points are seeds seed .. seed + n_fake - 1
    assert fm.label_kind == "attribute" and fm.label_names == ["Bright", "Noise"]
    assert np.array_equal(fm.labels[:40], dataset.attributes.numpy()[real]) and (fm.labels[40:] == UNKNOWN).all()
    fakes = generate(checkpoint.generator, z_from_seeds(range(3, 33), CONFIG.z_dim))
    np.testing.assert_allclose(fm.d_score[40:], realism(checkpoint.discriminator, fakes), rtol=1e-4)
    assert calls == sorted(calls) and calls[-1] == 1.0
    # the probe labels the generated points; real points keep their ground truth
    probe = fit_attribute_probe(checkpoint.discriminator, dataset, max_per_class=30)
    labelled = build_feature_map(checkpoint, dataset, n_real=40, n_fake=30, seed=3, method="pca", probe=probe)
    assert np.array_equal(labelled.labels[:40], fm.labels[:40]) and set(np.unique(labelled.labels[40:, 0])) <= {0, 1}


def test_generated_only_map_without_a_dataset(checkpoint):
    fm = build_feature_map(checkpoint, None, n_fake=20, method="pca")
    assert not fm.is_real.any() and fm.labels is None and fm.dataset_spec is None
    assert fm.features_pca50.shape == (20, 20)  # PCA keeps at most N components
    with pytest.raises(ValueError, match="no real images"):
        nearest_real(fm, 0)


def test_nearest_real_finds_a_real_point_itself(checkpoint, dataset):
    fm = build_feature_map(checkpoint, dataset, n_real=40, n_fake=10, method="pca")
    for i in (0, 17, 39):
        assert nearest_real(fm, i, k=5)[0] == fm.index[i]
        assert nearest_real(fm, i, k=3, space="pixel", dataset=dataset)[0] == fm.index[i]
    neighbours = nearest_real(fm, 45, k=5, space="pixel", dataset=dataset, generator=checkpoint.generator)
    assert len(neighbours) == 5 and set(neighbours) <= set(fm.index[:40])
    with pytest.raises(ValueError, match="generator"):
        nearest_real(fm, 45, space="pixel", dataset=dataset)


def test_umap_layout_of_a_few_hundred_points(checkpoint):
    # the one UMAP test: umap-learn compiles its numba kernels on first use (~7 s per process)
    fm = build_feature_map(checkpoint, brightness_dataset(n=150), n_real=150, n_fake=150, method="umap")
    assert fm.coords_umap.shape == (300, 2) and np.isfinite(fm.coords_umap).all()


def test_cache_hit_then_rebuild_when_the_generator_changes(checkpoint, dataset, monkeypatch):
    builds = []
    build = analysis.build_feature_map
    monkeypatch.setattr(analysis, "build_feature_map", lambda *a, **k: builds.append(1) or build(*a, **k))
    args = {"n_real": 20, "n_fake": 10, "method": "pca"}
    assert cached_feature_map(checkpoint, dataset, **args) is None  # the lookup alone never builds
    first = load_or_build_feature_map(checkpoint, dataset, **args)
    path = feature_map_cache_path(checkpoint, 20, 10, 0, "pca")
    assert path.parent == checkpoint.path / "analysis" and path.is_file()
    second = load_or_build_feature_map(checkpoint, dataset, **args)
    assert len(builds) == 1 and np.array_equal(cached_feature_map(checkpoint, dataset, **args).index, first.index)
    for name in ("coords_pca", "is_real", "index", "labels", "d_score", "features_pca50"):
        assert np.array_equal(getattr(first, name), getattr(second, name))
    assert second.label_names == first.label_names and second.dataset_spec == "toy"
    load_or_build_feature_map(checkpoint, None, **args)  # a caller without the dataset still gets the cached map
    assert len(builds) == 1
    checkpoint.meta["files"]["generator"]["sha256"] = "0" * 64  # as if the generator had been retrained
    load_or_build_feature_map(checkpoint, dataset, **args)
    assert len(builds) == 2


def test_directions_share_the_cache(checkpoint, monkeypatch):
    computed = []
    compute = analysis.compute_directions
    monkeypatch.setattr(analysis, "compute_directions", lambda *a, **k: computed.append(1) or compute(*a, **k))
    assert cached_directions(checkpoint, k=3) is None and not computed
    first = load_or_compute_directions(checkpoint, k=3)
    second = load_or_compute_directions(checkpoint, k=3)
    assert len(computed) == 1 and list(first) == list(second) == list(cached_directions(checkpoint, k=3))
    assert second.skipped == first.skipped
    assert np.array_equal(first["sefa:0"].vector, second["sefa:0"].vector)


def test_cache_falls_back_to_the_user_folder_when_the_checkpoint_is_read_only(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(analysis.os, "access", lambda path, mode: False)
    path = feature_map_cache_path(checkpoint, 20, 10, 0, "pca")
    sha = checkpoint.meta["files"]["generator"]["sha256"]
    assert path.parent == tmp_path / "user-cache" / sha
    load_or_build_feature_map(checkpoint, None, n_fake=10, method="pca")
    assert (tmp_path / "user-cache" / sha).is_dir() and not (checkpoint.path / "analysis").exists()


def test_a_corrupt_cache_file_is_rebuilt(checkpoint):
    path = feature_map_cache_path(checkpoint, 5000, 10, 0, "pca")
    path.parent.mkdir()
    path.write_bytes(b"not a zip file")
    fm = load_or_build_feature_map(checkpoint, None, n_fake=10, method="pca")
    assert len(fm.index) == 10 and np.load(path, allow_pickle=False)["index"].shape == (10,)


def test_point_images_are_the_dataset_image_or_the_seeds_sample(checkpoint, dataset):
    fm = build_feature_map(checkpoint, dataset, n_real=10, n_fake=5, seed=2, method="pca")
    images = point_images(checkpoint.generator, dataset, fm, np.array([11, 3]))
    fake = to_uint8(generate(checkpoint.generator, z_from_seeds([fm.index[11]], CONFIG.z_dim)))[0]
    assert np.array_equal(images[0], fake)
    assert np.array_equal(images[1], dataset.images[fm.index[3]].permute(1, 2, 0).numpy())
    assert point_images(checkpoint.generator, None, fm, np.array([3]))[0] is None  # a real point without the dataset
    asked = []
    assert map_dataset(fm, lambda n: asked.append(n) or dataset) is dataset and asked == [int(fm.index[:10].max()) + 1]


def test_discriminator_accuracy_and_what_islands_mean():
    fm = _labelled_map([0, 1, 0, 1, 0], ["a", "b"], "class")  # real D 0.9, 0.8; generated 0.1, 0.2, 0.3
    accuracy = discriminator_accuracy(fm)
    assert (accuracy.real, accuracy.generated, accuracy.balanced) == (1.0, 1.0, 1.0)
    assert "by construction" in accuracy.note and "not by themselves poor coverage" in accuracy.note
    fm.d_score[:] = [0.9, 0.3, 0.6, 0.7, 0.1]
    accuracy = discriminator_accuracy(fm)
    assert (accuracy.real, accuracy.generated, accuracy.balanced) == (0.5, pytest.approx(1 / 3), pytest.approx(5 / 12))
    assert accuracy.note.startswith("D tells real from generated on 42% of these points (balanced; real 50%, generated 33% correct).")
    assert "does not separate them well" in accuracy.note
    fm.d_score[:] = 0.1  # calls everything fake: right on every generated point, which is no separation at all
    assert discriminator_accuracy(fm).balanced == 0.5 and "by construction" not in discriminator_accuracy(fm).note


def test_precompute_without_the_dataset_says_so_and_writes_the_analysis(checkpoint, capsys):
    assert precompute([str(checkpoint.path), "--n-fake", "16", "--method", "pca", "--encoder-pairs", "256", "--encoder-epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "not available on this machine" in err and "generated images only" in err
    files = sorted(p.name for p in (checkpoint.path / "analysis").iterdir())
    assert files == [
        "directions-k10-samples5000-seed0.npz",
        "encoder-w32-pairs256-epochs1-seed0.safetensors",
        "featuremap-pca-real5000-fake16-seed0.npz",
    ]


def test_exact_knn_graph_is_umaps_precomputed_layout():
    from explorer.featuremap import _exact_knn

    rng = np.random.default_rng(0)
    points = rng.standard_normal((60, 5)).astype(np.float32)
    points[7] = points[3]  # a duplicate: each copy must still list itself first
    indices, distances = _exact_knn(points, 4)
    assert indices.shape == distances.shape == (60, 4) and indices.dtype == np.int32 and distances.dtype == np.float32
    assert (indices[:, 0] == np.arange(60)).all() and (distances[:, 0] == 0).all()
    brute = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(brute, np.inf)
    assert np.allclose(np.sort(brute, axis=1)[:, :3], distances[:, 1:], atol=1e-5)
    assert indices[3, 1] == 7 and indices[7, 1] == 3 and distances[3, 1] == 0


def _labelled_map(labels, names, kind):
    n = len(labels)
    return FeatureMap(
        coords_umap=None, coords_pca=np.zeros((n, 2), np.float32), is_real=np.array([True, True, False, False, False]),
        index=np.array([10, 11, 0, 1, 2]), labels=np.asarray(labels), label_names=names, label_kind=kind,
        d_score=np.array([0.9, 0.8, 0.1, 0.2, 0.3], np.float32), features_pca50=np.zeros((n, 2), np.float32), dataset_spec=None,
    )


def test_point_groups_shared_by_both_uis():
    from explorer.featuremap import ALL_CLASSES, REAL_VS_GENERATED, point_groups, point_hover_text

    # attributes (N, A): the last generated point was not labelled (no probe)
    attrs = _labelled_map([[1, 0], [0, 1], [1, 1], [0, 0], [UNKNOWN, UNKNOWN]], ["Smiling", "Male"], "attribute")
    groups = {name: members.tolist() for name, members in point_groups(attrs, "Male")}
    assert groups == {"Male": [1, 2], "not Male": [0, 3], "unlabelled": [4]}
    assert [(n, m.tolist()) for n, m in point_groups(attrs, REAL_VS_GENERATED)] == [("real", [0, 1]), ("generated", [2, 3, 4])]
    with pytest.raises(ValueError, match="no colouring"):
        point_groups(attrs, ALL_CLASSES)
    # classes (N,): every class, or one against the others
    classes = _labelled_map([0, 2, 1, 2, UNKNOWN], ["a", "b", "c"], "class")
    assert {n: m.tolist() for n, m in point_groups(classes, ALL_CLASSES)} == {"a": [0], "b": [2], "c": [1, 3], "unlabelled": [4]}
    assert {n: m.tolist() for n, m in point_groups(classes, "c")} == {"c": [1, 3], "other classes": [0, 2], "unlabelled": [4]}
    with pytest.raises(ValueError, match="no colouring 'd'"):
        point_groups(classes, "d")
    assert point_hover_text(classes, np.array([1, 3])) == ["real #11<br>D(x) 0.80", "seed 1<br>D(x) 0.20"]


def test_probe_is_fitted_once_then_read_from_the_cache(checkpoint, dataset):
    from explorer.analysis import cached_probe, load_or_fit_probe

    assert cached_probe(checkpoint) is None
    loads = []

    def lazy_dataset():
        loads.append(1)
        return dataset

    fitted = load_or_fit_probe(checkpoint, lazy_dataset, max_per_class=30)
    again = load_or_fit_probe(checkpoint, lazy_dataset, max_per_class=30)
    assert loads == [1]  # the cache hit never loads the dataset
    assert (checkpoint.path / "analysis" / "probe-perclass30-seed0.npz").is_file()
    features = np.random.default_rng(0).normal(size=(5, fitted.weight.shape[0])).astype(np.float32)
    assert np.array_equal(again.predict_proba(features), fitted.predict_proba(features))
    assert cached_probe(checkpoint).names == fitted.names == ["Bright", "Noise"]
    # retrained weights, with the old probe file copied beside them: it no longer applies
    cached_file = (checkpoint.path / "analysis" / "probe-perclass30-seed0.npz").read_bytes()
    other = checkpoint.path.with_name("retrained")
    write_checkpoint_dir(other, checkpoint.meta | {"step": 2}, {"generator": Generator(CONFIG), "discriminator": Discriminator(CONFIG)})
    (other / "analysis").mkdir()
    (other / "analysis" / "probe-perclass30-seed0.npz").write_bytes(cached_file)
    assert cached_probe(load_checkpoint(other)) is None


@pytest.mark.parametrize("name", ["synthetic-faces-64", "fashion-mnist-32"])
def test_shipped_checkpoints_carry_their_attribute_probe(name):
    from explorer.analysis import cached_probe

    path = Path(__file__).resolve().parent.parent / "checkpoints" / name
    if not path.is_dir():
        pytest.skip(f"{name} is not shipped in this tree")
    shipped = load_checkpoint(path)
    probe = cached_probe(shipped)  # matched to these exact weights by SHA-256
    assert probe is not None and probe.names == (shipped.attribute_names or shipped.class_names)
    assert probe.weight.shape[1] == len(probe.names) and min(probe.accuracy.values()) > 0.6


def test_the_apps_lookups_read_any_cached_build_and_never_compute(checkpoint, dataset, monkeypatch):
    directions, analysed, problem = analysis.available_directions(checkpoint)
    assert not analysed and problem is None and list(directions) == [f"sefa:{i}" for i in range(10)]  # SeFa is closed form
    assert analysis.find_feature_maps(checkpoint) == []
    load_or_build_feature_map(checkpoint, None, n_fake=10, method="pca")
    load_or_build_feature_map(checkpoint, None, n_fake=12, method="pca")
    extra = Direction("attr:Bright", np.eye(CONFIG.z_dim)[0], "attribute", 0.9, "hand-made")
    monkeypatch.setattr(analysis, "compute_directions", lambda *a, **k: DirectionSet([extra], {"attr:Noise": "too few"}))
    load_or_compute_directions(checkpoint, k=3)
    directions, analysed, _ = analysis.available_directions(checkpoint)
    assert analysed and "attr:Bright" in directions and "sefa:0" in directions and directions.skipped == {"attr:Noise": "too few"}
    assert [p.name for p in analysis.find_feature_maps(checkpoint)] == [
        "featuremap-pca-real5000-fake10-seed0.npz", "featuremap-pca-real5000-fake12-seed0.npz"]
    (checkpoint.path / "analysis" / "directions-k3-samples5000-seed0.npz").write_bytes(b"garbage")
    _, analysed, problem = analysis.available_directions(checkpoint)
    assert not analysed and problem is None  # a file that is not a valid cache entry does not count
