"""Discriminator features, SeFa, GANSpace, the attribute probe and directions, orthogonalisation, .npz files."""
import numpy as np
import pytest
import torch
from torch import nn

from explorer.checkpoint import load_checkpoint, write_checkpoint_dir
from explorer.datasets import ImageDataset
from explorer.directions import (
    Direction,
    DirectionSet,
    attribute_directions,
    compute_directions,
    conditional_direction,
    ganspace_directions,
    load_directions,
    orthogonalize,
    save_directions,
    sefa_directions,
)
from explorer.features import discriminator_features, feature_dim
from explorer.probe import fit_attribute_probe
from explorer.generate import realism
from explorer.model import DCGANConfig, Discriminator, Generator

CONFIG = DCGANConfig(image_size=32, g_width=8, d_width=8, z_dim=16)


def _unit(i: int, n: int = CONFIG.z_dim) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[i]


def brightness_dataset(n: int = 200, kind: str = "attribute", seed: int = 0) -> ImageDataset:
    """Flat grey images with pixel noise; label 1 = bright (~190), 0 = dark (~60). "Noise" is a coin flip."""
    rng = np.random.default_rng(seed)
    bright = rng.integers(0, 2, n)
    level = np.where(bright, 190, 60)[:, None, None, None] + rng.normal(0, 12, (n, 3, 32, 32))
    images = torch.as_tensor(np.clip(level, 0, 255).astype(np.uint8))
    if kind == "class":
        return ImageDataset(images=images, spec="toy", class_names=["dark", "bright"], labels=torch.as_tensor(bright))
    attributes = np.stack([bright, rng.integers(0, 2, n)], axis=1)
    attributes = torch.as_tensor(attributes, dtype=torch.uint8)
    return ImageDataset(images=images, spec="toy", attribute_names=["Bright", "Noise"], attributes=attributes)


class BrightnessGenerator(nn.Module):
    """A rigged G: every pixel is tanh(2 z[0]), so brightness (the toy attribute) depends on z[0] alone."""

    def __init__(self):
        super().__init__()
        self.config = CONFIG
        self.weight = nn.Parameter(torch.as_tensor(_unit(0) * 2.0))

    def forward(self, z):
        level = torch.tanh(z @ self.weight)
        return level[:, None, None, None].expand(-1, 3, 32, 32)


@pytest.fixture(scope="module")
def D():
    torch.manual_seed(0)
    return Discriminator(CONFIG).eval()


def test_features_have_the_papers_layout_and_uint8_means_training_scaling(D):
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    features = discriminator_features(D, images, batch_size=2)
    widths = [8, 16, 32]  # the 32 px D's blocks, each max-pooled to 4x4
    assert features.shape == (5, sum(widths) * 16) == (5, feature_dim(D)) and features.dtype == np.float32
    as_float = images.float() / 127.5 - 1
    np.testing.assert_allclose(discriminator_features(D, as_float), features, rtol=1e-5, atol=1e-6)
    # the same pass gives D's logits: sigmoid of them is generate.realism
    _, logits = discriminator_features(D, as_float, return_logits=True)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), realism(D, as_float), rtol=1e-5)


def test_features_leave_a_training_discriminator_in_training_mode():
    D = Discriminator(CONFIG).train()
    discriminator_features(D, torch.zeros(2, 3, 32, 32))
    assert D.training


