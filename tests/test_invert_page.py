"""The Invert & edit page through AppTest: an upload is inverted and edited, a bad upload is answered, links carry z.

The tiny checkpoint gets a quickly trained encoder saved under the default encoder's cache entry,
so the page finds it as it would a real one (its quality does not matter here).
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from explorer.invert import invert_picture
from explorer.urlstate import decode_latent_state
from tests.support.apptest import APP, TIMEOUT, image_urls, link
from tests.support.checkpoints import tiny_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest

PAGE = "pages/invert.py"


@pytest.fixture(scope="module")
def tiny_with_encoder(tiny_checkpoints):
    with tiny_encoder(tiny_checkpoints.tiny) as found:
        yield found


def page(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["ckpt"] = "tiny-faces"
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def test_an_upload_is_inverted_edited_and_linked(tiny_with_encoder):
    checkpoint, encoder = tiny_with_encoder
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    upload = io.BytesIO()
    picture.save(upload, format="PNG")
    at = page()
    assert [u.label for u in at.get("file_uploader")] and not image_urls(at)
    at.get("file_uploader")[0].set_value(("me.png", upload.getvalue(), "image/png"))
    at.run()
    assert not at.exception, at.exception
    expected = invert_picture(checkpoint, upload.getvalue(), "me.png", encoder=encoder)  # what the core gives
    params = link(at)
    z, offsets, errors = decode_latent_state(params, checkpoint.config.z_dim)
    assert errors == [] and offsets == {} and np.abs(z - expected.z).max() < 4e-3
    assert len(image_urls(at)) == 4  # picture, reconstruction, G(z), G(z + offsets)
    assert f"pixel RMS {expected.pixel_rms:.3f}" in " ".join(str(c) for c in [i.caption for e in at.get("image") for i in e.proto.imgs])
    before = image_urls(at)[-1]
    slider = at.slider[0]
    slider.set_value(2.0).run()
    assert not at.exception, at.exception
    assert image_urls(at)[-1] != before  # the edit changed
    assert link(at)["d"].endswith(":2")
    assert at.get("download_button")


def test_a_bad_upload_is_answered_with_a_message(tiny_with_encoder):
    at = page()
    at.get("file_uploader")[0].set_value(("notes.png", b"not a picture at all", "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert any("notes.png: not an image" in e.value for e in at.error)


def test_a_shared_link_opens_the_latent_with_its_edit(tiny_with_encoder):
    checkpoint, _ = tiny_with_encoder
    from explorer.urlstate import encode_latent_state

    z = torch.randn(checkpoint.config.z_dim, generator=torch.Generator().manual_seed(4)).numpy()
    at = page(**encode_latent_state(z, {}))
    assert len(image_urls(at)) == 2 and not at.warning  # G(z) and its (unedited) copy
    damaged = page(z="AAAA")
    assert any("cannot be used" in w.value for w in damaged.warning)


def test_the_gradio_invert_action_matches_the_core_and_refuses_bad_uploads(tiny_with_encoder, tmp_path):
    import gradio as gr

    from ui.gradio_explorer import Explorer

    checkpoint, encoder = tiny_with_encoder
    ex = Explorer(checkpoint)
    path = tmp_path / "me.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    zeros = [0.0] * len(ex.sliders)
    seen, rebuilt, edit, info = ex.invert(str(path), *zeros)
    expected = invert_picture(checkpoint, path, "me.png", encoder=encoder)
    assert np.array_equal(seen, expected.picture) and np.array_equal(rebuilt, expected.reconstruction)
    assert np.array_equal(edit, rebuilt)  # no offsets: the edit is the reconstruction
    assert f"`{expected.token}`" in info and f"pixel RMS {expected.pixel_rms:.3f}" in info
    moved = ex.invert(str(path), *([2.0] + zeros[1:]))[2]
    assert not np.array_equal(moved, rebuilt)
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(gr.Error, match="otes.png: not an image"):
        ex.invert(str(tmp_path / "notes.png"), *zeros)
    with pytest.raises(gr.Error, match="pload a picture first"):
        ex.invert(None, *zeros)
    with pytest.raises(gr.Error, match="slider values after the picture, got 1"):
        ex.invert(str(path), 1.0)
