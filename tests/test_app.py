"""The Streamlit explorer through AppTest (no browser): every page runs, widgets change outputs, bad input is explained.

`AppTest.from_file` resolves relative paths from this file's folder, hence "../app.py". The app reads
the checkpoints folder from LATENT_LAB_CHECKPOINTS, which the `tiny_checkpoints` fixture sets. Expected
values come from the core, computed here on the same checkpoint.
"""
from __future__ import annotations

import gc
import shutil

import pytest
import torch

from explorer import analysis
from explorer.arithmetic import ConceptBin, arithmetic, check_arithmetic, consistency_baseline
from explorer.checkpoint import load_checkpoint
from explorer.generate import generate, realism
from explorer.images import to_uint8
from explorer.latent import apply_offsets, z_from_seed
from explorer.selection import model_key
from tests.support.apptest import ARITH, WALKS, app, captions, figures, from_link, image_urls, link, names, texts
from tests.support.checkpoints import class_checkpoint, plot_values


PAPER = [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


# ----------------------------------------------------------------------------------------------- sidebar


def test_opens_on_generate_page_with_checkpoint_meta(tiny):
    at = app(tiny)
    assert at.title[0].value == "Generate & sliders"
    assert at.sidebar.selectbox(key="ckpt_pick").value == "tiny-faces"
    assert "synthetic-faces:64** · step 8 · 32 px RGB · z 100 · raw generator" in texts(at.sidebar.caption)
    assert not at.error
    assert captions(at) == [f"seed {s}" for s in range(16)] + ["G(z), seed 0", "G(z + offsets)"]
    assert link(at) == {"ckpt": "tiny-faces", "seed": "0"}


def test_typed_path_outside_the_checkpoints_folder_is_refused(tiny):
    at = app(tiny)
    at.sidebar.text_input(key="ckpt_typed").input("../../../etc").run()
    assert not at.exception
    assert "outside the checkpoints folder" in texts(at.sidebar.error)
    assert "No usable checkpoint" in texts(at.warning)


def test_garbage_file_and_broken_run_give_clear_errors(tiny):
    at = app(tiny)
    at.sidebar.text_input(key="ckpt_typed").input(tiny.garbage_file.name).run()
    assert not at.exception
    assert "is a file, not a checkpoint directory" in texts(at.sidebar.error)
    at.sidebar.text_input(key="ckpt_typed").input("").run()
    at.sidebar.selectbox(key="ckpt_pick").select("broken-run").run()
    assert not at.exception
    assert "broken-run cannot be opened" in texts(at.sidebar.error)
    assert "not valid JSON" in texts(at.sidebar.error) or "not a latent-lab checkpoint" in texts(at.sidebar.error)


def test_typed_path_inside_the_folder_loads_and_is_linked(tiny):
    at = app(tiny)
    typed = f"{tiny.tiny.name}/snapshots/step-00000008"
    at.sidebar.text_input(key="ckpt_typed").input(typed).run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Generate & sliders"
    assert at.query_params["ckpt"] == typed
    again = from_link(link(at))
    assert again.sidebar.text_input(key="ckpt_typed").value == typed and image_urls(again) == image_urls(at)


# ----------------------------------------------------------------------------------------------- generate


def test_direction_slider_changes_the_image_and_the_url(tiny):
    at = app(tiny)
    before = image_urls(at)
    at.slider(key="gen_off::sefa:0").set_value(4.0).run()
    after = image_urls(at)
    assert not at.exception
    assert before[:-1] == after[:-1]  # the grid and G(z) stay
    assert before[-1] != after[-1]  # the edited image changed
    assert link(at) == {"ckpt": "tiny-faces", "seed": "0", "d": "sefa:0:4"}
    assert "?ckpt=tiny-faces&seed=0&d=sefa%3A0%3A4" in texts(at.code)


def test_raw_z_slider_and_seed_change_the_image(tiny):
    at = app(tiny)
    before = image_urls(at)[-1]
    at.slider(key="gen_off::z:0").set_value(-2.5).run()
    assert image_urls(at)[-1] != before
    at.number_input(key="gen_seed").set_value(7).run()
    assert at.query_params["seed"] == "7" and captions(at)[-2] == "G(z), seed 7"
    next(b for b in at.button if b.label == "Reset sliders").click().run()
    assert at.slider(key="gen_off::z:0").value == 0.0


def test_edited_pair_metrics_are_the_cores_values(tiny):
    """The metrics show the core's values for the edited latent (the tiny D scores nearly everything 0.48: the delta is 0)."""
    at = app(tiny)
    at.slider(key="gen_off::z:0").set_value(-2.5).run()
    checkpoint = load_checkpoint(tiny.tiny)
    z = z_from_seed(0, checkpoint.config.z_dim)
    z_edit = apply_offsets(z, {"z:0": -2.5}, {})
    before, after = realism(checkpoint.discriminator, generate(checkpoint.generator, torch.stack([z, z_edit])))
    metrics = {m.label: m for m in at.metric}
    assert metrics["Realism D(G(z))"].value == f"{after:.2f}"
    assert metrics["Realism D(G(z))"].delta == f"{round(after - before, 2) + 0.0:+.2f} vs unedited"
    assert metrics["‖z + offsets‖"].value == f"{float(z_edit.norm()):.2f}"


def test_images_and_realism_come_from_one_pass_of_the_core(tiny):
    from ui import cache

    key = model_key(tiny.tiny)
    z = torch.stack([z_from_seed(s, 100) for s in (3, 4)])
    images, scores = cache.images_and_realism(key, z.numpy())
    checkpoint = load_checkpoint(tiny.tiny)
    expected = generate(checkpoint.generator, z)
    assert (images == to_uint8(expected)).all()
    assert scores.tolist() == realism(checkpoint.discriminator, expected).tolist()
    assert gc.get_freeze_count() > 0  # loading a checkpoint froze the long-lived heap: post-run GC stays cheap


def test_url_state_is_applied(tiny):
    at = from_link({"ckpt": "tiny-faces-bare", "seed": "5", "d": "sefa:1:1.5,z:3:-2"})
    assert not at.warning
    assert at.sidebar.selectbox(key="ckpt_pick").value == "tiny-faces-bare"
    assert at.number_input(key="gen_seed").value == 5
    assert at.slider(key="gen_off::sefa:1").value == 1.5
    assert at.slider(key="gen_off::z:3").value == -2.0
    assert link(at) == {"ckpt": "tiny-faces-bare", "seed": "5", "d": "sefa:1:1.5,z:3:-2"}


def test_malformed_url_seed_and_checkpoint_warn_and_fall_back(tiny):
    at = from_link({"ckpt": "no-such-run", "seed": "12abc", "d": "sefa:0:lots,nonexistent:1"})
    warning = texts(at.warning)
    assert "The link's checkpoint 'no-such-run' cannot be opened here" in warning
    assert "The link could not be used" in warning
    assert "'12abc' is not a whole number from 0 to 4294967295" in warning
    assert "is not a number" in warning and "no direction 'nonexistent'" in warning
    assert at.number_input(key="gen_seed").value == 0
    assert at.sidebar.selectbox(key="ckpt_pick").value == "tiny-faces"


# ----------------------------------------------------------------------------------------------- arithmetic

def test_injected_board_state_produces_the_arithmetic_grid(tiny):
    at = app(tiny, ARITH)
    assert "Empty bins 'smiling woman', 'neutral woman', 'neutral man'" in texts(at.warning)
    at.session_state["arith_board"] = {"assignment": PAPER}
    at.run()
    assert not at.exception and not at.warning
    assert "**Y = [smiling woman] − [neutral woman] + [neutral man]**" in texts(at.markdown)
    assert captions(at)[-3:] == [
        "G(Y) in the centre, G(Y + noise) around it", "The same sum in pixel space",
        "G(mean z) of each bin: smiling woman, neutral woman, neutral man",
    ]
    assert at.session_state["arith_bins"] == PAPER
    # the consistency metrics are the core's numbers for these bins
    checkpoint = load_checkpoint(tiny.tiny)
    bins = [ConceptBin(n, s, w) for n, s, w in zip(["smiling woman", "neutral woman", "neutral man"], PAPER, [1.0, -1.0, 1.0])]
    result = arithmetic(checkpoint.generator, bins, checkpoint.config.z_dim, seed=0, jitter=0.25)
    baseline = consistency_baseline(checkpoint.generator, checkpoint.discriminator)
    checks = check_arithmetic(checkpoint.discriminator, bins, result, baseline)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {b.name: f"{c:.2f}" for b, c in zip(bins, checks.consistency)}
    assert f"Random samples score {baseline:.2f}" in texts(at.caption)


def test_empty_bin_and_bin_of_one_are_explained(tiny):
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": [[0, 1, 2], [], [6, 7, 8]]}
    at.run()
    assert not at.exception
    assert "Empty bin 'neutral woman'" in texts(at.warning)
    at.session_state["arith_board"] = {"assignment": [[0, 1, 2], [3], [6, 7, 8]]}
    at.run()
    assert not at.exception
    assert "Bin 'neutral woman' has 1 image" in texts(at.warning)
    assert "**Y = [smiling woman] − [neutral woman] + [neutral man]**" in texts(at.markdown)  # still computed, with the warning
    assert {m.label: m.value for m in at.metric}["neutral woman"] == "—"


def test_weights_change_the_result(tiny):
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": PAPER}
    at.run()
    before = image_urls(at)
    at.number_input(key="arith_w_1").set_value(-0.5).run()
    assert not at.exception
    assert image_urls(at)[-3] != before[-3] and image_urls(at)[-2] != before[-2]  # grid and pixel sum
    assert image_urls(at)[-1] == before[-1]  # the bin means do not depend on the weights
    assert "**Y = [smiling woman] − 0.5·[neutral woman] + [neutral man]**" in texts(at.markdown)


def test_the_arithmetic_shows_the_attribute_classifiers_verdict(tiny):
    checkpoint = load_checkpoint(tiny.tiny)
    probe = analysis.app_probe(checkpoint)  # what Auto-fill does first: fit the probe into the analysis cache
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": PAPER}
    at.run()
    bins = [ConceptBin(n, s, w) for n, s, w in zip(["smiling woman", "neutral woman", "neutral man"], PAPER, [1.0, -1.0, 1.0])]
    result = arithmetic(checkpoint.generator, bins, checkpoint.config.z_dim, seed=0, jitter=0.25)
    verdict = check_arithmetic(checkpoint.discriminator, bins, result, 0.0, probe).verdict
    assert verdict.target == "smiling man"
    shown = f"**Attribute classifier: smiling man: {int(verdict.matches.sum())} of 9 (G(Y) {'included' if verdict.centre else 'not included'})**"
    assert shown in texts(at.markdown)
    assert "Of the 9 images it reads:" in texts(at.caption)


def test_link_round_trip_reproduces_checkpoint_bins_and_result(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    at.switch_page(ARITH)
    at.run()
    at.text_input(key="arith_name_0").input("smiling lady").run()
    at.number_input(key="arith_w_2").set_value(1.5).run()
    at.session_state["arith_board"] = {"assignment": [[10, 11], [12, 13, 14], [15]]}
    at.run()
    at.slider(key="arith_jitter").set_value(0.5).run()
    shared_link = link(at)
    assert shared_link == {"ckpt": tiny.bare.name, "bins": "smiling lady:1:10,11;neutral woman:-1:12,13,14;neutral man:1.5:15",
                    "jitter": "0.5", "noise": "0"}
    shared = from_link(shared_link, ARITH)  # a new session, as someone opening the link
    assert shared.sidebar.selectbox(key="ckpt_pick").value == tiny.bare.name
    assert shared.session_state["arith_bins"] == [[10, 11], [12, 13, 14], [15]]
    assert [shared.text_input(key=f"arith_name_{i}").value for i in range(3)] == ["smiling lady", "neutral woman", "neutral man"]
    assert shared.number_input(key="arith_w_2").value == 1.5 and shared.slider(key="arith_jitter").value == 0.5
    assert image_urls(shared)[-3:] == image_urls(at)[-3:]  # the same grid, pixel sum and bin means
    assert link(shared) == shared_link


def test_a_bad_arithmetic_link_is_repaired_with_messages(tiny):
    at = from_link({"ckpt": "tiny-faces", "bins": "a:x:1,2,q;b:9:3", "jitter": "nan"}, ARITH)
    warning = texts(at.warning)
    assert "weight 'x' is not a number; using 1" in warning and "'q' is not a whole number" in warning
    assert "outside +-3; using 3" in warning and "jitter 'nan'" in warning
    assert at.session_state["arith_bins"] == [[1, 2], [3]]


# ----------------------------------------------------------------------------------------------- class checkpoints


@pytest.fixture
def with_classes(tiny, tmp_path, monkeypatch):
    """A checkpoints folder with the tiny faces run and a class-labelled (Fashion-MNIST-like) checkpoint."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny.tiny, root / "tiny-faces")
    class_checkpoint(root / "tiny-classes")
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(root))
    return root


def test_a_class_checkpoint_gets_class_sliders_and_class_named_bins(with_classes):
    at = app(with_classes)
    at.sidebar.selectbox(key="ckpt_pick").select("tiny-classes").run()
    assert not at.exception and not at.error
    # the default rule: cond:NAME when the analysis has it, else the raw class:NAME; then the top SeFa directions
    assert at.multiselect(key="gen_dirs").value == ["class:Sneaker", "cond:Sandal", "sefa:0", "sefa:1", "sefa:2"]
    offered = names(at.multiselect(key="gen_dirs").options)
    assert {"svm:Sneaker", "class:Sandal", "svm:Sandal"} <= set(offered)
    # the Gradio demo over the same checkpoint offers exactly these directions, in this order
    from ui.gradio_explorer import Explorer
    gradio_sliders = Explorer(load_checkpoint(with_classes / "tiny-classes")).sliders
    assert [s.name for s in gradio_sliders if not s.name.startswith("z:")] == offered
    at.switch_page(ARITH)
    at.run()
    assert [at.text_input(key=f"arith_name_{i}").value for i in range(3)] == ["sneaker", "sandal", "ankle boot"]
    assert "Empty bins 'sneaker', 'sandal', 'ankle boot'" in texts(at.warning)
    # back to a faces checkpoint: its own bins, not the sneakers
    at.sidebar.selectbox(key="ckpt_pick").select("tiny-faces").run()
    assert [at.text_input(key=f"arith_name_{i}").value for i in range(3)] == ["smiling woman", "neutral woman", "neutral man"]
    at.switch_page("pages/generate.py")
    at.run()
    assert not any(n.startswith(("class:", "cond:")) for n in at.multiselect(key="gen_dirs").value)


# ----------------------------------------------------------------------------------------------- walks

def test_walk_through_seeds_and_along_a_direction(tiny):
    at = app(tiny, WALKS)
    assert not at.warning
    assert "65 frames" in texts(at.markdown)  # 9 keypoints, 8 frames per segment: 8 * 8 + 1
    assert [b.label for b in at.get("download_button")] == ["Download GIF", "Download MP4"]
    change, norms = figures(at)
    assert len(plot_values(change["data"][0]["y"])) == 64  # one change per pair of consecutive frames
    assert [shape["x0"] for shape in change["layout"]["shapes"]] == list(range(0, 65, 8))  # the keypoints
    assert len(plot_values(norms["data"][0]["y"])) == 65
    at.slider(key="walk_steps").set_value(4).run()
    assert "33 frames" in texts(at.markdown)
    at.radio(key="walk_kind").set_value("Along a direction").run()
    assert not at.exception
    assert "17 frames" in texts(at.markdown)
    assert at.selectbox(key="walk_direction").value == "sefa:0"  # no labelled direction in the tiny analysis


def test_walk_with_bad_seeds_explains(tiny):
    at = app(tiny, WALKS)
    at.text_input(key="walk_seeds").input("3, banana").run()
    assert not at.exception
    warning = texts(at.warning)
    assert "Keypoint seeds: 'banana' is not a whole number from 0 to 4294967295" in warning
    assert "A walk needs at least two keypoint seeds" in warning


# ----------------------------------------------------------------------------------------------- model


# ----------------------------------------------------------------------------------------------- feature map

# ----------------------------------------------------------------------------------------------- more pages


def test_auto_fill_uses_the_attribute_probe(tiny):
    at = app(tiny, ARITH)
    next(b for b in at.button if b.label.startswith("Auto-fill")).click().run()
    assert not at.exception, at.exception
    assert "Filled smiling woman (Smiling=1, Male=0)" in texts(at.success)
    bins = at.session_state["arith_bins"]
    assert [len(b) for b in bins] == [3, 3, 3] and all(0 <= s < 512 for b in bins for s in b)
    assert "**Y = [smiling woman] − [neutral woman] + [neutral man]**" in texts(at.markdown)


def test_directions_from_the_cache_appear_as_sliders(tiny):
    at = app(tiny)
    directions = at.multiselect(key="gen_dirs")
    assert [o for o in names(directions.options) if o.startswith("ganspace:")] == [f"ganspace:{i}" for i in range(10)]
    # The tiny model's probe is never 90 % sure, so its attribute directions are listed as skipped, with why.
    assert "attr:Smiling" in texts(at.markdown) and "confident positives" in texts(at.markdown)
    at.multiselect(key="gen_dirs").select("ganspace:0").run()
    before = image_urls(at)[-1]
    at.slider(key="gen_off::ganspace:0").set_value(3.0).run()
    assert image_urls(at)[-1] != before
    assert at.query_params["d"] == "ganspace:0:3"


def test_compute_directions_button_on_an_unanalysed_checkpoint(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    assert "Only SeFa directions" in texts(at.info)
    assert not any(o.startswith("ganspace:") for o in at.multiselect(key="gen_dirs").options)
    at.button(key="compute_dirs_generate").click().run()
    assert not at.exception and not at.error
    assert [o for o in names(at.multiselect(key="gen_dirs").options) if o.startswith("ganspace:")] == [f"ganspace:{i}" for i in range(10)]


def test_checkpoint_choice_and_sliders_survive_page_switches(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    at.slider(key="gen_off::sefa:0").set_value(2.0).run()
    for page in (WALKS, "pages/generate.py"):
        at.switch_page(page)
        at.run()
        assert at.sidebar.selectbox(key="ckpt_pick").value == tiny.bare.name
    assert at.slider(key="gen_off::sefa:0").value == 2.0
