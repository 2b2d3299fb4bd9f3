"""Gradio demo of a trained DCGAN: seeded generation with sliders, vector arithmetic, latent walks, feature map.

    python gradio_app.py [--checkpoint PATH] [--share] [--host 127.0.0.1] [--port 7860] [--concurrency N]

A second front end over the same UI-free core as the Streamlit explorer (`app.py`). This file is the
layout and the launch; the actions (core calls, validation, formatting) are `ui.gradio_explorer.Explorer`.
Every action has an `api_name`, so `gradio_client` can drive the demo: /generate, /invert, /exemplars,
/arithmetic, /add_inverted, /fill_from_dataset (when the checkpoint names its dataset), /walk, /feature_map.
"""
from __future__ import annotations

import argparse
import os
import sys
from itertools import groupby
from pathlib import Path

# Before gradio is imported: it reads this at import time, and a demo must not phone home by default.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Before torch loads OpenMP: idle threads sleep instead of spinning (see ui/__init__.py for why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr

from explorer.arithmetic import DEFAULT_JITTER
from explorer.checkpoint import CheckpointError, load_checkpoint
from explorer.latent import MAX_KEYPOINTS, MAX_SEED, WALK_MODES
from explorer.real_exemplars import FILL_PER_BIN, MAX_FILL_PER_BIN, unknown_data_message
from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT, list_checkpoints
from explorer.sliders import MAX_OFFSET
from explorer.urlstate import MAX_JITTER
from explorer.video import MAX_GIF_FPS
from ui.figures import REAL_VS_GENERATED
from ui.gradio_explorer import MAX_FEATURE_POINTS, MAX_FRAMES_PER_SEGMENT, MAX_GALLERY, Explorer

MAX_QUEUE = 128  # waiting requests beyond this are refused at once instead of timing out
# Gradio keeps per-session state (a copy of every component's config, ~150 KB here) for its most recent
# sessions, and each API call without a session is a new session: at gradio's default of 10,000 the
# server grew by ~2 MB/s under load (BENCHMARKS.md, issue 7). A visitor's state here is only the seeds
# their gallery shows, so the last 500 sessions are plenty and memory stays flat.
MAX_SESSIONS = 500
NO_LINK_MESSAGE = "No public share link could be created (offline, or the share server is unreachable)."

# Images travel at their native 32-128 px (API clients get the generator's real output); the page enlarges
# them to fill their box with crisp pixels instead of the browser's default blur.
CSS = """
.pixelated img { image-rendering: pixelated; }
.enlarged img { width: 100%; height: 100%; object-fit: contain; }
"""


# ----------------------------------------------------------------------------------------------- layout


def slider_panel(ex: Explorer) -> list:
    """One gr.Slider per `ex.sliders` entry, in its order, grouped in accordions (raw z, then each direction group)."""
    sliders = []
    for group_title, group in groupby(ex.sliders, key=lambda s: s.group):
        group = list(group)
        label = f"Raw z coordinates 0–{len(group) - 1}" if group_title == "raw" else group_title
        with gr.Accordion(label, open=group[0].open):
            sliders += [gr.Slider(-MAX_OFFSET, MAX_OFFSET, value=0, step=0.05, label=s.label, info=s.info) for s in group]
    return sliders


def real_exemplar_panel(ex: Explorer, target, names: tuple, seeds: tuple) -> tuple:
    """The arithmetic's real exemplars: uploads inverted into the chosen group, or the groups filled from the dataset by
    label; returns the three groups' z-token boxes (the /arithmetic parameters after the names)."""
    unknown = unknown_data_message(ex.checkpoint)
    with gr.Accordion("Real pictures as exemplars (inverted)", open=False):
        gr.Markdown(
            "Upload pictures: each is inverted (the Invert & edit tab's encoder and optimisation) and its z joins the group "
            "chosen above, averaged like a seed's. Or fill the groups from the dataset by its own labels: a group named "
            "after labels ('smiling woman': Smiling=1, Male=0) gets matching pictures and nothing else."
        )
        with gr.Row():
            uploads = gr.File(file_count="multiple", file_types=["image"], label="Pictures to invert")
            add = gr.Button("Invert & add to the chosen group")
        if unknown:
            gr.Markdown(unknown)
        else:
            with gr.Row():
                k = gr.Slider(1, MAX_FILL_PER_BIN, value=FILL_PER_BIN, step=1, label="Pictures per group")
                draw = gr.Number(value=0, label="Draw (which matching pictures)", step=1)
                fill = gr.Button("Fill A, B, C from the dataset by label")
        with gr.Row():
            real = [gr.Textbox(value="", label=f"{g}: inverted pictures (z tokens)", max_lines=3) for g in "ABC"]
        gallery = gr.Gallery(
            label="Inverted pictures, as G(z)", columns=8, height="auto", allow_preview=False, format="png", elem_classes="pixelated",
        )
        note = gr.Markdown()
    add.click(ex.add_inverted, [uploads, target, *real], [*real, gallery, note], api_name="add_inverted")
    if not unknown:
        fill.click(ex.fill_from_dataset, [k, draw, *names, *seeds, *real], [*seeds, *real, gallery, note], api_name="fill_from_dataset")
    return tuple(real)


