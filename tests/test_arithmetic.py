"""Concept vector arithmetic (explorer.arithmetic): known answers, the 3x3 grid, the pixel baseline, messages."""
import math

import numpy as np
import pytest
import torch

from explorer.arithmetic import (
    BASELINE_SEEDS,
    GRID_CENTRE,
    MAX_BIN_SEEDS,
    PAPER_BINS,
    ConceptBin,
    arithmetic,
    arithmetic_grid_latents,
    arithmetic_target,
    arithmetic_verdict,
    auto_fill,
    bin_consistency,
    check_arithmetic,
    clean_bin_seeds,
    combine,
    concept_conditions,
    concept_mean,
    concept_scores,
    consistency_baseline,
    default_bins,
    empty_bins_message,
    expression_text,
    pixel_arithmetic,
)
from explorer.probe import Probe
from explorer.features import discriminator_features
from explorer.generate import generate
from explorer.latent import MAX_SEED, z_from_seed, z_from_seeds
from explorer.model import DCGANConfig, Discriminator, Generator

CONFIG = DCGANConfig(image_size=32, g_width=8, d_width=8, z_dim=16)


@pytest.fixture()
def G():
    torch.manual_seed(0)
    return Generator(CONFIG).eval()


def test_concept_mean():
    zs = torch.stack([torch.full((16,), 1.0), torch.full((16,), 3.0)])
    assert torch.equal(concept_mean(zs), torch.full((16,), 2.0))
    with pytest.raises(ValueError, match="non-empty"):
        concept_mean(torch.empty(0, 16))


def test_combine_bins_of_constant_latents_gives_the_exact_answer():
    # A bin repeating one seed has that seed's z as its mean: A - A + C must be exactly z(C).
    # (Four copies: sum and division by a power of two are exact in float32, three copies are not.)
    bins = [
        ConceptBin("smiling woman", [5] * 4, 1.0),
        ConceptBin("neutral woman", [5] * 4, -1.0),
        ConceptBin("neutral man", [7] * 4, 1.0),
    ]
    result = combine(bins, 16)
    assert torch.equal(result.y, z_from_seed(7, 16))
    assert result.warnings == []


def test_combine_is_the_weighted_sum_of_bin_means():
    bins = [ConceptBin("a", [1, 2, 3], 1.0), ConceptBin("b", [4, 5, 6], -0.5), ConceptBin("c", [7, 8, 9], 2.0)]
    expected = sum(b.weight * z_from_seeds(b.seeds, 16).mean(0) for b in bins)
    assert torch.allclose(combine(bins, 16).y, expected, atol=1e-6)


def test_real_exemplars_join_a_bin_by_their_inverted_z(G):
    real = [np.full(16, 0.5, np.float32), np.full(16, -0.25, np.float32)]  # e.g. z that explorer.invert found
    mixed = ConceptBin("smiling woman", [3, 4], 1.0, latents=real)
    expected = torch.cat([z_from_seeds([3, 4], 16), torch.from_numpy(np.stack(real))]).mean(0)
    assert torch.allclose(combine([mixed], 16).y, expected, atol=1e-6)
    only_real = ConceptBin("photos", [], -1.0, latents=real * 2)  # four: no small-bin warning
    result = combine([only_real], 16)
    assert torch.allclose(result.y, -torch.from_numpy(np.stack(real)).mean(0)) and result.warnings == []
    drawn = arithmetic(G, [only_real], 16)
    assert drawn.pixel_result.shape == (1 if CONFIG.channels == 1 else 3, 32, 32)
    for bad in ([np.zeros(15)], [np.full(16, np.nan)], ["token"]):
        with pytest.raises(ValueError, match="real exemplar 1 is not a finite z of 16 values"):
            combine([ConceptBin("photos", [], 1.0, latents=bad)], 16)
    with pytest.raises(ValueError, match="at most"):
        combine([ConceptBin("photos", [1], 1.0, latents=[np.zeros(16)] * MAX_BIN_SEEDS)], 16)


