"""Real exemplars on the arithmetic pages of both front ends, and the pages that need real images on an imported checkpoint.

Streamlit through AppTest, the Gradio demo through its Explorer's handlers. Expected values come from
the core (`invert_picture`, `fill_bins_from_dataset`, `arithmetic`) on the same checkpoint and encoder.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import analysis
from explorer.arithmetic import ConceptBin, arithmetic, check_arithmetic, consistency_baseline
from explorer.images import grid, to_uint8
from explorer.invert import invert_picture
from explorer.real_exemplars import DATASET_POOL, InvertedExemplar, fill_bins_from_dataset
from explorer.ztoken import z_from_token
from tests.support.apptest import ARITH, FMAP, app, captions, figures, from_link, image_urls, link, texts
from tests.support.checkpoints import tiny_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest

PAPER_BINS = [("smiling woman", 1.0), ("neutral woman", -1.0), ("neutral man", 1.0)]


def png(seed: int, size: tuple[int, int] = (40, 52)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def encoder(tiny_checkpoints):
    with tiny_encoder(tiny_checkpoints.tiny) as found:
        yield found


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def core_metrics(checkpoint, bins: list[ConceptBin]) -> dict[str, str]:
    result = arithmetic(checkpoint.generator, bins, checkpoint.config.z_dim, seed=0, jitter=0.25)
    checks = check_arithmetic(checkpoint.discriminator, bins, result, consistency_baseline(checkpoint.generator, checkpoint.discriminator))
    return {b.name: f"{c:.2f}" for b, c in zip(bins, checks.consistency)}


# ----------------------------------------------------------------------------------------------- Streamlit


def test_an_uploaded_picture_joins_its_bin_inverted_and_travels_in_the_link(tiny, encoder):
    checkpoint, enc = encoder
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": [[0, 1], [3, 4, 5], [6, 7, 8]]}
    at.run()
    assert "Bin 'smiling woman' has 2 images" in texts(at.warning)
    seeds_only = image_urls(at)[-3:]  # grid, pixel sum, bin means (content-addressed URLs)
    data = png(0)
    at.get("file_uploader")[0].set_value(("me.png", data, "image/png")).run()  # as a browser's upload reruns the page
    at.button(key="arith_real_add").click().run()
    assert not at.exception and not at.error, at.exception
    expected = invert_picture(checkpoint, data, "me.png", encoder=enc)  # the Invert & edit page's call
    (real,) = at.session_state["arith_real"][0]
    assert real.label == "me.png" and np.abs(real.z(checkpoint.config.z_dim) - expected.z).max() < 4e-3
    assert at.session_state["arith_real"][1:] == [[], []] and at.session_state["arith_bins"] == [[0, 1], [3, 4, 5], [6, 7, 8]]
    assert "inverted · me.png" in captions(at)
    assert not at.warning  # two seeds and the picture: three exemplars, the paper's stable setting
    with_picture = image_urls(at)[-3:]
    assert all(a != b for a, b in zip(with_picture, seeds_only))  # Y, the pixel sum and bin 0's mean all moved
    # the inverted z is averaged with the seeds' as a generated exemplar's would be: the core's consistency scores
    z_real = z_from_token(real.token, checkpoint.config.z_dim)
    bins = [ConceptBin(n, s, w, latents=[z_real] if i == 0 else []) for i, ((n, w), s) in enumerate(zip(PAPER_BINS, [[0, 1], [3, 4, 5], [6, 7, 8]]))]
    assert metrics(at) == core_metrics(checkpoint, bins)
    shared_link = link(at)
    assert shared_link["inv"] == f"{real.token};;" and shared_link["bins"] == "smiling woman:1:0,1;neutral woman:-1:3,4,5;neutral man:1:6,7,8"
    shared = from_link(shared_link, ARITH)  # someone opening the link: the same bins, picture and result
    assert shared.session_state["arith_real"] == [[InvertedExemplar(real.token, "from the link")], [], []]
    assert image_urls(shared)[-3:] == image_urls(at)[-3:] and "inverted · from the link" in captions(shared)
    at.button(key="arith_real_clear_0").click().run()  # removed: back to the seeds alone
    assert at.session_state["arith_real"] == [[], [], []] and image_urls(at)[-3:] == seeds_only and "inv" not in link(at)


def test_a_bad_upload_is_answered_and_the_good_ones_still_join(tiny, encoder):
    at = app(tiny, ARITH)
    at.get("file_uploader")[0].set_value([("notes.png", b"not a picture at all", "image/png"), ("me.png", png(1), "image/png")])
    at.selectbox(key="arith_real_bin").select(2).run()
    at.button(key="arith_real_add").click().run()
    assert not at.exception, at.exception
    assert "This upload cannot be inverted: notes.png: not an image" in texts(at.error)
    assert [[e.label for e in b] for b in at.session_state["arith_real"]] == [[], [], ["me.png"]]  # the good one still joins
    at.button(key="arith_real_add").click().run()  # the same pictures again: said, not doubled
    assert "Me.png is already in the bin." in texts(at.info) and len(at.session_state["arith_real"][2]) == 1


def test_fill_from_the_dataset_by_label_puts_inverted_real_pictures_into_the_named_bins(tiny, encoder):
    checkpoint, enc = encoder
    at = app(tiny, ARITH)
    at.session_state["arith_board"] = {"assignment": [[0, 1, 2], [3, 4, 5], [6, 7, 8]]}
    at.run()
    at.text_input(key="arith_name_2").input("blue sky").run()
    at.number_input(key="arith_fill_k").set_value(2).run()
    at.button(key="arith_fill").click().run()
    assert not at.exception and not at.error, at.exception
    dataset = analysis.load_real_dataset(checkpoint, DATASET_POOL)
    specs = [("smiling woman", 1.0), ("neutral woman", -1.0), ("blue sky", 1.0)]
    expected = fill_bins_from_dataset(checkpoint, dataset, specs, k=2, seed=0, encoder=enc)
    real = at.session_state["arith_real"]
    assert [[e.label for e in b] for b in real[:2]] == [[e.label for e in b] for b in expected.exemplars[:2]] and real[2] == []
    for shown, wanted in zip(real[:2], expected.exemplars[:2]):
        assert np.abs(np.stack([e.z(100) for e in shown]) - np.stack([e.z(100) for e in wanted])).max() < 4e-3
    names = dataset.attribute_names
    smiling, male = names.index("Smiling"), names.index("Male")
    assert [dataset.attributes[i, [smiling, male]].tolist() for i in expected.bins[0].indices] == [[1, 0], [1, 0]]
    # filled bins hold the dataset's pictures alone; the bin whose name names no label keeps its seeds
    assert at.session_state["arith_bins"] == [[], [], [6, 7, 8]]
    assert all(f in texts(at.success) for f in expected.filled) and "'blue sky' names none of synthetic-faces:64's labels" in texts(at.info)
    assert sum(c.startswith("inverted · synthetic-faces:64 #") for c in captions(at)) == 4
    assert "**Y = [smiling woman] − [neutral woman] + [blue sky]**" in texts(at.markdown)
    assert len(link(at)["inv"].split(";")[0].split(",")) == 2


def test_a_link_with_damaged_inverted_pictures_says_so(tiny):
    at = from_link({"ckpt": "tiny-faces", "bins": "a:1:1;b:-1:2", "inv": "AAAA;"}, ARITH)
    assert "bin 'a': 'AAAA' cannot be used" in texts(at.warning)
    assert at.session_state["arith_real"] == [[], []] and at.session_state["arith_bins"] == [[1], [2]]


# ----------------------------------------------------------------------------------------------- imported checkpoints


@pytest.fixture
def imported(tiny, tmp_path, monkeypatch):
    """The tiny run's networks brought in by training.import_checkpoint (no --dataset: its training data is unknown)."""
    from explorer.checkpoint import load_checkpoint
    from training.import_checkpoint import main

    source = load_checkpoint(tiny.tiny)
    torch.save(source.generator.state_dict(), tmp_path / "netG.pth")
    torch.save(source.discriminator.state_dict(), tmp_path / "netD.pth")
    root = tmp_path / "checkpoints"
    assert main([str(tmp_path / "netG.pth"), "--netD", str(tmp_path / "netD.pth"), "--out", str(root / "imported")]) == 0
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", str(root))
    with tiny_encoder(root / "imported") as (checkpoint, _):
        yield checkpoint