def build_demo(checkpoint_path: str | os.PathLike) -> gr.Blocks:
    """The whole demo for one checkpoint (loaded here, once). Raises CheckpointError for an unusable path."""
    checkpoint = load_checkpoint(checkpoint_path)
    ex = Explorer(checkpoint)
    cfg, size = checkpoint.config, checkpoint.config.image_size
    display = max(256, size)
    title = f"latent-lab · {checkpoint.dataset.get('spec', 'DCGAN')} · step {checkpoint.step:,}"

    with gr.Blocks(title="latent-lab", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            f"## {title}\n{size} px · z ∈ ℝ^{cfg.z_dim} · "
            f"{'EMA generator' if checkpoint.generator_kind == 'ema' else 'generator'}"
            + ("" if checkpoint.discriminator is not None else " · no discriminator (no realism scores)")
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column():
                    # No minimum/maximum on seed widgets: the core's range check names the field in its message.
                    seed = gr.Number(value=0, label=f"Seed (0 – {MAX_SEED})", step=1)
                    gr.Markdown(ex.directions_note)
                    sliders = slider_panel(ex)  # the /generate parameters after the seed
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                with gr.Column():
                    image = gr.Image(
                        label="G(z)", format="png", height=display, width=display,
                        elem_classes=["pixelated", "enlarged"], elem_id="generated-image", interactive=False,
                    )
                    info = gr.Markdown(elem_id="generate-info")
            inputs = [seed, *sliders]
            generate_button.click(ex.generate_api, inputs, [image, info], api_name="generate")

        with gr.Tab("Invert & edit"):
            with gr.Row():
                with gr.Column():
                    picture = gr.Image(type="filepath", label="Your picture (any size: centre-cropped and resized)", sources=["upload"])
                    invert_sliders = slider_panel(ex)  # the /invert parameters after the picture
                    invert_button = gr.Button("Invert & edit", variant="primary", elem_id="invert-button")
                with gr.Column():
                    with gr.Row():
                        seen = gr.Image(label="As the model sees it", format="png", interactive=False, elem_classes=["pixelated"])
                        rebuilt = gr.Image(label="Reconstruction G(z)", format="png", interactive=False, elem_classes=["pixelated"])
                    edited = gr.Image(label="Edit G(z + offsets)", format="png", interactive=False, elem_classes=["pixelated"], elem_id="invert-edit")
                    invert_info = gr.Markdown(elem_id="invert-info")
            invert_button.click(ex.invert_api, [picture, *invert_sliders], [seen, rebuilt, edited, invert_info], api_name="invert")

        with gr.Tab("Vector arithmetic"):
            gr.Markdown(
                "Pick exemplars for three concepts A, B and C (their names below start from this checkpoint's labels, e.g. the "
                "paper's smiling woman − neutral woman + neutral man): choose a group, then click gallery images. "
                "Y = mean z(A) − mean z(B) + mean z(C); the paper averages three exemplars per concept. When the names "
                "name attributes or classes, the attribute classifier says how many of the 9 results show what Y should."
            )
            shown_seeds = gr.State([])  # per visitor: gallery index -> seed
            with gr.Row():
                first = gr.Number(value=0, label="First seed", step=1)
                count = gr.Slider(1, MAX_GALLERY, value=min(24, MAX_GALLERY), step=1, label="Exemplars")
                show = gr.Button("Show exemplars")
            gallery = gr.Gallery(
                label="Exemplars (click to add to the chosen group)", columns=8, height="auto",
                allow_preview=False, format="png", elem_classes="pixelated",
            )
            target = gr.Radio(["A", "B", "C"], value="A", label="Clicking adds to group")
            with gr.Row():
                name_a, name_b, name_c = (gr.Textbox(value=n, label=f"{g} name") for g, n in zip("ABC", ex.bin_names))
            with gr.Row():
                group_a = gr.Textbox(label="A (+): seeds", placeholder="e.g. 3, 17, 42")
                group_b = gr.Textbox(label="B (−): seeds")
                group_c = gr.Textbox(label="C (+): seeds")
            real_a, real_b, real_c = real_exemplar_panel(ex, target, (name_a, name_b, name_c), (group_a, group_b, group_c))
            with gr.Row():
                noise_seed = gr.Number(value=0, label="Noise seed", step=1)
                jitter = gr.Slider(0, MAX_JITTER, value=DEFAULT_JITTER, step=0.05, label="Neighbourhood noise ±")
                combine = gr.Button("Compute A − B + C", variant="primary")
            with gr.Row():
                grid_image = gr.Image(label="G(Y) and 8 neighbours", format="png", height=display, elem_classes=["pixelated", "enlarged"], interactive=False)
                pixel_image = gr.Image(label="Same arithmetic on pixels", format="png", height=display, elem_classes=["pixelated", "enlarged"], interactive=False)
            notes = gr.Markdown()
            show.click(ex.exemplars, [first, count], [gallery, shown_seeds], api_name="exemplars")
            gallery.select(ex.pick, [shown_seeds, target, group_a, group_b, group_c], [group_a, group_b, group_c], api_visibility="private")
            combine.click(
                ex.arithmetic, [group_a, group_b, group_c, noise_seed, jitter, name_a, name_b, name_c, real_a, real_b, real_c],
                [grid_image, pixel_image, notes], api_name="arithmetic",
            )

        with gr.Tab("Latent walk"):
            with gr.Row():
                walk_seeds = gr.Textbox(value="0, 1, 2, 3", label=f"Keypoint seeds (2–{MAX_KEYPOINTS})")
                per_segment = gr.Slider(1, MAX_FRAMES_PER_SEGMENT, value=16, step=1, label="Frames per segment")
                mode = gr.Radio(list(WALK_MODES), value="slerp", label="Interpolation")
                loop = gr.Checkbox(value=True, label="Loop back to the first seed")
                fps = gr.Slider(1, MAX_GIF_FPS, value=12, step=1, label="Frames per second")
            walk_button = gr.Button("Walk", variant="primary")
            with gr.Row():
                preview = gr.Image(label="Walk", type="filepath", height=display, interactive=False, elem_classes=["pixelated", "enlarged"])
                with gr.Column():
                    gif_file = gr.File(label="GIF")
                    mp4_file = gr.File(label="MP4")
                    walk_info = gr.Markdown()
            walk_button.click(ex.walk, [walk_seeds, per_segment, mode, loop, fps], [preview, gif_file, mp4_file, walk_info], api_name="walk")

        with gr.Tab("Feature map"):
            gr.Markdown(
                "Real and generated images placed by their discriminator features (Radford et al. Sec. 5.1): "
                "generated points far from every real one are modes the generator invented; real regions "
                "without generated points are modes it dropped."
            )
            with gr.Row():
                color_by = gr.Dropdown(choices=ex.colorings(), value=REAL_VS_GENERATED, label="Colour by")
                max_points = gr.Slider(100, MAX_FEATURE_POINTS, value=5000, step=100, label="Points")
                plot_button = gr.Button("Show map", variant="primary")
            if unknown_data_message(checkpoint):
                gr.Markdown(unknown_data_message(checkpoint))
            plot = gr.Plot(label="Feature map")
            caption = gr.Markdown()
            plot_button.click(ex.feature_map_figure, [color_by, max_points], [plot, caption], api_name="feature_map")
    demo.explorer = ex  # for tests
    return demo


# ----------------------------------------------------------------------------------------------- serving


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False, concurrency: int = 2, quiet: bool = False):
    """Start serving without blocking: (local_url, share_url or None). Says clearly when no share link came."""
    demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)
    _, local_url, share_url = demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=True, css=CSS, quiet=quiet,
        state_session_capacity=MAX_SESSIONS,
        ssr_mode=False,  # no Node server: one process, one port, which is what the tests and the load bench drive
    )
    if share:
        if share_url:
            print(f"Public link: {share_url}", flush=True)
        else:
            print(f"{NO_LINK_MESSAGE} Still serving locally at {local_url}", flush=True)
    return local_url, share_url


def default_checkpoint() -> Path:
    return CHECKPOINTS_ROOT / DEFAULT_CHECKPOINT


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python gradio_app.py", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(default_checkpoint()), help="checkpoint or run directory (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="ask Gradio for a temporary public link")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for every one)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--concurrency", type=int, default=2, help="requests run at once (the rest queue)")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        demo = build_demo(args.checkpoint)
    except CheckpointError as exc:
        usable = [info.name for info in list_checkpoints() if not info.error]
        hint = f" Available under {CHECKPOINTS_ROOT}: {', '.join(usable)}." if usable else ""
        print(f"Cannot open the checkpoint: {exc}.{hint} Pass another with --checkpoint PATH.", file=sys.stderr)
        return 2
    launch(demo, args.host, args.port, args.share, args.concurrency)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
