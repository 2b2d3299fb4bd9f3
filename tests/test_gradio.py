"""The Gradio demo end to end: served on 127.0.0.1 and driven through gradio_client, raw HTTP and a real browser.

Uses the session's tiny trained checkpoint (`tiny_checkpoints` in conftest.py). One server is shared
by the module's tests; every bad input must come back as an error to the caller while the server
keeps answering. The browser test needs Debian's `chromium` (never `playwright install`); it is
skipped only when chromium is missing outside CI.
"""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.checkpoints import class_checkpoint, plot_values
from tests.support.local_server import free_port, launch_chromium

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
from gradio_client import Client

import gradio_app

# gradio's queue trips pandas 3 deprecation warnings on every event: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated")

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "tests" / "output" / "screenshots" / "gradio.png"
@pytest.fixture(scope="module")
def analysed(tiny_checkpoints, tmp_path_factory) -> Path:
    """A copy of the tiny run whose analysis cache holds an attribute direction and a (PCA) feature map.

    Both are written through the core's public load-or-compute functions, so this also checks that the
    demo's lookup-only readers find what the core caches. A copy, so the session's tiny run stays bare
    for the other test files.
    """
    from explorer import analysis, featuremap
    from explorer.checkpoint import load_checkpoint
    from explorer.datasets import load_dataset
    from explorer.directions import Direction, DirectionSet, sefa_directions

    run = tmp_path_factory.mktemp("gradio") / "analysed"
    shutil.copytree(tiny_checkpoints.tiny, run)
    checkpoint = load_checkpoint(run)
    z_dim = checkpoint.config.z_dim
    smiling = Direction("attr:Smiling", np.eye(z_dim)[3], "attribute", 0.9, "Smiling: mean z difference")
    svm = Direction("svm:Smiling", np.eye(z_dim)[4], "attribute", 0.8, "Smiling: SVM normal")
    male = Direction("attr:Male", np.eye(z_dim)[5], "attribute", 0.9, "Male: mean z difference")
    cond_male = Direction("cond:Male", np.eye(z_dim)[6], "attribute", 0.9, "Male, others held")
    yaw = Direction("factor:yaw", np.eye(z_dim)[7], "factor", 0.7, "yaw: slope of the probe's estimate on z")
    build = featuremap.build_feature_map
    # The real analyses take minutes (probe, 5000 samples, UMAP's numba compile); what the demo depends
    # on is the cache key and file format, so smaller results are cached under the default parameters' key.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(analysis, "compute_directions", lambda *a, **k: DirectionSet([*sefa_directions(checkpoint.generator), smiling, svm, male, cond_male, yaw]))
        mp.setattr(analysis, "build_feature_map", lambda ck, ds, n_real, n_fake, *rest: build(ck, ds, n_real, 300, *rest))
        analysis.load_or_compute_directions(checkpoint)
        dataset = load_dataset(checkpoint.dataset["spec"], image_size=32)
        analysis.load_or_build_feature_map(checkpoint, dataset, method="pca")
        analysis.load_or_fit_probe(checkpoint, dataset, max_per_class=30)  # the classifier behind the arithmetic's verdict
    return run


@pytest.fixture(scope="module")
def served(analysed):
    demo = gradio_app.build_demo(analysed)
    url, share_url = gradio_app.launch(demo, port=free_port(), concurrency=2, quiet=True)
    assert url.startswith("http://127.0.0.1:") and share_url is None
    try:
        yield demo, url, Client(url, verbose=False)
    finally:
        demo.close()


@pytest.fixture
def bare(tiny_checkpoints, tmp_path, monkeypatch) -> Path:
    """A copy of the tiny run with no analysis anywhere (empty cache folder)."""
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "cache"))
    shutil.copytree(tiny_checkpoints.tiny, tmp_path / "bare")
    for folder in list((tmp_path / "bare").rglob("analysis")):  # what precompute (or another test) cached there
        shutil.rmtree(folder)
    return tmp_path / "bare"


def png_size(path: str) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "image outputs are PNG (format='png'), not WebP"
    return Image.open(io.BytesIO(data)).size


def raw_call(url: str, api: str, body: str) -> str:
    """POST a hand-written JSON body (which may hold NaN/Infinity: gradio_client refuses to send them)."""
    response = httpx.post(f"{url}gradio_api/call/{api}", content=body, headers={"content-type": "application/json"}, timeout=30)
    response.raise_for_status()
    return httpx.get(f"{url}gradio_api/call/{api}/{response.json()['event_id']}", timeout=60).text


