"""Disentangled sliders measured on a toy generator whose attributes are known functions of z.

Pixel 0 reads Smiling (z0), pixel 1 Male (z1), pixel 2 skin tone (z2), pixel 3 Eyeglasses (z3).
The planted entanglement: the samples the probe calls smiling are also darker, so the raw
mean-difference Smiling direction points along z0 + z2 and a +3 move darkens the skin. The
conditional direction (Smiling with the other attributes and skin tone projected out) must not.
"""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from explorer.directions import Direction, conditional_directions
from explorer.evaluation import directions_eval as de
from explorer.probe import attribute_dependence


class _ToyFaces(nn.Module):
    config = SimpleNamespace(z_dim=8, channels=1, image_size=4)

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # generate() reads the device from a parameter

    def forward(self, z):
        image = torch.zeros(z.shape[0], 1, 4, 4)
        image[:, 0, 0, :4] = torch.tanh(z[:, :4] / 2)
        return image


def _judge(images):
    x = images[:, 0, 0, :4].numpy()
    return {"Smiling": x[:, 0] > 0.3, "Male": x[:, 1] > 0, "Eyeglasses": x[:, 3] > 0.5, "Mouth_Slightly_Open": x[:, 0] > 0.6}


def _skin(images):
    return np.arctanh(np.clip(images[:, 0, 0, 2].numpy(), -0.999, 0.999)) * 2  # z2 back, in the prior's units


def _unit(*pairs, n=8):
    v = np.zeros(n, np.float32)
    for i, value in pairs:
        v[i] = value
    return v


def _directions():
    raw = {
        "attr:Smiling": Direction("attr:Smiling", _unit((0, 1.0), (2, 1.0)), "attribute", 0.9, "entangled with skin"),
        "attr:Male": Direction("attr:Male", _unit((1, 1.0)), "attribute", 0.9, ""),
        "attr:Eyeglasses": Direction("attr:Eyeglasses", _unit((3, 1.0)), "attribute", 0.9, ""),
        "factor:skin_tone": Direction("factor:skin_tone", _unit((2, 1.0)), "factor", 0.9, ""),
    }
    return {**raw, **{d.name: d for d in conditional_directions(raw)}}


def test_conditional_direction_removes_the_planted_skin_axis():
    directions = _directions()
    np.testing.assert_allclose(directions["cond:Smiling"].vector, _unit((0, 1.0)), atol=1e-6)
    dependence = {"Smiling": {"Mouth_Slightly_Open": 0.4, "Male": 0.0, "Eyeglasses": 0.0}}
    results = de.evaluate_directions(_ToyFaces(), directions, _judge, skin=_skin, skin_std=1.0, dependence=dependence,
                                     attributes=("Smiling",), n=100)
    smiling = results["Smiling"]
    assert smiling["default"] == "cond:Smiling"
    cond, raw = smiling["by_direction"]["cond:Smiling"], smiling["by_direction"]["attr:Smiling"]
    assert cond["seeds"] == raw["seeds"] == 100
    # +3 along z0 turns nearly every non-smiling face smiling; along (z0 + z2)/sqrt(2) only 2.1 of it goes to z0
    assert cond["flip_rate"] > 0.95 and cond["flip_rate"] > raw["flip_rate"]
    assert cond["skin_tone_shift"] == pytest.approx(0.0, abs=1e-4)
    assert raw["skin_tone_shift"] == pytest.approx(3 / np.sqrt(2), abs=1e-3)  # the planted drift, measured exactly
    assert cond["max_other_flip"] == 0.0 and cond["meets_targets"] and not raw["meets_targets"]
    # the mouth opens with the smile, as the data says it should: reported as dependent, not as a leak
    assert "Mouth_Slightly_Open" in cond["dependent"] and cond["dependent"]["Mouth_Slightly_Open"]["flip"] > 0.3
    assert cond["max_other_attribute"] in ("Male", "Eyeglasses")
    table = de.format_table(results)
    assert f"| Smiling | `cond:Smiling` (default) | {cond['flip_rate']:.2f} | 0.00 (Male) | +0.00 | Mouth_Slightly_Open" in table
    assert "| Smiling | `attr:Smiling` |" in table and "| +2.12 |" in table
    assert table.count("✔") == 1 and table.count("✘") == 2  # the raw direction and the random floor fail
    floor = smiling["by_direction"]["random⟂attr:Smiling"]
    assert floor["seeds"] == 100 and floor["flip_rate"] < cond["flip_rate"]


def test_attributes_the_data_ties_together_are_not_projected_out():
    raw = {
        "attr:Smiling": Direction("attr:Smiling", _unit((0, 1.0)), "attribute", 0.9, ""),
        "attr:Mouth_Slightly_Open": Direction("attr:Mouth_Slightly_Open", _unit((0, 1.0), (5, 0.3)), "attribute", 0.9, ""),
        "attr:Male": Direction("attr:Male", _unit((1, 1.0), (0, 0.2)), "attribute", 0.9, ""),
    }
    tied = {"Smiling": {"Mouth_Slightly_Open": 0.4, "Male": 0.0}}
    cond = {d.name: d for d in conditional_directions(raw, dependence=tied)}
    # the mouth direction nearly equals the smile's: projecting it out would leave almost nothing
    assert float(cond["cond:Smiling"].vector @ raw["attr:Smiling"].vector) > 0.95
    assert abs(float(cond["cond:Smiling"].vector @ raw["attr:Male"].vector)) < 1e-6
    assert "Mouth_Slightly_Open left free" in cond["cond:Smiling"].description
    untied = {d.name: d for d in conditional_directions(raw)}
    assert float(untied["cond:Smiling"].vector @ raw["attr:Smiling"].vector) < 0.5


