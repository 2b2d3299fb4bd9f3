"""Which direction sliders the explorer offers, and which are on at first (explorer.sliders): one rule for both UIs."""
import numpy as np

from explorer.directions import Direction, DirectionSet
from explorer.sliders import (
    concept_of, default_labelled, default_sliders, direction_label, measured_note, offered_directions, slider_groups, slider_help,
)

Z = 8


def direction(name: str, kind: str, axis: int, score: float | None = 0.5) -> Direction:
    return Direction(name, np.eye(Z)[axis], kind, score, name)


def faces() -> DirectionSet:
    """As an analysis with conditional directions would hold them: Smiling in all four variants, Male without cond:."""
    return DirectionSet([
        *(direction(f"sefa:{i}", "sefa", i) for i in range(5)),
        *(direction(f"ganspace:{i}", "ganspace", i) for i in range(2)),
        direction("attr:Smiling", "attribute", 0), direction("svm:Smiling", "attribute", 1), direction("cond:Smiling", "attribute", 2),
        direction("attr:Male", "attribute", 3), direction("svm:Male", "attribute", 4),
        direction("svm:Eyeglasses", "attribute", 5),  # a concept with only an SVM normal still gets a slider
        direction("factor:yaw", "factor", 6), direction("factor:skin_tone", "factor", 7),
    ])


def test_the_default_per_attribute_is_the_conditional_direction_else_the_mean_difference():
    assert default_labelled(faces()) == ["cond:Smiling", "attr:Male", "svm:Eyeglasses"]
    assert default_sliders(faces()) == ["cond:Smiling", "attr:Male", "svm:Eyeglasses", "sefa:0", "sefa:1", "sefa:2"]
    assert [concept_of(n) for n in ("cond:Smiling", "attr:Male", "class:Ankle boot", "svm:T-shirt/top", "sefa:0", "z:3")] == [
        "Smiling", "Male", "Ankle boot", "T-shirt/top", None, None]


def test_every_direction_is_offered_once_defaults_first_and_the_raw_ones_stay_selectable():
    groups = slider_groups(faces())
    assert "factor:yaw" not in default_sliders(faces())  # selectable, not on at first
    assert [(g.title, g.names, g.open) for g in groups] == [
        ("Attributes", ["cond:Smiling", "attr:Male", "svm:Eyeglasses"], True),
        ("SeFa", [f"sefa:{i}" for i in range(5)], True),
        ("GANSpace", ["ganspace:0", "ganspace:1"], False),
        ("Factors (continuous: head turn, skin tone)", ["factor:yaw", "factor:skin_tone"], False),
        ("Other labelled directions (raw mean difference, SVM normal)", ["attr:Smiling", "svm:Smiling", "svm:Male"], False),
    ]
    offered = offered_directions(faces())
    assert sorted(offered) == sorted(faces()) and len(offered) == len(set(offered))


def test_class_checkpoints_and_sefa_only_checkpoints():
    classes = DirectionSet([direction("sefa:0", "sefa", 0), direction("class:Sneaker", "class", 1), direction("cond:Sandal", "class", 2),
                            direction("class:Sandal", "class", 3)])
    assert [(g.title, g.names) for g in slider_groups(classes)] == [
        ("Classes", ["class:Sneaker", "cond:Sandal"]), ("SeFa", ["sefa:0"]),
        ("Other labelled directions (raw mean difference, SVM normal)", ["class:Sandal"])]
    sefa = DirectionSet([direction(f"sefa:{i}", "sefa", i) for i in range(4)])
    assert [g.title for g in slider_groups(sefa)] == ["SeFa"] and default_sliders(sefa) == ["sefa:0", "sefa:1", "sefa:2"]


def test_labels():
    d = faces()
    assert direction_label("z:3", d) == "raw z[3]"
    assert direction_label("cond:Smiling", d) == "cond:Smiling (50%)"
    assert direction_label("gone", d) == "gone"


def _evaluation(directions, flip=0.885, other=0.29, seeds=200, vector=None) -> dict:
    """meta.json's "evaluation" as training.evaluate --what directions writes it, for cond:Smiling."""
    measured = {"direction": "cond:Smiling", "vector": vector or directions["cond:Smiling"].fingerprint(), "seeds": seeds,
                "alpha": 3.0, "flip_rate": flip, "max_other_flip": other, "max_other_attribute": "Bangs"}
    floor = {"flip_rate": 1.0, "max_other_flip": 0.114, "max_other_attribute": "Bangs"}
    return {"directions": {"Smiling": {"default": "cond:Smiling", "by_direction": {"cond:Smiling": measured}, "renderer_edit": floor}}}


def test_a_slider_tooltip_says_what_was_measured_for_that_very_vector():
    d = faces()
    help_text = slider_help("cond:Smiling", d, _evaluation(d))
    assert help_text == ("cond:Smiling. Measured (+3 from 200 seeds without Smiling, judged by the eval net): Smiling appears on "
                         "88%; Bangs changes on 29% (a perfect edit changes at most 11%: Bangs).")
    # another slider of the same concept was not measured there: its own description only
    assert slider_help("attr:Smiling", d, _evaluation(d)) == "attr:Smiling"
    assert slider_help("z:3", d, _evaluation(d)) == "adds this much to one coordinate of z"


def test_stale_or_malformed_measurements_are_not_shown():
    d = faces()
    # the analysis was recomputed since: the figures belong to another vector
    assert measured_note("cond:Smiling", d, _evaluation(d, vector="0" * 16)) is None
    # a user's meta.json: wrong types or impossible values count as unmeasured, never as an error
    for bad in (_evaluation(d, flip="88%"), _evaluation(d, flip=float("nan")), _evaluation(d, other=1.5), _evaluation(d, seeds=True),
                {"directions": []}, {"directions": {"Smiling": "x"}}, [], None):
        assert measured_note("cond:Smiling", d, bad) is None, bad
        assert slider_help("cond:Smiling", d, bad) == "cond:Smiling"