# ----------------------------------------------------------------------------------------------- packaging


def test_the_demo_runs_as_a_script_from_any_folder(tiny_checkpoints, tmp_path):
    """`python gradio_app.py --help` from another folder: the script finds its own modules (explorer/, ui/)."""
    out = subprocess.run([sys.executable, str(REPO / "gradio_app.py"), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python gradio_app.py") and "--share" in out.stdout


# ----------------------------------------------------------------------------------------------- every API


def test_generate_is_seeded_and_sliders_move_the_image(served):
    demo, _, client = served
    first, info = client.predict(5, api_name="/generate")
    again, _ = client.predict(seed=5, api_name="/generate")
    other, _ = client.predict(6, api_name="/generate")
    assert png_size(first) == (32, 32)
    assert "seed 5" in info and "D(x)" in info
    assert Path(first).read_bytes() == Path(again).read_bytes() != Path(other).read_bytes()
    # Sliders have API names: raw coordinates z_0.., then the directions in the core's order (explorer.sliders):
    # one default per attribute (cond:Male, as it exists; attr:Smiling, as no cond:Smiling does), SeFa, the rest.
    names = [s.api_name for s in demo.explorer.sliders]
    assert names == ["z_0", "z_1", "z_2", "z_3", "attr_Smiling", "cond_Male", *(f"sefa_{i}" for i in range(10)), "factor_yaw", "svm_Smiling", "attr_Male"]
    assert [s.group for s in demo.explorer.sliders[4:7]] == ["Attributes", "Attributes", "SeFa"]
    moved, _ = client.predict(seed=5, attr_Smiling=3.0, api_name="/generate")
    nudged, _ = client.predict(seed=5, z_1=-2.0, api_name="/generate")
    assert Path(moved).read_bytes() != Path(first).read_bytes() != Path(nudged).read_bytes()


def test_both_front_ends_offer_the_same_directions(analysed, tiny_checkpoints, tmp_path):
    """The Streamlit page's multiselect and the Gradio sliders list the same directions in the same order."""
    from explorer import analysis
    from explorer.checkpoint import load_checkpoint
    from explorer.sliders import offered_directions

    for path in (analysed, class_checkpoint(tmp_path / "classes")):
        checkpoint = load_checkpoint(path)
        directions, _, _ = analysis.available_directions(checkpoint)
        gradio_sliders = [s.name for s in gradio_app.Explorer(checkpoint).sliders if not s.name.startswith("z:")]
        assert gradio_sliders == offered_directions(directions)  # what pages/generate.py offers
    assert gradio_sliders[:2] == ["class:Sneaker", "cond:Sandal"]  # the class checkpoint: the default rule, classes first
    assert gradio_app.Explorer(checkpoint).bin_names == ["sneaker", "sandal", "ankle boot"]  # as the Streamlit board's


def test_exemplars_and_arithmetic(served):
    _, _, client = served
    gallery = client.predict(10, 6, api_name="/exemplars")
    assert [item["caption"] for item in gallery] == [f"seed {s}" for s in range(10, 16)]
    assert png_size(gallery[0]["image"]) == (32, 32)
    grid_png, pixel_png, notes = client.predict("0, 1, 2", "3 4 5", "6,7,8", 0, 0.25, api_name="/arithmetic")
    assert png_size(grid_png) == (3 * 32 + 4 * 2, 3 * 32 + 4 * 2)  # 3x3 tiles with make_grid's 2 px padding
    assert png_size(pixel_png) == (32, 32)
    assert "⚠" not in notes  # three exemplars per group: the paper's stable setting
    assert re.search(r"\*\*Attribute classifier: smiling man: \d of 9 \(G\(Y\) (not )?included\)\*\*", notes), notes
    assert re.search(r"Bin consistency \(D features; random samples: \d\.\d\d\): smiling woman \d\.\d\d, neutral woman", notes), notes
    _, _, notes = client.predict("0, 1, 2", "3 4 5", "6,7,8", 0, 0.25, "a", "b", "c", api_name="/arithmetic")
    # names that name no attribute: no verdict, and the names label the consistency scores
    assert "Attribute classifier" not in notes and re.search(r"\): a \d\.\d\d, b \d\.\d\d, c \d\.\d\d", notes), notes
    _, _, notes = client.predict("0", "3", "6", 0, 0.25, api_name="/arithmetic")
    assert notes.count("⚠") == 3 and "unstable" in notes


def test_arithmetic_takes_inverted_pictures_as_z_tokens(served):
    """/arithmetic's parameters after the names: each group's inverted pictures (z tokens, as /add_inverted returns them)."""
    import torch

    from explorer.ztoken import z_to_token

    demo, _, client = served
    z = torch.randn(2, demo.explorer.z_dim, generator=torch.Generator().manual_seed(9)).numpy()
    tokens = ", ".join(z_to_token(v) for v in z)
    seeds_only = Path(client.predict("0, 1, 2", "3", "6,7,8", 0, 0.25, api_name="/arithmetic")[0]).read_bytes()
    grid_png, _, notes = client.predict("0, 1, 2", "3", "6,7,8", 0, 0.25, None, None, None, "", tokens, "", api_name="/arithmetic")
    assert Path(grid_png).read_bytes() != seeds_only and "⚠" not in notes  # B: one seed and two pictures, averaged
    _, _, notes = client.predict("0, 1, 2", "", "6,7,8", 0, 0.25, None, None, None, "", tokens, "", api_name="/arithmetic")
    assert "has 2 images" in notes  # a group of inverted pictures alone
    with pytest.raises(Exception, match="B's inverted pictures: 'xyz' cannot be used"):
        client.predict("1", "2", "3", 0, 0.25, None, None, None, "", "xyz", "", api_name="/arithmetic")
    assert {"/add_inverted", "/fill_from_dataset"} <= {f"/{fn.api_name}" for fn in demo.fns.values()}


def test_gallery_click_adds_seed_to_the_chosen_group():
    def click(index):
        return gr.SelectData(None, {"index": index, "value": None, "selected": True})

    seeds = [40, 41, 42]
    assert gradio_app.Explorer.pick(seeds, "B", "", "7", "", click(2)) == ("", "7, 42", "")
    assert gradio_app.Explorer.pick(seeds, "B", "", "7, 42", "", click(2)) == ("", "7, 42", "")  # once only
    assert gradio_app.Explorer.pick([], "A", "1", "", "", click(0)) == ("1", "", "")  # no gallery shown yet


def test_walk_returns_gif_and_mp4(served):
    _, _, client = served
    preview, gif, mp4, info = client.predict("0, 1, 2", 8, "slerp", True, 12, api_name="/walk")
    gif_bytes, mp4_bytes = Path(gif).read_bytes(), Path(mp4).read_bytes()
    assert gif_bytes[:6] == b"GIF89a" and Path(preview).read_bytes() == gif_bytes
    assert mp4_bytes[4:8] == b"ftyp" and len(mp4_bytes) > 1000
    with Image.open(gif) as im:
        assert im.n_frames == 3 * 8  # looped: K * frames per segment
    assert info.startswith("24 frames, slerp (looped)")
    _, gif, _, info = client.predict("0, 1", 4, "lerp", False, 12, api_name="/walk")
    with Image.open(gif) as im:
        assert im.n_frames == 4 + 1  # open walk ends on the last keypoint


def test_feature_map_plot_from_the_cache(served):
    demo, _, client = served
    plot, caption = client.predict("real vs generated", 200, api_name="/feature_map")
    figure = json.loads(plot["plot"])
    shown = [len(plot_values(trace["x"])) for trace in figure["data"]]
    assert [trace["name"] for trace in figure["data"]] == [f"real ({shown[0]})", f"generated ({shown[1]})"] and sum(shown) == 200
    assert figure["layout"]["title"]["text"] == "PCA (first two components) of discriminator features"
    assert caption.startswith("364 points (64 real, 300 generated), showing a random 200; colour: real vs generated. D tells real")
    figure = json.loads(client.predict("Smiling", 20000, api_name="/feature_map")[0]["plot"])
    names = [trace["name"].split(" (")[0] for trace in figure["data"]]
    assert names[:2] == ["Smiling", "not Smiling"] and names[-1] == "unlabelled"  # generated: no probe
    assert sum(len(plot_values(trace["x"])) for trace in figure["data"]) == 364
    figure = json.loads(client.predict("D(x) realism score", 100, api_name="/feature_map")[0]["plot"])
    assert len(figure["data"]) == 1 and len(plot_values(figure["data"][0]["marker"]["color"])) == 100
    assert "Smiling" in demo.explorer.colorings()


def test_feature_map_without_a_cache_says_so(bare):
    demo = gradio_app.build_demo(bare)
    try:
        url, _ = gradio_app.launch(demo, port=free_port(), quiet=True)
        with pytest.raises(Exception, match="No feature map has been computed"):
            Client(url, verbose=False).predict(None, 1000, api_name="/feature_map")
        assert demo.explorer.sliders[4].api_name == "sefa_0"  # no cached attribute directions either
    finally:
        demo.close()


# ----------------------------------------------------------------------------------------------- bad input


BAD_CALLS = [
    ("/generate", (-1,), "seed must be between 0 and 4294967295"),
    ("/generate", (2**33,), "seed must be between 0"),
    ("/generate", (1.5,), "whole number"),
    ("/generate", (3, 50.0), "greater than maximum"),  # slider beyond its range: gradio's own bound check
    ("/generate", ("12abc",), "seed: '12abc' is not a whole number from 0 to 4294967295"),
    ("/exemplars", (0, 5000), "greater than maximum"),  # a huge gallery
    ("/exemplars", (2**32 - 2, 8), "go past the largest seed"),
    # the same messages as the Streamlit page's (explorer.arithmetic.empty_bins_message, explorer.latent.parse_seed_list)
    ("/arithmetic", ("", "1", "2", 0, 0.25), "empty bin 'smiling woman': put at least one exemplar into each bin"),
    ("/arithmetic", ("1", "2", " ", 0, 0.25), "empty bin 'neutral man'"),
    ("/arithmetic", ("1, x", "2", "3", 0, 0.25), "bin 'smiling woman': 'x' is not a whole number from 0 to 4294967295"),
    ("/arithmetic", ("1", "2", ",".join(map(str, range(100))), 0, 0.25), "lists 100 seeds; at most 64 are allowed"),
    ("/arithmetic", ("1", "4294967296", "3", 0, 0.25), "'4294967296' is not a whole number from 0 to 4294967295"),
    ("/arithmetic", ("1", "9" * 5000, "3", 0, 0.25), "characters long"),
    ("/walk", ("7", 8, "slerp", True, 12), "a walk needs at least two keypoint seeds"),
    ("/walk", ("1, banana, 2", 8, "slerp", True, 12), "keypoint seeds: 'banana' is not a whole number"),
    ("/walk", (",".join(map(str, range(16))), 60, "slerp", True, 12), "at most 240 are allowed"),
    ("/walk", ("1, 2", 0, "slerp", True, 12), "less than minimum"),
    ("/walk", ("1, 2", 8, "cubic", True, 12), "cubic"),
    ("/feature_map", (None, 10**6), "greater than maximum"),
    ("/feature_map", ("Wearing_Crown", 100), "not in the list of choices"),
]


@pytest.mark.parametrize("api, args, message", BAD_CALLS, ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(BAD_CALLS)])
def test_bad_input_is_an_error_and_the_server_keeps_serving(served, api, args, message):
    _, _, client = served
    with pytest.raises(Exception) as caught:
        client.predict(*args, api_name=api)
    assert message.lower() in str(caught.value).lower()


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-1e999"])
def test_non_finite_numbers_sent_by_hand_are_refused(served, value):
    demo, url, client = served
    sliders = ", ".join([value] + ["0"] * (len(demo.explorer.sliders) - 1))
    reply = raw_call(url, "generate", f'{{"data": [3, {sliders}]}}')
    assert "event: error" in reply and ("finite number" in reply or "than m" in reply), reply
    reply = raw_call(url, "arithmetic", f'{{"data": ["1", "2", "3", 0, {value}]}}')
    assert "event: error" in reply, reply
    assert client.predict(3, api_name="/generate")[1].startswith("seed 3")  # still serving


def test_validation_in_the_handlers_themselves(served):
    """NaN/inf never reach the core even when gradio's component checks are bypassed (direct calls)."""
    ex = served[0].explorer
    zeros = [0.0] * len(ex.sliders)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(gr.Error, match="finite"):
            ex.generate(1, bad, *zeros[1:])
        with pytest.raises(gr.Error, match="finite"):
            ex.arithmetic("1", "2", "3", 0, bad)
        with pytest.raises(gr.Error, match="finite"):
            ex.walk("1, 2", 4, "slerp", False, bad)
    with pytest.raises(gr.Error, match="(?i)seed must be"):
        ex.generate(float("nan"), *zeros)
    with pytest.raises(gr.Error, match="between 1 and 64"):
        ex.exemplars(0, 65)
    with pytest.raises(gr.Error, match="cannot be coloured by 'Wearing_Crown'"):
        ex.feature_map_figure("Wearing_Crown", 100)


# ----------------------------------------------------------------------------------------------- --share


def test_share_without_a_tunnel_says_so_and_keeps_serving_locally(tiny_checkpoints, monkeypatch, capsys):
    """The offline outcome made deterministic: gradio's tunnel setup fails as it does without internet."""

    def no_network(*args, **kwargs):
        raise RuntimeError("Could not get share link from Gradio API Server.")

    monkeypatch.setattr(gr.networking, "setup_tunnel", no_network)
    demo = gradio_app.build_demo(tiny_checkpoints.tiny)
    try:
        url, share_url = gradio_app.launch(demo, port=free_port(), share=True, quiet=True)
        assert share_url is None
        assert gradio_app.NO_LINK_MESSAGE in capsys.readouterr().out
        assert Client(url, verbose=False).predict(1, api_name="/generate")[1].startswith("seed 1")
    finally:
        demo.close()


def test_cli_share_prints_the_outcome_and_keeps_serving(tiny_checkpoints, monkeypatch, capsys):
    """`python gradio_app.py --share` through its main(), with gradio's real tunnel attempt.

    Offline (as on the build machines) it must say that no link came and serve locally; with internet a
    public link is printed. Only the final block-until-Ctrl-C is replaced, by a check that the server answers.
    """
    port, answered = free_port(), []

    def serve_once(demo):
        answered.append(httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code)

    monkeypatch.setattr(gr.Blocks, "block_thread", serve_once)
    argv = ["--checkpoint", str(tiny_checkpoints.tiny), "--port", str(port), "--host", "127.0.0.1", "--concurrency", "3", "--share"]
    assert gradio_app.main(argv) == 0
    output = capsys.readouterr().out
    assert gradio_app.NO_LINK_MESSAGE in output or "Public link: https://" in output, output
    assert answered == [200]


def test_cli_rejects_a_missing_checkpoint(tmp_path, capsys):
    assert gradio_app.main(["--checkpoint", str(tmp_path / "nope")]) == 2
    assert "Cannot open the checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- real browser


def test_browser_renders_and_generates(served, tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        if not os.environ.get("CI"):
            pytest.skip("Debian's chromium is not installed")
        pytest.fail("chromium is required in CI")
    from playwright.sync_api import expect, sync_playwright

    _, url, _ = served
    with sync_playwright() as p:
        context = launch_chromium(
            p, tmp_path / "profile",
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            button = page.locator("#generate-button")
            expect(button).to_be_visible(timeout=60_000)
            page.get_by_label("Seed", exact=False).first.fill("7")
            button.click()
            image = page.locator("#generated-image img")
            expect(image).to_be_visible(timeout=60_000)
            expect(page.locator("#generate-info")).to_contain_text("seed 7", timeout=30_000)
            page.wait_for_function("() => { const i = document.querySelector('#generated-image img'); return i && i.complete && i.naturalWidth > 0; }", timeout=30_000)
            # the 32 px sample is enlarged by the page's CSS, not shown as a speck
            assert image.bounding_box()["width"] >= 200
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # Vector arithmetic: clicking a gallery image puts its seed into the chosen group (per-visitor gr.State).
            page.get_by_role("tab", name="Vector arithmetic").click()
            page.get_by_label("First seed").fill("20")
            page.get_by_role("button", name="Show exemplars").click()
            thumbnails = page.locator(".thumbnail-item")
            expect(thumbnails.nth(2)).to_be_visible(timeout=30_000)
            page.get_by_label("B", exact=True).check()
            thumbnails.nth(2).click()
            expect(page.get_by_label("B (−): seeds")).to_have_value("22", timeout=30_000)
        finally:
            context.close()
    assert SCREENSHOT.stat().st_size > 10_000
