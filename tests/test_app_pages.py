"""The Streamlit explorer's Model and Feature map pages, and every page on the shipped default checkpoint (AppTest)."""
from __future__ import annotations

import json
import os
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from explorer import analysis
from explorer.checkpoint import load_checkpoint, read_meta
from explorer.featuremap import discriminator_accuracy
from explorer.model import count_parameters
from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT
from explorer.selection import model_key
from tests.support.apptest import APP, ARITH, FMAP, WALKS, app, captions, figures, names, texts
from tests.support.checkpoints import plot_values


def test_model_page_shows_curves_samples_and_architecture(tiny):
    at = app(tiny, "pages/model.py")
    assert not at.warning
    (curves,) = figures(at)
    assert [t["name"] for t in curves["data"]] == ["loss D", "loss G", "D(x)", "D(G(z))", "images / s", "sample diversity"]
    assert list(plot_values(curves["data"][0]["x"])) == [2, 4, 6, 8]  # --log-every 2 over 8 steps
    assert at.slider(key="model_sample").max == 1  # two sample grids (two epochs)
    assert "Drawn by the raw generator, the one the explorer shows." in texts(at.caption)
    checkpoint = load_checkpoint(tiny.tiny)
    tables = [d.value for d in at.dataframe if "layer" in d.value.columns]
    assert [t["parameters"].sum() for t in tables] == [count_parameters(checkpoint.generator), count_parameters(checkpoint.discriminator)]
    assert tables[0]["output"].iloc[-1] == "3 × 32 × 32" and tables[1]["output"].iloc[-1] == "1 × 1 × 1"
    assert f"**Generator** · {count_parameters(checkpoint.generator):,} parameters" in texts(at.markdown)


def test_feature_map_from_the_cache_and_a_selection(tiny):
    at = app(tiny, FMAP)
    assert at.radio(key="fmap_layout").options == ["PCA"]  # a PCA-only map: UMAP was never run
    (figure,) = figures(at)
    assert [t["name"] for t in figure["data"]] == ["real (64)", "generated (64)"]
    fmap = analysis.cached_feature_map(load_checkpoint(tiny.tiny), n_real=64, n_fake=64, method="pca")
    assert discriminator_accuracy(fmap).note in texts(at.info)  # D's real/fake accuracy, and what islands mean
    assert "Select points" in texts(at.info)
    at.selectbox(key="fmap_colour").select("Smiling").run()
    assert not at.exception
    assert [t["name"].split(" (")[0] for t in figures(at)[0]["data"]] == ["Smiling", "not Smiling"]  # the probe labelled every generated point
    # a selection as the browser reports it: customdata[0] is the point's index in the map
    at.session_state["fmap_plot"] = {"selection": {"points": [{"customdata": 70}, {"customdata": [3]}], "point_indices": [], "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert "2 selected" in texts(at.subheader)
    assert f"seed 6 · D {fmap.d_score[70]:.2f}" in captions(at)  # point 70 is generated seed 6 (64 real points first)
    assert f"real #{fmap.index[3]} · D {fmap.d_score[3]:.2f}" in captions(at)


def test_feature_map_compute_button_without_a_cache(tiny):
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select(tiny.bare.name).run()
    at.switch_page(FMAP)
    at.run()
    assert "No feature map is cached" in texts(at.info)
    at.radio(key="fmap_method").set_value("pca").run()
    next(b for b in at.button if b.label.startswith("Compute feature map")).click().run()
    assert not at.exception and not at.error
    names = [t["name"] for t in figures(at)[0]["data"]]
    assert names[0].startswith("real (") and names[1] == "generated (5000)"


# ----------------------------------------------------------------------------------------------- the real default


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT).is_dir(), reason="the shipped default checkpoint is not trained yet")
def test_smoke_on_the_shipped_default_checkpoint(tiny, monkeypatch):
    from ui.hover import preview_folder

    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(CHECKPOINTS_ROOT))
    at = app(tiny)
    assert at.sidebar.selectbox(key="ckpt_pick").value == DEFAULT_CHECKPOINT
    assert not at.error
    for page in (ARITH, WALKS, FMAP, "pages/model.py"):
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, texts(at.error))
    # The map page started writing its 10,000 hover previews in the background (unless a server already did):
    # remove the folder, so that its next write fails and the thread stops instead of taking CPU from the suite.
    fmap_file = analysis.find_feature_maps(load_checkpoint(CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT))[0]
    if not (preview_folder(model_key(CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT), fmap_file.stem) / ".complete").exists():
        shutil.rmtree(preview_folder(model_key(CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT), fmap_file.stem), ignore_errors=True)
    assert os.environ["LATENT_LAB_CHECKPOINTS"] == str(CHECKPOINTS_ROOT)