def test_bin_errors_have_clear_messages():
    good = ConceptBin("neutral woman", [1, 2, 3], -1.0)
    with pytest.raises(ValueError, match="^bin 'neutral man' is empty: drag at least one image into it$"):
        combine([good, ConceptBin("neutral man", [], 1.0)], 16)
    with pytest.raises(ValueError, match="no concept bins"):
        combine([], 16)
    for weight in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="bin 'w' has weight .*finite"):
            combine([ConceptBin("w", [1], weight)], 16)
    with pytest.raises(ValueError, match="not a number"):
        combine([ConceptBin("w", [1], "heavy")], 16)
    with pytest.raises(ValueError, match=f"bin 'big' has {MAX_BIN_SEEDS + 1} images; at most {MAX_BIN_SEEDS}"):
        combine([ConceptBin("big", list(range(MAX_BIN_SEEDS + 1)), 1.0)], 16)
    assert combine([ConceptBin("big", list(range(MAX_BIN_SEEDS)), 1.0)], 16).y.shape == (16,)
    with pytest.raises(ValueError, match="bin 'neg': seed must be"):
        combine([ConceptBin("neg", [-3], 1.0)], 16)


def test_bin_of_one_is_allowed_with_a_warning():
    result = combine([ConceptBin("smiling woman", [9], 1.0), ConceptBin("neutral woman", [1, 2, 3], -1.0)], 16)
    assert torch.allclose(result.y, z_from_seed(9, 16) - z_from_seeds([1, 2, 3], 16).mean(0))
    assert len(result.warnings) == 1
    assert "bin 'smiling woman' has 1 image:" in result.warnings[0] and "3 exemplars" in result.warnings[0]


def test_grid_latents_centre_is_y_and_noise_stays_within_jitter():
    y = z_from_seed(11, 16)
    latents = arithmetic_grid_latents(y, seed=3, jitter=0.25)
    assert latents.shape == (9, 16)
    assert torch.equal(latents[GRID_CENTRE], y)
    noise = torch.cat([latents[:GRID_CENTRE], latents[GRID_CENTRE + 1 :]]) - y
    assert noise.abs().max() <= 0.25 + 1e-6
    assert noise.abs().max() > 0.2 and noise.mean().abs() < 0.05  # spread over U(-0.25, 0.25), centred
    assert torch.equal(arithmetic_grid_latents(y, seed=3), latents)  # reproducible from the seed
    assert not torch.equal(arithmetic_grid_latents(y, seed=4), latents)
    assert torch.equal(arithmetic_grid_latents(y, seed=3, jitter=0.0), y.expand(9, 16))
    with pytest.raises(ValueError, match="jitter"):
        arithmetic_grid_latents(y, seed=3, jitter=-1.0)


def test_pixel_arithmetic_known_answer_and_clipping():
    a = torch.full((2, 3, 4, 4), 0.5)
    b = torch.cat([torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.3)])  # mean 0.2
    c = torch.full((3, 3, 4, 4), -0.4)
    result = pixel_arithmetic([a, b, c], [1.0, -1.0, 1.0])
    assert result.shape == (3, 4, 4)
    assert torch.allclose(result, torch.full((3, 4, 4), 0.5 - 0.2 - 0.4))
    assert torch.equal(pixel_arithmetic([torch.full((1, 1, 2, 2), 0.9)] * 2, [1.0, 1.0]), torch.ones(1, 2, 2))
    with pytest.raises(ValueError, match="one weight per bin"):
        pixel_arithmetic([a, b], [1.0])
    with pytest.raises(ValueError, match="one image size"):
        pixel_arithmetic([a, torch.zeros(1, 3, 8, 8)], [1.0, 1.0])


def test_bin_consistency():
    row = np.array([0.3, 1.0, 2.0])
    assert bin_consistency(np.stack([row, row, row])) == pytest.approx(1.0)
    assert bin_consistency(row[None]) == 1.0
    assert bin_consistency(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0)
    assert bin_consistency(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-1.0)
    # Three pairs: (x, 2x) -> 1, (x, y) -> 0, (2x, y) -> 0: mean 1/3.
    assert bin_consistency(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]])) == pytest.approx(1 / 3)
    assert bin_consistency(np.array([[0.0, 0.0], [1.0, 0.0]])) == 0.0  # zero vector: no NaN
    with pytest.raises(ValueError, match="non-empty"):
        bin_consistency(np.zeros((0, 4)))


