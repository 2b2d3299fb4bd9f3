"""Which direction sliders the explorer offers, and which are on at first (explorer.sliders): one rule for both UIs."""
import numpy as np

from explorer.directions import Direction, DirectionSet
from explorer.sliders import concept_of, default_labelled, default_sliders, direction_label, offered_directions, slider_groups

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
