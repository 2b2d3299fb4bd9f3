"""The Streamlit explorer through AppTest (no browser): every page runs, widgets change outputs, bad input is explained.

`AppTest.from_file` resolves relative paths from this file's folder, hence "../app.py". The app reads
the checkpoints folder from LATENT_LAB_CHECKPOINTS, which the `tiny_checkpoints` fixture sets.
"""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT

TIMEOUT = 120  # first runs import torch and load the model; later ones take well under a second


def image_urls(at: AppTest) -> list[str]:
    """Media URLs of every st.image on the page (content-addressed, so a new image means a new URL)."""
    return [img.url for element in at.get("image") for img in element.proto.imgs]


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def app(tiny_checkpoints, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def tiny(tiny_checkpoints):
    return tiny_checkpoints


# ----------------------------------------------------------------------------------------------- sidebar


def test_opens_on_generate_page_with_checkpoint_meta(tiny):
    at = app(tiny)
    assert at.title[0].value == "Generate & sliders"
    assert at.sidebar.selectbox(key="ckpt_pick").value == "tiny-faces"
    assert "synthetic-faces:64" in texts(at.sidebar.caption)
    assert not at.error
    assert len(image_urls(at)) >= 3  # the grid, G(z) and the edited G(z)


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


def test_typed_path_inside_the_folder_loads(tiny):
    at = app(tiny)
    at.sidebar.text_input(key="ckpt_typed").input(f"{tiny.tiny.name}/snapshots/step-00000008").run()
    assert not at.exception and not at.error
    assert at.title[0].value == "Generate & sliders"


# ----------------------------------------------------------------------------------------------- generate


def test_direction_slider_changes_the_image_and_the_url(tiny):
    at = app(tiny)
    before = image_urls(at)
    at.slider(key="gen_off::sefa:0").set_value(4.0).run()
    after = image_urls(at)
    assert not at.exception
    assert before[:-1] == after[:-1]  # the grid and G(z) stay
    assert before[-1] != after[-1]  # the edited image changed
    assert at.query_params["d"] == "sefa:0:4"
    assert at.query_params["seed"] == "0"


def test_raw_z_slider_and_seed_change_the_image(tiny):
    at = app(tiny)
    before = image_urls(at)[-1]
    at.slider(key="gen_off::z:0").set_value(-2.5).run()
    assert image_urls(at)[-1] != before
    at.number_input(key="gen_seed").set_value(7).run()
    assert at.query_params["seed"] == "7"
    next(b for b in at.button if b.label == "Reset sliders").click().run()
    assert at.slider(key="gen_off::z:0").value == 0.0


def test_url_state_is_applied(tiny):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.query_params["seed"] = "5"
    at.query_params["d"] = "sefa:1:1.5,z:3:-2"
    at.run()
    assert not at.exception and not at.warning
    assert at.number_input(key="gen_seed").value == 5
    assert at.slider(key="gen_off::sefa:1").value == 1.5
    assert at.slider(key="gen_off::z:3").value == -2.0


def test_malformed_url_seed_warns_and_falls_back(tiny):
    at = AppTest.from_file("../app.py", default_timeout=TIMEOUT)
    at.query_params["seed"] = "12abc"
    at.query_params["d"] = "sefa:0:lots,nonexistent:1"
    at.run()
    assert not at.exception
    warning = texts(at.warning)
    assert "The link could not be used" in warning
    assert "'12abc' is not a whole number" in warning
    assert "is not a number" in warning and "no direction 'nonexistent'" in warning
    assert at.number_input(key="gen_seed").value == 0


# ----------------------------------------------------------------------------------------------- arithmetic

ARITH = "pages/arithmetic.py"


def test_injected_board_state_produces_the_arithmetic_grid(tiny):
    at = app(tiny, ARITH)
    assert "Empty bins" in texts(at.warning)
    at.session_state["arith_board"] = {"assignment": [[0, 1, 2], [3, 4, 5], [6, 7, 8]]}
    at.run()
    assert not at.exception and not at.warning
    assert any("Y = " in m.value for m in at.markdown)
    captions = " ".join(img.caption for element in at.get("image") for img in element.proto.imgs)
    assert "G(Y) in the centre" in captions and "pixel space" in captions
    assert at.session_state["arith_bins"] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(at.metric) == 3  # one consistency score per bin


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
    assert any("Y = " in m.value for m in at.markdown)  # still computed, with the warning


def test_weights_change_the_result(tiny):
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": [[0, 1, 2], [3, 4, 5], [6, 7, 8]]}
    at.run()
    before = image_urls(at)
    at.number_input(key="arith_w_1").set_value(0.5).run()
    assert not at.exception
    assert image_urls(at)[-3:] != before[-3:]
    assert any("0.5·[neutral woman]" in m.value for m in at.markdown)


# ----------------------------------------------------------------------------------------------- walks

WALKS = "pages/walks.py"


def test_walk_through_seeds_and_along_a_direction(tiny):
    at = app(tiny, WALKS)
    assert not at.warning
    assert "65 frames" in texts(at.markdown)  # 9 keypoints, 8 frames per segment: 8 * 8 + 1
    assert len(at.get("download_button")) == 2
    assert len(at.get("plotly_chart")) == 2
    at.slider(key="walk_steps").set_value(4).run()
    assert "33 frames" in texts(at.markdown)
    at.radio(key="walk_kind").set_value("Along a direction").run()
    assert not at.exception
    assert "17 frames" in texts(at.markdown)


def test_walk_with_bad_seeds_explains(tiny):
    at = app(tiny, WALKS)
    at.text_input(key="walk_seeds").input("3, banana").run()
    assert not at.exception
    warning = texts(at.warning)
    assert "'banana' is not a whole number" in warning and "at least two keypoint seeds" in warning


# ----------------------------------------------------------------------------------------------- model


def test_model_page_shows_curves_samples_and_architecture(tiny):
    at = app(tiny, "pages/model.py")
    assert not at.warning
    assert len(at.get("plotly_chart")) == 1
    assert at.slider(key="model_sample").max == 1  # two sample grids (two epochs)
    assert len(at.dataframe) >= 2  # generator and discriminator tables
    assert any("Generator" in m.value for m in at.markdown)


# ----------------------------------------------------------------------------------------------- the real default


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT).is_dir(), reason="the shipped default checkpoint is not trained yet")
def test_smoke_on_the_shipped_default_checkpoint(tiny, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(CHECKPOINTS_ROOT))
    at = app(tiny)
    assert at.sidebar.selectbox(key="ckpt_pick").value == DEFAULT_CHECKPOINT
    assert not at.error
    for page in (ARITH, WALKS, "pages/model.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, texts(at.error))
    assert os.environ["LATENT_LAB_CHECKPOINTS"] == str(CHECKPOINTS_ROOT)


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / "fashion-mnist-32").is_dir(), reason="the shipped Fashion-MNIST checkpoint is missing")
def test_model_page_names_an_exported_ema_generator(tiny, monkeypatch):
    # an export holds one generator file; the page must still say it is the EMA one (meta's exported_from)
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(CHECKPOINTS_ROOT))
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select("fashion-mnist-32").run()
    at.switch_page("pages/model.py")
    at.run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Generator"] == "EMA"