def shipped_model_page(tiny_checkpoints, monkeypatch, name: str) -> AppTest:
    """The Model page of the shipped checkpoint `name`, picked in the sidebar as a user would."""
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(CHECKPOINTS_ROOT))
    at = app(tiny_checkpoints)
    at.sidebar.selectbox(key="ckpt_pick").select(name).run()
    at.switch_page("pages/model.py")
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / "fashion-mnist-32").is_dir(), reason="the shipped Fashion-MNIST checkpoint is missing")
def test_model_page_names_an_exported_ema_generator(tiny, monkeypatch):
    # an export holds one generator file; the page must still say it is the EMA one (meta's exported_from)
    at = shipped_model_page(tiny, monkeypatch, "fashion-mnist-32")
    assert {m.label: m.value for m in at.metric}["Generator"] == "EMA"
    assert "Drawn by the EMA generator, the one the explorer shows." in texts(at.caption)


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT).is_dir(), reason="the shipped default checkpoint is not trained yet")
def test_model_page_shows_the_shipped_faces_training_command(tiny, monkeypatch):
    at = shipped_model_page(tiny, monkeypatch, "synthetic-faces-64")
    command = json.loads((CHECKPOINTS_ROOT / "synthetic-faces-64" / "meta.json").read_text())["training_command"]
    assert command.startswith("python -m training.run --dataset synthetic-faces:100000 ") and "--d-width 32" in command
    assert [block.value for block in at.code] == [command]
    assert "Drawn by the EMA generator, the one the explorer shows." in texts(at.caption)
    # the sliders' measurements, with what a perfect slider scores under the same judge beside each
    directions = json.loads((CHECKPOINTS_ROOT / "synthetic-faces-64" / "meta.json").read_text())["evaluation"]["directions"]
    tables = [m.value for m in at.markdown if m.value.startswith("| attribute | direction |")]
    assert tables == [directions["table"]], tables
    hat_floor = directions["Wearing_Hat"]["renderer_edit"]
    assert (f"| Wearing_Hat | the renderer's own edit (a perfect slider) | 1.00 | {hat_floor['max_other_flip']:.2f} (Bangs) |"
            in tables[0])


def test_training_grids_from_another_kind_of_generator_are_labelled(tiny, tmp_path, monkeypatch):
    """A run trained with --ema whose checkpoint is explored with its raw generator (as the shipped faces one)."""
    root = tmp_path / "checkpoints"
    shutil.copytree(tiny.tiny, root / "ema-run")
    snapshot = root / "ema-run" / "snapshots" / "step-00000008"
    meta = json.loads((snapshot / "meta.json").read_text())
    meta["training"]["ema"] = True
    (snapshot / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(root))
    at = app(tiny, "pages/model.py")
    assert "These grids were drawn during training by the **EMA generator**, while the explorer shows the **raw** one" in texts(at.warning)
    assert captions(at)[0] == "epoch_002 (2 of 2, EMA generator, same fixed noise)"


def test_model_page_shows_the_shipped_evaluation_or_how_to_get_one(tiny_checkpoints, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/model.py")
    at.run()
    assert not at.exception, at.exception
    assert any("Not evaluated yet" in str(i.value) for i in at.info)  # the tiny checkpoint has no evaluation

    at = shipped_model_page(tiny_checkpoints, monkeypatch, "fashion-mnist-32")
    shipped = read_meta(CHECKPOINTS_ROOT / "fashion-mnist-32")[1]["evaluation"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["FID"] == f"{shipped['fid']['fid']:.4g}"
    assert "neighbors.png" in at.selectbox(key="model_eval_figure").options
    assert any("Memorization" in str(m.value) for m in at.markdown)


@pytest.mark.skipif(not (CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT).is_dir(), reason="the shipped default checkpoint is not trained yet")
def test_the_shipped_hat_slider_says_what_was_measured_in_both_front_ends(tiny, monkeypatch):
    """The tooltip carries training.evaluate's figures for that very slider, with the perfect edit's beside them."""
    import gradio_app

    directions = json.loads((CHECKPOINTS_ROOT / "synthetic-faces-64" / "meta.json").read_text())["evaluation"]["directions"]
    measured, floor = directions["Wearing_Hat"]["by_direction"]["cond:Wearing_Hat"], directions["Wearing_Hat"]["renderer_edit"]
    expected = (f"Measured (+3 from 200 seeds without Wearing_Hat, judged by the eval net): Wearing_Hat appears on "
                f"{measured['flip_rate']:.0%}; Bangs changes on {measured['max_other_flip']:.0%} "
                f"(a perfect edit changes at most {floor['max_other_flip']:.0%}: Bangs).")
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(CHECKPOINTS_ROOT))
    at = app(tiny)
    at.sidebar.selectbox(key="ckpt_pick").select("synthetic-faces-64").run()
    assert not at.exception, at.exception
    assert at.slider(key="gen_off::cond:Wearing_Hat").help.endswith(expected)
    sliders = {s.name: s for s in gradio_app.Explorer(load_checkpoint(CHECKPOINTS_ROOT / "synthetic-faces-64")).sliders}
    assert sliders["cond:Wearing_Hat"].info.endswith(expected)