def test_a_leaky_direction_is_caught_and_seeds_are_those_without_the_attribute():
    leaky = Direction("attr:Male", _unit((1, 1.0), (3, 1.0)), "attribute", 0.9, "also adds glasses")
    result = de.evaluate_direction(_ToyFaces(), leaky, "Male", _judge, n=50)
    assert result["seeds"] == 50 and result["max_other_attribute"] == "Eyeglasses"
    assert result["max_other_flip"] > 0.3 and not result["meets_targets"]
    # the leak adds glasses, it never takes them away: the sign split says so
    assert result["other_gained"]["Eyeglasses"] == result["other_flips"]["Eyeglasses"] and result["other_lost"]["Eyeglasses"] == 0.0
    assert "skin_tone_shift" not in result  # no skin judge given
    # a G that always shows the attribute yields no seeds, and says so
    always = lambda images: {**_judge(images), "Male": np.ones(len(images), bool)}  # noqa: E731
    skipped = de.evaluate_direction(_ToyFaces(), leaky, "Male", always, n=5)
    assert "no seed" in skipped["skipped"]


def test_attribute_dependence_from_labels():
    # B follows A half the time more often than not; C is independent of A
    a = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    b = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    c = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    dependence = attribute_dependence(np.stack([a, b, c], 1), ["A", "B", "C"])
    assert dependence["A"]["B"] == pytest.approx(0.5) and dependence["A"]["C"] == pytest.approx(0.0)


def test_slider_floor_the_renderers_own_edit_is_judged_as_the_sliders_are():
    """renderer_edit_floor (bench.slider_floor, the directions table's floor row): switching one attribute of real renders on is what a perfect slider does.

    The judge agrees for smiles, sex and glasses; a hat's brim hides the fringe, so bangs change on
    some hatted faces even in the renderer's own edit: the floor a hat slider is measured against.
    """
    from explorer.evaluation.eval_net import load_eval_net
    from explorer.evaluation.slider_floor import renderer_edit_floor

    net, _ = load_eval_net(Path(__file__).resolve().parents[1] / "checkpoints" / "eval-nets" / "synthetic-faces-64")
    results = renderer_edit_floor(net, n=60, seed=3)
    assert list(results) == list(de.DEFAULT_ATTRIBUTES)
    for attribute, r in results.items():
        assert r["flip_rate"] == 1.0 and r["faces"] >= 50 and abs(r["skin_tone_shift"]) < 0.1
        others = dict(r["other_flips"])
        if attribute == "Wearing_Hat":
            assert r["max_other_attribute"] == "Bangs" and others.pop("Bangs") >= 0.05
        assert max(others.values()) <= 0.1, (attribute, others)


def test_another_seed_offset_gives_an_independent_sample_of_the_same_kind():
    first, _, _ = de.seeds_without(_ToyFaces(), _judge, "Male", 30)
    second, verdicts, _ = de.seeds_without(_ToyFaces(), _judge, "Male", 30, offset=7_000_000)
    assert first.min() >= de.DIRECTIONS_SEED_OFFSET and second.min() >= 7_000_000
    assert not set(first) & set(second) and not verdicts["Male"].any()
    directions = _directions()
    results = de.evaluate_directions(_ToyFaces(), directions, _judge, attributes=("Smiling",), n=30, seed_offset=7_000_000)
    assert results["_protocol"]["seeds"] == "the first 30 seeds from 7000000 judged without the attribute"
    assert results["Smiling"]["by_direction"]["cond:Smiling"]["flip_rate"] > 0.9


def test_the_skin_tone_judge_reads_the_eval_nets_regression_in_sds_of_the_data():
    from explorer.datasets import ImageDataset
    from explorer.datasets.synthetic_faces import generate as render_faces
    from explorer.evaluation.eval_net import load_eval_net, predict

    net, _ = load_eval_net(Path(__file__).resolve().parents[1] / "checkpoints" / "eval-nets" / "synthetic-faces-64")
    faces = render_faces(16, seed=5)
    images = torch.from_numpy(faces.images).permute(0, 3, 1, 2).contiguous()
    factor_names = list(net.config.factor_names)
    dataset = ImageDataset(images=images, spec="faces", factor_names=factor_names, factors=torch.from_numpy(faces.factors))
    skin, std = de.skin_tone_judge(net, dataset)
    column = factor_names.index("skin_tone")
    assert std == pytest.approx(float(faces.factors[:, column].astype(np.float64).std(ddof=1)))
    np.testing.assert_array_equal(skin(images), predict(net, images).factors[:, column])
    # no skin-tone factor in the data (Fashion-MNIST, a folder): no shift is reported
    assert de.skin_tone_judge(net, ImageDataset(images=images, spec="folder")) == (None, 1.0)