def test_pages_that_need_real_pictures_say_so_for_an_imported_checkpoint(imported):
    at = app(None, ARITH)
    assert at.sidebar.selectbox(key="ckpt_pick").value == "imported"
    assert f"imported from {imported.meta['imported_from']['generator']['path']} and its training data is unknown" in texts(at.info)
    assert "needs the training pictures" in texts(at.caption)
    keys = [b.key for b in at.button]
    assert "arith_real_add" in keys and "arith_fill" not in keys  # uploads work; the fill is not offered
    at.switch_page(FMAP)
    at.run()
    assert not at.exception and "its training data is unknown" in texts(at.info)
    at.radio(key="fmap_method").set_value("pca").run()
    next(b for b in at.button if b.label.startswith("Compute feature map")).click().run()
    assert not at.exception and not at.error and not at.warning  # no attempt to read pictures that do not exist
    assert [t["name"] for t in figures(at)[0]["data"]] == ["generated (5000)"]
    assert "its training data is unknown" in texts(at.info)  # still said beside the map


# ----------------------------------------------------------------------------------------------- Gradio


def test_gradio_groups_take_inverted_uploads_and_dataset_pictures(encoder, tmp_path):
    import gradio as gr

    from ui.gradio_explorer import Explorer

    checkpoint, enc = encoder
    ex, z_dim = Explorer(checkpoint), checkpoint.config.z_dim
    path = tmp_path / "me.png"
    path.write_bytes(png(2))
    a, b, c, gallery, note = ex.add_inverted([str(path)], "B", "", "", "")
    expected = invert_picture(checkpoint, path, "me.png", encoder=enc)
    assert a == c == "" and np.abs(z_from_token(b, z_dim) - expected.z).max() < 4e-3 and note == "Added 1 inverted picture(s) to B."
    z_b = z_from_token(b, z_dim)
    assert [caption for _, caption in gallery] == ["B · inverted"]
    assert np.array_equal(gallery[0][0], to_uint8(checkpoint.generator(torch.from_numpy(z_b)[None]).detach())[0])
    assert ex.add_inverted([str(path)], "B", "", b, "")[4] == "Added 0 inverted picture(s) to B. Me.png is already in the bin."
    # the arithmetic averages the inverted z with B's seed as with any exemplar: the core's grid, pixel for pixel
    grid_image, _, notes = ex.arithmetic("0, 1, 2", "3", "6, 7, 8", 0, 0.25, None, None, None, "", b, "")
    bins = [ConceptBin("smiling woman", [0, 1, 2], 1.0), ConceptBin("neutral woman", [3], -1.0, latents=[z_b]),
            ConceptBin("neutral man", [6, 7, 8], 1.0)]
    core = arithmetic(checkpoint.generator, bins, z_dim, seed=0, jitter=0.25)
    assert np.array_equal(grid_image, grid(core.grid_images, nrow=3)) and "bin 'neutral woman' has 2 images" in notes
    ex.arithmetic("0, 1, 2", "", "6, 7, 8", 0, 0.25, None, None, None, "", b, "")  # a group of inverted pictures alone is not empty
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(gr.Error, match="otes.png: not an image"):
        ex.add_inverted([str(tmp_path / "notes.png")], "A", "", "", "")
    with pytest.raises(gr.Error, match="A's inverted pictures: 'AAAA' cannot be used"):
        ex.arithmetic("1", "2", "3", 0, 0.25, None, None, None, "AAAA", "", "")
    # fill: groups named after the dataset's labels get its pictures alone, the others stay
    seeds_a, seeds_b, seeds_c, real_a, real_b, real_c, gallery, note = ex.fill_from_dataset(2, 0, None, None, "blue sky", "1", "2", "3", "", b, "")
    dataset = analysis.load_real_dataset(checkpoint, DATASET_POOL)
    fill = fill_bins_from_dataset(checkpoint, dataset, [("smiling woman", 1.0), ("neutral woman", -1.0), ("blue sky", 1.0)], k=2, encoder=enc)
    assert (seeds_a, seeds_b, seeds_c, real_c) == ("", "", "3", "")
    for tokens, wanted in zip((real_a, real_b), fill.exemplars):
        found = np.stack([z_from_token(t, z_dim) for t in tokens.split(", ")])
        assert np.abs(found - np.stack([e.z(z_dim) for e in wanted])).max() < 4e-3
    assert [caption for _, caption in gallery] == ["A · inverted"] * 2 + ["B · inverted"] * 2
    assert note.startswith("Filled with inverted dataset pictures: " + "; ".join(fill.filled)) and "'blue sky' names none" in note
    with pytest.raises(gr.Error, match="(?i)pictures per group must be"):
        ex.fill_from_dataset(9, 0, None, None, None, "", "", "", "", "", "")


def test_gradio_says_an_imported_checkpoint_has_no_pictures_to_fill_from(imported):
    import gradio as gr

    from ui.gradio_explorer import Explorer

    import gradio_app

    with pytest.raises(gr.Error, match="training data is unknown"):
        Explorer(imported).fill_from_dataset(3, 0, None, None, None, "", "", "", "", "", "")
    demo = gradio_app.build_demo(imported.path)  # the fill is not offered, uploads are
    apis = {fn.api_name for fn in demo.fns.values()}
    assert "add_inverted" in apis and "fill_from_dataset" not in apis