def test_arithmetic_end_to_end(G):
    bins = [ConceptBin("smiling woman", [1, 2, 3], 1.0), ConceptBin("neutral woman", [4, 5, 6], -1.0), ConceptBin("neutral man", [7], 1.0)]
    result = arithmetic(G, bins, 16, seed=5)
    assert torch.allclose(result.y, combine(bins, 16).y)
    assert torch.equal(result.grid_latents, arithmetic_grid_latents(result.y, 5))
    assert result.grid_images.shape == (9, 3, 32, 32)
    assert torch.allclose(result.grid_images[GRID_CENTRE], generate(G, result.y[None])[0], atol=1e-6)  # centre is G(Y)
    exemplars = [generate(G, z_from_seeds(b.seeds, 16)) for b in bins]
    assert torch.allclose(result.pixel_result, pixel_arithmetic(exemplars, [1.0, -1.0, 1.0]), atol=1e-6)
    assert result.pixel_result.shape == (3, 32, 32) and result.pixel_result.abs().max() <= 1.0
    assert len(result.warnings) == 1 and "neutral man" in result.warnings[0]
    means = generate(G, torch.stack([z_from_seeds(b.seeds, 16).mean(0) for b in bins]))
    assert torch.allclose(result.bin_means, means, atol=1e-6)  # what each concept looks like on its own
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(result.exemplar_images, exemplars))
    with pytest.raises(ValueError, match="z_dim 100 does not match"):
        arithmetic(G, bins, 100)


# ----------------------------------------------------------------------------------------------- concepts by name

FACES = ["Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Black_Hair"]
FASHION = ["T-shirt/top", "Trouser", "Sandal", "Sneaker", "Ankle boot"]


def test_bin_names_become_probe_conditions():
    assert concept_conditions("smiling woman", FACES) == {"Smiling": 1, "Male": 0}
    assert concept_conditions("Neutral MAN with glasses", FACES) == {"Smiling": 0, "Male": 1, "Eyeglasses": 1}
    assert concept_conditions("woman wearing_hat", FACES) == {"Wearing_Hat": 1, "Male": 0}  # whole column names match too
    assert concept_conditions("black hair", FACES) == {"Black_Hair": 1}
    assert concept_conditions("ankle boot", FASHION) == {"Ankle boot": 1}
    assert concept_conditions("t-shirt/top", FASHION) == {"T-shirt/top": 1}
    assert concept_conditions("sneakers", FASHION) == {} and concept_conditions("smiling woman", FASHION) == {}  # not its columns
    assert concept_conditions("human", FACES) == {}  # "man" inside another word is no man


def test_concept_scores_and_auto_fill_pick_the_most_likely_samples():
    p = np.array([[0.9, 0.1], [0.8, 0.9], [0.2, 0.1], [0.6, 0.3]])  # columns Smiling, Male
    np.testing.assert_allclose(concept_scores(p, ["Smiling", "Male"], {"Smiling": 1, "Male": 0}), [0.81, 0.08, 0.18, 0.42])
    with pytest.raises(ValueError, match="no column"):
        concept_scores(p, ["Smiling", "Male"], {"Eyeglasses": 1})
    filled = auto_fill(["Smiling", "Male"], p, [100, 101, 102, 103], ["smiling woman", "neutral woman", "a cat"], per_bin=2)
    assert filled.bins == [[100, 103], [102, 103], None]
    assert filled.filled == ["smiling woman (Smiling=1, Male=0)", "neutral woman (Smiling=0, Male=0)"] and filled.unknown == ["a cat"]


def test_default_bins_follow_the_checkpoints_labels():
    assert default_bins(FACES, []) == list(PAPER_BINS)
    assert default_bins([], ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]) == [
        ("sneaker", 1.0), ("sandal", -1.0), ("ankle boot", 1.0)]
    assert default_bins([], ["airplane", "automobile", "bird", "cat"]) == [("airplane", 1.0), ("automobile", -1.0), ("bird", 1.0)]
    assert default_bins(["Bright"], []) == [("bright", 1.0), ("not bright", -1.0), ("concept 3", 1.0)]
    assert default_bins([], []) == [("concept 1", 1.0), ("concept 2", -1.0), ("concept 3", 1.0)]