def test_sefa_vectors_are_orthonormal_eigen_ordered_and_find_the_stretched_axis():
    torch.manual_seed(0)
    G = Generator(CONFIG).eval()
    with torch.no_grad():
        G.blocks[0][0].weight[3] *= 10  # z[3] feeds the first layer 10x more strongly than any other axis
    directions = sefa_directions(G, k=5)
    vectors = np.stack([d.vector for d in directions])
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(5), atol=1e-5)
    scores = [d.score for d in directions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    np.testing.assert_allclose(directions[0].vector, _unit(3), atol=1e-2)  # sign fixed: largest component positive
    assert [d.name for d in directions] == [f"sefa:{i}" for i in range(5)] and {d.kind for d in directions} == {"sefa"}


def test_ganspace_recovers_the_direction_that_dominates_the_first_layer():
    torch.manual_seed(0)
    G = Generator(CONFIG).eval()
    with torch.no_grad():
        G.blocks[0][0].weight[5] *= 20
    directions = ganspace_directions(G, k=3, n_samples=500)
    assert abs(float(directions[0].vector @ _unit(5))) > 0.9
    assert directions[0].score > directions[1].score >= directions[2].score
    assert all(abs(np.linalg.norm(d.vector) - 1) < 1e-5 for d in directions)


@pytest.mark.parametrize("kind", ["attribute", "class"])
def test_probe_beats_chance_on_a_separable_toy_dataset(D, kind):
    probe = fit_attribute_probe(D, brightness_dataset(kind=kind), max_per_class=80)
    names = ["Bright", "Noise"] if kind == "attribute" else ["dark", "bright"]
    assert probe.kind == kind and probe.names == names
    bright = "Bright" if kind == "attribute" else "bright"
    assert probe.accuracy[bright] > 0.9 > probe.chance[bright] + 0.2
    test = brightness_dataset(n=40, kind=kind, seed=1)
    proba = probe.predict_proba(discriminator_features(D, test.images))
    assert proba.shape == (40, 2) and ((proba >= 0) & (proba <= 1)).all()
    truth = (test.attributes[:, 0] if kind == "attribute" else test.labels).numpy()
    assert np.mean((proba[:, names.index(bright)] > 0.5) == truth) > 0.9


def test_attribute_directions_recover_the_latent_axis_that_drives_the_attribute(D):
    probe = fit_attribute_probe(D, brightness_dataset(), max_per_class=80)
    directions, skipped = attribute_directions(BrightnessGenerator(), D, probe, n_samples=600)
    by_name = {d.name: d for d in directions}
    assert float(by_name["attr:Bright"].vector @ _unit(0)) > 0.9  # points towards brighter
    assert float(by_name["svm:Bright"].vector @ _unit(0)) > 0.9
    assert by_name["attr:Bright"].score == probe.accuracy["Bright"] and by_name["svm:Bright"].score > 0.9
    assert by_name["attr:Bright"].kind == "attribute"
    # too few samples for MIN_CONFIDENT (20) on each side: skipped, with the reason
    few, skipped = attribute_directions(BrightnessGenerator(), D, probe, n_samples=30)
    assert not few and "confident positives" in skipped["attr:Bright"]


def test_orthogonalize_known_answers():
    np.testing.assert_allclose(orthogonalize([1.0, 1.0, 0.0], [np.array([1.0, 0, 0])]), [0, 1, 0], atol=1e-7)
    # dependent conditions span one axis, not two
    expected = np.array([0, 1, 1]) / np.sqrt(2)
    np.testing.assert_allclose(orthogonalize([1.0, 1.0, 1.0], [[2.0, 0, 0], [1.0, 0, 0]]), expected, atol=1e-6)
    np.testing.assert_allclose(orthogonalize([3.0, 4.0, 0.0], []), [0.6, 0.8, 0], atol=1e-7)
    with pytest.raises(ValueError, match="span"):
        orthogonalize([1.0, 2.0, 0.0], [[1.0, 0, 0], [0, 1.0, 0]])


def test_conditional_direction_is_orthogonal_to_its_conditions():
    rng = np.random.default_rng(0)
    smiling, male = rng.normal(size=16), rng.normal(size=16)
    dirs = DirectionSet(
        [Direction("attr:Smiling", smiling, "attribute", 0.9, "s"), Direction("attr:Male", male, "attribute", 0.95, "m")]
    )
    d = conditional_direction(dirs, "attr:Smiling", ["attr:Male"])
    assert d.name == "attr:Smiling ⟂ attr:Male" and d.kind == "attribute" and d.score == 0.9
    assert abs(float(d.vector @ dirs["attr:Male"].vector)) < 1e-6 and abs(np.linalg.norm(d.vector) - 1) < 1e-6
    with pytest.raises(KeyError, match="attr:Young"):
        conditional_direction(dirs, "attr:Smiling", ["attr:Young"])


def test_direction_vectors_are_normalised_and_validated():
    assert np.allclose(Direction("x", [3.0, 4.0], "sefa", None, "").vector, [0.6, 0.8])
    with pytest.raises(ValueError, match="zero"):
        Direction("x", [0.0, 0.0], "sefa", None, "")
    with pytest.raises(ValueError, match="kind"):
        Direction("x", [1.0, 0.0], "magic", None, "")


def test_directions_npz_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(0)
    dirs = DirectionSet(
        [Direction(f"sefa:{i}", rng.normal(size=16), "sefa", 0.1 * i, f"d{i}") for i in range(3)]
        + [Direction("attr:Smiling", rng.normal(size=16), "attribute", None, "smile")],
        skipped={"attr:Bald": "too few confident samples"},
    )
    path = tmp_path / "dirs.npz"
    save_directions(path, dirs)
    loaded = load_directions(path)
    assert list(loaded) == list(dirs) and loaded.skipped == dirs.skipped
    for name, d in dirs.items():
        assert np.array_equal(loaded[name].vector, d.vector)
        assert (loaded[name].kind, loaded[name].score, loaded[name].description) == (d.kind, d.score, d.description)
    with np.load(path, allow_pickle=False) as data:
        assert data["vectors"].dtype == np.float32


def test_compute_directions_without_a_dataset_gives_the_unsupervised_ones(tmp_path):
    torch.manual_seed(0)
    meta = {"model": CONFIG.to_dict(), "step": 1, "dataset": {"spec": "toy"}}
    write_checkpoint_dir(tmp_path / "ckpt", meta, {"generator": Generator(CONFIG), "discriminator": Discriminator(CONFIG)})
    dirs = compute_directions(load_checkpoint(tmp_path / "ckpt"), k=4)
    assert list(dirs) == [f"sefa:{i}" for i in range(4)] + [f"ganspace:{i}" for i in range(4)]
    assert "labelled dataset" in dirs.skipped["attributes"]


@pytest.mark.parametrize("classes", [2, 4], ids=["binary-model", "multinomial"])
def test_folded_probe_predicts_what_the_sklearn_pipeline_does(classes):
    """Probe keeps scaler -> whitened PCA -> logistic regression as one affine map; its probabilities must match."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from explorer.probe import Probe, fold_linear_probe

    rng = np.random.default_rng(0)
    x = rng.normal(3.0, rng.uniform(0.5, 4, 40), (300, 40))  # features with offsets and uneven scales
    score = x[:, :3] @ rng.normal(size=3)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))  # every class present
    reduce = make_pipeline(StandardScaler(), PCA(12, whiten=True, random_state=0)).fit(x)
    model = LogisticRegression(max_iter=2000).fit(reduce.transform(x), y)
    test = rng.normal(3.0, 2.0, (50, 40))
    expected = model.predict_proba(reduce.transform(test))
    names = [str(c) for c in range(classes)]
    if classes == 2:  # as an attribute probe: one binary model, column = P(1)
        probe = Probe("attribute", ["1"], *fold_linear_probe(reduce, model.coef_, model.intercept_), {}, {})
        assert np.allclose(probe.predict_proba(test)[:, 0], expected[:, 1], atol=1e-4)
    else:
        probe = Probe("class", names, *fold_linear_probe(reduce, model.coef_, model.intercept_), {}, {})
        assert np.allclose(probe.predict_proba(test), expected, atol=1e-4)
    assert probe.weight.shape == (40, 1 if classes == 2 else classes) and probe.weight.dtype == np.float32


def test_probe_file_round_trip_and_refusals(D, tmp_path):
    from explorer.npzfile import save_npz
    from explorer.probe import load_probe, save_probe

    probe = fit_attribute_probe(D, brightness_dataset(kind="class"), max_per_class=80)  # two classes: the sigmoid case
    save_probe(tmp_path / "probe.npz", probe)
    loaded = load_probe(tmp_path / "probe.npz")
    features = discriminator_features(D, brightness_dataset(n=20, kind="class", seed=3).images)
    assert loaded.names == probe.names and loaded.accuracy == probe.accuracy and loaded.kind == "class"
    assert np.array_equal(loaded.predict_proba(features), probe.predict_proba(features))
    assert np.allclose(loaded.predict_proba(features).sum(1), 1)
    header = {"format": "latent-lab-probe", "version": 1, "kind": "class", "names": ["a"], "accuracy": {}, "chance": {}, "skipped": {}}
    save_npz(tmp_path / "bad.npz", {"weight": np.zeros((5, 2), np.float32), "bias": np.zeros(2, np.float32)}, header)
    with pytest.raises(ValueError, match="do not fit together"):
        load_probe(tmp_path / "bad.npz")
    save_npz(tmp_path / "nan.npz", {"weight": np.full((5, 1), np.nan, np.float32), "bias": np.zeros(1, np.float32)}, header)
    with pytest.raises(ValueError, match="not finite"):
        load_probe(tmp_path / "nan.npz")
    save_npz(tmp_path / "other.npz", {"vectors": np.zeros((1, 2))}, {"format": "latent-lab-directions", "version": 1})
    with pytest.raises(ValueError, match="not a latent-lab probe"):
        load_probe(tmp_path / "other.npz")