# ----------------------------------------------------------------------------------------------- more pages


def test_auto_fill_uses_the_attribute_probe(tiny):
    at = app(tiny, ARITH)
    next(b for b in at.button if b.label.startswith("Auto-fill")).click().run()
    assert not at.exception, at.exception
    assert "Filled smiling woman (Smiling=1, Male=0)" in texts(at.success)
    bins = at.session_state["arith_bins"]
    assert [len(b) for b in bins] == [3, 3, 3]
    assert any("Y = " in m.value for m in at.markdown)


def test_directions_from_the_cache_appear_as_sliders(tiny):
    at = app(tiny)
    directions = at.multiselect(key="gen_dirs")
    assert any(o.startswith("ganspace:") for o in directions.options)
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
    assert any(o.startswith("ganspace:") for o in at.multiselect(key="gen_dirs").options)


FMAP = "pages/feature_map.py"


def test_feature_map_from_the_cache_and_a_selection(tiny):
    at = app(tiny, FMAP)
    assert len(at.get("plotly_chart")) == 1
    assert at.radio(key="fmap_layout").options == ["PCA"]  # a PCA-only map: UMAP was never run
    assert "Select points" in texts(at.info)
    at.selectbox(key="fmap_colour").select("attribute: Smiling").run()
    assert not at.exception
    # a selection as the browser reports it: customdata[0] is the point's index in the map
    at.session_state["fmap_plot"] = {"selection": {"points": [{"customdata": 70}, {"customdata": [3]}], "point_indices": [], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert "2 selected" in texts(at.subheader)
    captions = " ".join(img.caption for element in at.get("image") for img in element.proto.imgs)
    assert "seed 6" in captions and "real #" in captions  # point 70 is generated seed 6 (64 real points first)


def test_feature_map_compute_button_without_a_cache(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    at.switch_page(FMAP)
    at.run()
    assert "No feature map is cached" in texts(at.info)
    at.radio(key="fmap_method").set_value("pca").run()
    next(b for b in at.button if b.label.startswith("Compute feature map")).click().run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 1


def test_checkpoint_choice_and_sliders_survive_page_switches(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    at.slider(key="gen_off::sefa:0").set_value(2.0).run()
    for page in (WALKS, "pages/generate.py"):
        at.switch_page(page)
        at.run()
        assert at.sidebar.selectbox(key="ckpt_pick").value == tiny.bare.name
    assert at.slider(key="gen_off::sefa:0").value == 2.0