def test_the_target_of_an_expression_and_the_verdict():
    paper = [("smiling woman", 1.0), ("neutral woman", -1.0), ("neutral man", 1.0)]
    assert arithmetic_target(paper, FACES, "attribute") == {"Smiling": 1, "Male": 1}
    glasses = [("man with glasses", 1.0), ("man", -1.0), ("woman", 1.0)]
    assert arithmetic_target(glasses, FACES, "attribute") == {"Male": 0, "Eyeglasses": 1}
    proba = np.full((9, len(FACES)), 0.1)
    proba[:, :2] = 0.9  # every image smiling and male ...
    proba[[0, 8], 1] = 0.2  # ... except two women
    proba[4, 3] = 0.7  # G(Y) wears a hat, which the expression does not speak about
    verdict = arithmetic_verdict(paper, FACES, "attribute", proba)
    assert verdict.target == "smiling man" and verdict.text == "smiling man: 7 of 9 (G(Y) included)"
    assert verdict.matches.tolist() == [False] + [True] * 7 + [False]
    assert verdict.counts == {"Smiling": 9, "Male": 7, "Wearing_Hat": 1, "Eyeglasses": 0, "Black_Hair": 0}
    assert arithmetic_verdict(glasses, FACES, "attribute", proba).target == "woman with glasses"
    assert arithmetic_verdict([("a", 1.0), ("b", -1.0)], FACES, "attribute", proba).text == ""  # nothing it can judge
    # classes: the classes with the largest positive weighted sum; an image matches when it is classified as one
    shoes = [("sneaker", 1.0), ("sandal", -1.0), ("ankle boot", 1.0)]
    assert arithmetic_target(shoes, FASHION, "class") == {"Sneaker": 1, "Ankle boot": 1}
    classes = np.eye(len(FASHION))[[3, 3, 4, 2, 4, 4, 0, 3, 4]]
    verdict = arithmetic_verdict(shoes, FASHION, "class", classes)
    assert verdict.text == "Sneaker or Ankle boot: 7 of 9 (G(Y) included)"
    assert verdict.counts == {"Ankle boot": 4, "Sneaker": 3, "T-shirt/top": 1, "Sandal": 1}


def test_check_arithmetic_reads_the_grid_and_the_exemplars_with_D(G):
    torch.manual_seed(1)
    D = Discriminator(CONFIG).eval()
    bins = [ConceptBin("smiling woman", [1, 2, 3], 1.0), ConceptBin("neutral woman", [4, 5], -1.0), ConceptBin("neutral man", [6, 7, 8], 1.0)]
    result = arithmetic(G, bins, 16)
    features = discriminator_features(D, generate(G, z_from_seeds([1, 2, 3], 16)))
    baseline = consistency_baseline(G, D)
    assert baseline == pytest.approx(bin_consistency(discriminator_features(D, generate(G, z_from_seeds(list(BASELINE_SEEDS), 16)))))
    weight = np.zeros((features.shape[1], 2), np.float32)
    weight[:, 0] = 1.0  # "Smiling" fires on everything, "Male" never
    probe = Probe("attribute", ["Smiling", "Male"], weight, np.array([0.0, -1e6], np.float32), {}, {})
    checks = check_arithmetic(D, bins, result, baseline, probe)
    assert checks.consistency[0] == pytest.approx(bin_consistency(features), rel=1e-5) and checks.baseline == baseline
    assert checks.verdict.target == "smiling man" and checks.verdict.counts == {"Smiling": 9, "Male": 0}
    assert check_arithmetic(D, bins, result, baseline).verdict is None


def test_board_reports_and_messages():
    assert clean_bin_seeds([[1, 1, 2.0, True, -1, float("nan"), MAX_SEED + 1, "3"], "x", [5]], 4) == [[1, 2], [], [5], []]
    assert clean_bin_seeds(None, 2) == [[], []] and len(clean_bin_seeds([list(range(100))], 1)[0]) == MAX_BIN_SEEDS
    assert empty_bins_message([]) is None
    assert empty_bins_message(["a"]).startswith("Empty bin 'a': put at least one exemplar")
    assert empty_bins_message(["a", "b"]).startswith("Empty bins 'a', 'b':")
    assert expression_text([("a", 1.0), ("b", -1.0), ("c", 0.5), ("d", -2.0)]) == "[a] − [b] + 0.5·[c] − 2·[d]"
