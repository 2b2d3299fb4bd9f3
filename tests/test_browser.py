"""The Streamlit explorer in a real browser: `streamlit run app.py` driven by Playwright with Debian's chromium.

Covers what AppTest cannot: the drag-and-drop board's JavaScript (HTML5 and pointer-event drags), slider
keyboard input, plotly clicks and hover previews, a real file upload (Invert & edit), and real file downloads. Screenshots of every page go
to tests/output/screenshots/. Skipped only where chromium is missing and CI is not set; in CI a missing
chromium is a failure. Never runs `playwright install`: pip's playwright drives the system chromium.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import io
from urllib.parse import parse_qs, urljoin, urlparse

import numpy as np
import pytest
from PIL import Image

from tests.support.checkpoints import spread_checkpoint, tiny_encoder
from tests.support.local_server import free_port, launch_chromium, start_streamlit, wait_for_streamlit

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "tests" / "output" / "screenshots"
# The app is idle when Streamlit's "running" widget and the loading skeletons are gone.
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && !document.querySelector('[data-testid=\"stSkeleton\"]')"
TIMEOUT_MS = 60_000  # the first page load imports torch and loads the model in the server


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Debian's chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (the browser tests run in CI, where it is)")
    return path


@pytest.fixture(scope="module")
def server(tiny_checkpoints, tmp_path_factory):
    """The app on a free port, on the fixture checkpoints; stopped by PID when the module is done."""
    _chromium()  # no browser, no point starting a server
    port = free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with open(log, "wb") as out:  # one torch thread: the tiny nets only lose time to a second one on a busy box
        process = start_streamlit(port, env={**tiny_checkpoints.env, "OMP_NUM_THREADS": "1"}, stdout=out)
    try:
        base = wait_for_streamlit(port, process, log=log)
        yield base
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        _chromium()
        context = launch_chromium(
            p,
            tmp_path_factory.mktemp("chromium-profile"),
            headless=True,
            viewport={"width": 1400, "height": 1000},
            accept_downloads=True,
        )
        context.set_default_timeout(TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def open_page(page, base: str, path: str, heading: str) -> None:
    page.goto(f"{base}/{path}")
    page.get_by_role("heading", name=heading).wait_for()
    wait_idle(page)


def wait_idle(page) -> None:
    page.wait_for_timeout(300)  # let a just-triggered rerun start
    page.wait_for_function(IDLE, timeout=TIMEOUT_MS)


def screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main section, so grow the viewport to its height first."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]'); return m ? m.scrollHeight : 0; }")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), 6000))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def image_src(page, caption: str) -> str:
    return page.locator('[data-testid="stImage"]', has_text=caption).locator("img").first.get_attribute("src")


# ----------------------------------------------------------------------------------------------- tests


def test_a_shared_link_as_the_fresh_servers_first_request(page, server):
    """First: a fresh server's first request is a link to a sub-page (Streamlit's pages/ folder relic runs it
    without app.py). The page must come with the app's own navigation, and the link's checkpoint and bins."""
    link = "arithmetic?ckpt=tiny-faces-bare&bins=smiling%20lady:1:0,1;neutral%20woman:-1:2;neutral%20man:1.5:3,4,5&jitter=0.5"
    open_page(page, server, link, "Vector arithmetic")
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Generate & sliders").wait_for()
    assert nav.get_by_text("Latent walks").is_visible() and nav.get_by_text("common").count() == 0
    bins = page.locator(".bin")
    bins.first.wait_for()
    assert [bins.nth(i).locator(".thumb").count() for i in range(3)] == [2, 1, 3]
    assert bins.nth(0).locator(".bin-title").inner_text() == "smiling lady (+1) (2)"
    page.get_by_text("G(Y) in the centre").first.wait_for()
    # the app writes the link back from what it shows (the noise seed it added included): the link's checkpoint is the active one
    assert "ckpt=tiny-faces-bare" in page.url and "jitter=0.5" in page.url and "noise=0" in page.url


def test_opens_on_the_generate_page(page, server):
    open_page(page, server, "", "Generate & sliders")
    assert page.locator('[data-testid="stSidebar"]').get_by_text("synthetic-faces:64").first.is_visible()
    assert page.locator('[data-testid="stImage"] img').count() >= 3
    for title in ("Vector arithmetic", "Latent walks", "Feature map", "Model"):
        assert page.locator('[data-testid="stSidebarNav"]').get_by_text(title).is_visible()
    assert page.locator('[data-testid="stSidebarNav"]').get_by_text("common").count() == 0  # helpers are no pages
    screenshot(page, "generate")


def test_moving_a_slider_changes_the_image(page, server):
    open_page(page, server, "", "Generate & sliders")
    before = image_src(page, "G(z + offsets)")
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="sefa:0").get_by_role("slider")
    thumb.focus()
    for _ in range(10):  # 10 steps of 0.1, typed faster than the app reruns: none may get lost
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => location.search.endsWith('d=sefa%3A0%3A1')")  # the state is in the URL
    wait_idle(page)
    assert image_src(page, "G(z + offsets)") != before
    screenshot(page, "generate-edited")


def test_dragging_samples_into_bins_shows_the_arithmetic_grid(page, server):
    open_page(page, server, "arithmetic", "Vector arithmetic")
    thumbs, bins = page.locator(".palette .thumb"), page.locator(".bin")
    thumbs.first.wait_for()
    assert page.get_by_text("Empty bins").first.is_visible()
    for k in range(3):  # HTML5 drag-and-drop
        thumbs.nth(k).drag_to(bins.nth(0))
        wait_idle(page)
    for k, b in ((3, 1), (4, 1), (5, 2), (6, 2), (7, 2)):  # pointer events, as a finger or pen would
        source, target = thumbs.nth(k).bounding_box(), bins.nth(b).bounding_box()
        page.mouse.move(source["x"] + source["width"] / 2, source["y"] + source["height"] / 2)
        page.mouse.down()
        page.mouse.move(target["x"] + target["width"] / 2, target["y"] + target["height"] / 2, steps=8)
        page.mouse.up()
        wait_idle(page)
    assert [bins.nth(i).locator(".thumb").count() for i in range(3)] == [3, 2, 3]
    # .first: while Streamlit swaps a rerun's elements in, the old and new copy of a text can both be on the page
    page.get_by_text("G(Y) in the centre").first.wait_for()
    assert page.get_by_text("Y = ").first.is_visible()
    assert page.get_by_text("bin 'neutral woman' has 2 images", exact=False).first.is_visible()
    # removing a sample with its × button updates the result
    bins.nth(1).locator("button").first.click()
    wait_idle(page)
    assert bins.nth(1).locator(".thumb").count() == 1
    page.get_by_text("has 1 image").first.wait_for()
    screenshot(page, "arithmetic")


def test_walk_downloads_as_gif_and_mp4(page, server):
    open_page(page, server, "walks", "Latent walks")
    assert page.get_by_text("65 frames").first.is_visible()
    with page.expect_download() as gif:
        page.get_by_role("button", name="Download GIF").click()
    data = Path(gif.value.path()).read_bytes()
    assert data[:6] in (b"GIF89a", b"GIF87a") and len(data) > 1000
    assert gif.value.suggested_filename == "walk.gif"
    with page.expect_download() as mp4:
        page.get_by_role("button", name="Download MP4").click()
    data = Path(mp4.value.path()).read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    screenshot(page, "walks")


def test_clicking_a_feature_map_point_shows_its_images(page, server):
    open_page(page, server, "feature_map", "Feature map")
    points = page.locator(".js-plotly-plot .scatterlayer path.point")
    points.first.wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot')].some(g => g.__latentLabHover)")
    box = points.nth(70).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y - 40)
    page.mouse.move(x, y, steps=5)  # hover: the floating preview is a static file served by Streamlit
    preview = page.locator("img.latent-lab-hover-thumb")
    preview.wait_for(state="visible")
    page.wait_for_function("() => { const i = document.querySelector('img.latent-lab-hover-thumb'); return i.complete && i.naturalWidth > 0; }")
    page.mouse.click(x, y)
    page.get_by_text("1 selected").first.wait_for()
    wait_idle(page)
    page.locator('[data-testid="stImage"]').filter(has_text="real #").first.wait_for()  # the nearest real images
    screenshot(page, "feature-map")


def test_model_page_shows_curves_and_architecture(page, server):
    open_page(page, server, "model", "Model")
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.get_by_text("Generator ·").first.is_visible()
    screenshot(page, "model")


@pytest.fixture
def spread_with_encoder(tiny_checkpoints):
    """A checkpoint whose pictures show an edit (`spread_checkpoint`), in the server's folder for this test only, with a
    quick encoder cached where the server looks it up."""
    run = spread_checkpoint(tiny_checkpoints.root / "tiny-spread")
    try:
        with tiny_encoder(run) as found:
            yield found
    finally:
        shutil.rmtree(run)


def shown_pixels(page, caption: str) -> np.ndarray:
    """The pixels of the st.image with this caption, as the server sends them (Streamlit encodes them as JPEG)."""
    response = page.request.get(urljoin(page.url, image_src(page, caption)))
    assert response.ok
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"), dtype=np.int16)


def test_an_uploaded_picture_is_inverted_edited_and_downloaded(page, server, spread_with_encoder, tmp_path):
    import torch

    from explorer.analysis import available_directions
    from explorer.generate import generate
    from explorer.images import to_uint8
    from explorer.latent import apply_offsets
    from explorer.urlstate import decode_latent_state

    checkpoint, _ = spread_with_encoder
    picture = tmp_path / "me.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(picture)
    open_page(page, server, "invert?ckpt=tiny-spread", "Invert & edit")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(picture))
    page.locator('[data-testid="stImage"]').filter(has_text="Reconstruction G(z)").first.wait_for()
    page.wait_for_function("() => location.search.includes('z=')")
    wait_idle(page)
    before = shown_pixels(page, "G(z + offsets)")
    thumb = page.locator('[data-testid="stSlider"]').first.get_by_role("slider")
    thumb.focus()
    for _ in range(20):  # +2.0 along the first direction slider, in steps of 0.1
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => new URLSearchParams(location.search).get('d')?.endsWith(':2')")
    wait_idle(page)
    after = shown_pixels(page, "G(z + offsets)")
    assert np.abs(after - before).mean() > 2  # the edit changed the picture (JPEG noise is well under that)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the edit (PNG)").click()
    data = Path(download.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and download.value.suggested_filename == "edit.png"
    edit = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    size = checkpoint.config.image_size
    assert edit.shape == (size, size, 3)
    # the download is G(z + offsets) for the latent and offsets in the link (z there is float16: a level or two apart)
    params = {k: v[-1] for k, v in parse_qs(urlparse(page.url).query).items()}
    directions, _, _ = available_directions(checkpoint)
    z, offsets, errors = decode_latent_state(params, checkpoint.config.z_dim, known_directions=set(directions))
    assert errors == [] and list(offsets.values()) == [2.0]
    edited = apply_offsets(torch.from_numpy(z), offsets, {n: d.vector for n, d in directions.items()})
    expected = to_uint8(generate(checkpoint.generator, edited[None]))[0].astype(np.int16)
    assert np.abs(edit - expected).max() <= 2 and np.abs(edit - expected).mean() < 0.5
    screenshot(page, "invert")
