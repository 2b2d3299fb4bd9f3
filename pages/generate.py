"""Generate & sliders: a seeded grid, then one sample edited along raw z coordinates and learned directions.

The edited latent is z(seed) + sum of offset * unit direction. Its state (checkpoint, seed and the
non-zero offsets) lives in the URL (`explorer.urlstate`), so a link reproduces exactly what is on
screen. The editor is a fragment (seed, buttons, which sliders), and inside it the sliders with the
edited image are another: moving a slider reruns only that inner part, not the grid or the pickers
(whose ~60 options would be re-sent and re-rendered on every move).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from explorer.generate import MAX_GRID
from explorer.latent import MAX_SEED, apply_offsets, latent_norm_stats, z_from_seed
from explorer.sliders import MAX_OFFSET, default_sliders, direction_label, offered_directions, slider_help
from explorer.urlstate import OFFSETS_PARAM, SEED_PARAM, decode_state, encode_state
from ui import cache
from ui.sidebar import page_setup
from ui.state import checkpoint_changed, is_new_page, kept, kept_keys, kept_value, set_kept
from ui.widgets import directions_panel, link_box, show_image

OFF = "gen_off::"  # slider keys: OFF + direction name

active = page_setup("generate", link=False)
key, checkpoint = active.key, active.checkpoint
z_dim = checkpoint.config.z_dim
directions, _, _ = cache.directions(key)
offered = offered_directions(directions)
raw_names = [f"z:{i}" for i in range(z_dim)]


def reset_offsets() -> None:
    for name in kept_keys(OFF):
        set_kept(name, 0.0)


# -- another checkpoint (or the first visit): its own default sliders, no offsets carried over
if checkpoint_changed("generate", active.label):
    set_kept("gen_dirs", default_sliders(directions))
    set_kept("gen_dims", [d for d in (0, 1) if d < z_dim])
    reset_offsets()
else:  # the analysis may have changed the directions on offer
    set_kept("gen_dirs", [n for n in kept_value("gen_dirs", []) if n in directions])

# -- a shared link: applied on the page's first run only. Later runs ignore it, as the URL then only
# echoes this page's own writes, which can lag behind a fast-moving slider.
params = st.query_params.to_dict()
link_errors: list[str] = []
if is_new_page() and (SEED_PARAM in params or OFFSETS_PARAM in params):
    seed, offsets, link_errors = decode_state(params, default_seed=0, known_directions=set(directions) | set(raw_names))
    set_kept("gen_seed", seed)
    reset_offsets()
    for name, value in offsets.items():
        set_kept(OFF + name, float(value))
    if offsets:
        set_kept("gen_dirs", [n for n in offered if n in offsets])
        set_kept("gen_dims", sorted(int(n[2:]) for n in offsets if n.startswith("z:")))

st.title("Generate & sliders")
if link_errors:
    st.warning("The link could not be used as it is: " + "; ".join(link_errors) + ".")


def pick_from_grid() -> None:
    if st.session_state.get("gen_pick") is not None:
        set_kept("gen_seed", int(st.session_state["gen_pick"]))


with st.expander("Seed grid", expanded=True):
    c1, c2 = st.columns(2)
    first = c1.number_input("First seed", 0, MAX_SEED - MAX_GRID, step=1, **kept("gen_first", 0))
    count = c2.slider("Samples", 1, 64, **kept("gen_count", 16))
    seeds = tuple(range(int(first), int(first) + int(count)))
    st.image(cache.enlarged(cache.seed_images(key, seeds), 96), caption=[f"seed {s}" for s in seeds])
    st.pills("Pick a sample to edit", seeds, key="gen_pick", on_change=pick_from_grid, format_func=lambda s: f"seed {s}")

directions_panel(key, "generate")


def randomize() -> None:
    set_kept("gen_seed", int(np.random.default_rng().integers(0, MAX_SEED + 1)))


@st.fragment
def editor() -> None:
    """Seed, buttons and the choice of sliders: reruns alone (with the sliders below) when one of them changes."""
    left, right = st.columns([3, 2])
    with left:
        seed = int(st.number_input("Seed", 0, MAX_SEED, step=1, **kept("gen_seed", 0)))
        b1, b2 = st.columns(2)
        b1.button("Randomize seed", on_click=randomize, width="stretch")
        b2.button("Reset sliders", on_click=reset_offsets, width="stretch")
        chosen = st.multiselect(
            "Direction sliders", offered, **kept("gen_dirs", default_sliders(directions)),
            format_func=lambda n: direction_label(n, directions),
            help="cond: directions move one attribute with the others held (InterFaceGAN conditional); attr:/class: are the "
            "raw mean differences and svm: the SVM normals they come from; factor: follows a continuous factor (head turn, "
            "skin tone); SeFa and GANSpace are unsupervised. The "
            "percentage is the eigenvalue or variance share, or the probe's held-out accuracy.",
        )
        dims = st.multiselect("Raw z coordinates", list(range(z_dim)), format_func=lambda i: f"z[{i}]", **kept("gen_dims", [0, 1]))
    edited_pair(left, right, seed, list(chosen) + [f"z:{i}" for i in dims])


@st.fragment
def edited_pair(left, right, seed: int, names: list[str]) -> None:
    """The sliders, the edited pair, its realism and its link, drawn into the editor's columns: reruns alone when a slider moves.

    A slider move keeps the arguments of the editor's last run: the seed and the slider names only change there.
    """
    with left:
        offsets: dict[str, float] = {}
        for name in names:
            offsets[name] = st.slider(
                direction_label(name, directions), -MAX_OFFSET, MAX_OFFSET, step=0.1, **kept(OFF + name, 0.0),
                help=slider_help(name, directions, checkpoint.meta.get("evaluation")),
            )

    z = z_from_seed(seed, z_dim)
    z_edit = apply_offsets(z, offsets, {n: d.vector for n, d in directions.items()})
    # One call per latent: the unedited one is a cache hit on every slider move.
    (before,), before_score = cache.images_and_realism(key, z.numpy()[None])
    (after,), after_score = cache.images_and_realism(key, z_edit.numpy()[None])
    shell = latent_norm_stats(z_dim)
    norm = float(z_edit.norm())
    with right:
        a, b = st.columns(2)
        with a:
            show_image(before, f"G(z), seed {seed}", side=192)
        with b:
            show_image(after, "G(z + offsets)", side=192)
        m1, m2 = st.columns(2)
        m1.metric(
            "‖z + offsets‖", f"{norm:.2f}", f"{(norm - shell.mean) / shell.std:+.1f} σ from the shell", delta_color="off",
            help=f"Latents from the prior N(0, I) lie on a thin shell: ‖z‖ = {shell.mean:.2f} ± {shell.std:.2f}. "
            "Far off it, the generator sees inputs it was never trained on.",
        )
        if after_score is None:
            m2.metric("Realism D(G(z))", "n/a", help="This checkpoint has no discriminator.")
        else:
            score, delta = float(after_score[0]), float(after_score[0] - before_score[0])
            m2.metric(
                "Realism D(G(z))", f"{score:.2f}", f"{round(delta, 2) + 0.0:+.2f} vs unedited",  # + 0.0: no "-0.00"
                help="The discriminator's probability that the image is real. D is no calibrated judge: "
                "use it to compare images of this checkpoint, not as an absolute quality score.",
            )
        st.caption(f"Prior shell: ‖z‖ ≈ {shell.mean:.2f} ± {shell.std:.2f} for z ∈ ℝ^{z_dim}.")

    link_box(active.link(**encode_state(seed, offsets)), "Link to this exact image (checkpoint, seed and offsets):")


editor()
