"""Generate & sliders: a seeded grid, then one sample edited along raw z coordinates and learned directions.

The edited latent is z(seed) + sum of offset * unit direction. Its state (seed and the non-zero
offsets) lives in the URL (`explorer.urlstate`), so a link reproduces exactly what is on screen.
"""
from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import streamlit as st

from explorer.generate import MAX_GRID
from explorer.latent import MAX_SEED, apply_offsets, latent_norm_stats, z_from_seed
from explorer.urlstate import MAX_OFFSET, decode_state, encode_state
from pages import common

OFF = "gen_off::"  # slider keys: OFF + direction name
DEFAULT_DIRECTIONS = 3  # sliders shown at first: the top SeFa directions and every attribute direction


def offset_key(name: str) -> str:
    return OFF + name


active = common.page_setup()
key, checkpoint = active.key, active.checkpoint
z_dim = checkpoint.config.z_dim
directions = common.all_directions(key)
raw_names = [f"z:{i}" for i in range(z_dim)]

# -- defaults, and stale state from another checkpoint (other directions, another z size)
kept, set_kept, kept_value = common.kept, common.set_kept, common.kept_value
default_dirs = [n for n in directions if n.startswith("sefa:")][:DEFAULT_DIRECTIONS] + [
    n for n in directions if n.startswith(("attr:", "class:"))
]
set_kept("gen_dirs", [n for n in kept_value("gen_dirs", default_dirs) if n in directions])
set_kept("gen_dims", [d for d in kept_value("gen_dims", [0, 1]) if 0 <= d < z_dim])

# -- a shared link: the URL's state is applied on the page's first run only. Later runs ignore it, as
# the URL then only echoes this page's own writes, which can lag behind a fast-moving slider.
params = st.query_params.to_dict()
link_errors: list[str] = []
if common.is_new_page() and ("seed" in params or "d" in params):
    seed, offsets, link_errors = decode_state(params, default_seed=0, known_directions=set(directions) | set(raw_names))
    set_kept("gen_seed", seed)
    for name in [k for k in st.session_state if str(k).startswith(common.KEPT + OFF)]:
        set_kept(name[len(common.KEPT):], 0.0)
    for name, value in offsets.items():
        set_kept(offset_key(name), float(value))
    if offsets:
        set_kept("gen_dirs", [n for n in offsets if not n.startswith("z:")])
        set_kept("gen_dims", sorted(int(n[2:]) for n in offsets if n.startswith("z:")))

st.title("Generate & sliders")
if link_errors:
    st.warning("The link could not be used as it is: " + "; ".join(link_errors) + ".")


def pick_from_grid() -> None:
    if st.session_state.get("gen_pick") is not None:
        set_kept("gen_seed", int(st.session_state["gen_pick"]))


def randomize() -> None:
    set_kept("gen_seed", int(np.random.default_rng().integers(0, 2**31)))


def reset() -> None:
    for name in list(st.session_state.keys()):
        if str(name).startswith(common.KEPT + OFF):
            set_kept(name[len(common.KEPT):], 0.0)


# -- the seeded grid
with st.expander("Seed grid", expanded=True):
    c1, c2 = st.columns(2)
    first = c1.number_input("First seed", 0, MAX_SEED - MAX_GRID, step=1, **kept("gen_first", 0))
    count = c2.slider("Samples", 1, 64, **kept("gen_count", 16))
    seeds = list(range(int(first), int(first) + int(count)))
    images = common.seed_images(key, tuple(seeds))
    st.image([common.upscale(im, 96) for im in images], caption=[f"seed {s}" for s in seeds])
    st.pills("Pick a sample to edit", seeds, key="gen_pick", on_change=pick_from_grid, format_func=lambda s: f"seed {s}")

# -- the editor
common.directions_panel(key, "generate")
left, right = st.columns([3, 2])
with left:
    seed = int(st.number_input("Seed", 0, MAX_SEED, step=1, **kept("gen_seed", 0)))
    b1, b2 = st.columns(2)
    b1.button("Randomize seed", on_click=randomize, width="stretch")
    b2.button("Reset sliders", on_click=reset, width="stretch")
    chosen = st.multiselect(
        "Direction sliders",
        list(directions),
        **kept("gen_dirs", default_dirs),
        format_func=lambda n: common.direction_label(n, directions),
        help="SeFa and GANSpace are unsupervised; attr:/svm:/class: directions come from the attribute probe. "
        "The percentage is the eigenvalue or variance share, or the probe's held-out accuracy.",
    )
    dims = st.multiselect("Raw z coordinates", list(range(z_dim)), format_func=lambda i: f"z[{i}]", **kept("gen_dims", [0, 1]))
    names = list(chosen) + [f"z:{i}" for i in dims]
    offsets: dict[str, float] = {}
    for name in names:
        help_text = directions[name].description if name in directions else "adds this much to one coordinate of z"
        offsets[name] = st.slider(
            common.direction_label(name, directions), -MAX_OFFSET, MAX_OFFSET, step=0.1, help=help_text,
            **kept(offset_key(name), 0.0),
        )

z = z_from_seed(seed, z_dim)
z_edit = apply_offsets(z, offsets, {n: d.vector for n, d in directions.items()})
latents = np.stack([z.numpy(), z_edit.numpy()])
pair = common.images_for_latents(key, latents)
scores = common.realism_for_latents(key, latents)
shell = latent_norm_stats(z_dim)
norm = float(z_edit.norm())

with right:
    a, b = st.columns(2)
    with a:
        common.show_image(pair[0], f"G(z), seed {seed}", side=192)
    with b:
        common.show_image(pair[1], "G(z + offsets)", side=192)
    m1, m2 = st.columns(2)
    m1.metric(
        "‖z + offsets‖",
        f"{norm:.2f}",
        f"{(norm - shell.mean) / shell.std:+.1f} σ from the shell",
        delta_color="off",
        help=f"Latents from the prior N(0, I) lie on a thin shell: ‖z‖ = {shell.mean:.2f} ± {shell.std:.2f}. "
        "Far off it, the generator sees inputs it was never trained on.",
    )
    if scores is None:
        m2.metric("Realism D(G(z))", "n/a", help="This checkpoint has no discriminator.")
    else:
        m2.metric(
            "Realism D(G(z))",
            f"{scores[1]:.2f}",
            f"{round(scores[1] - scores[0], 2) + 0.0:+.2f} vs unedited",  # + 0.0: no "-0.00"
            help="The discriminator's probability that the image is real. D is no calibrated judge: "
            "use it to compare images of this checkpoint, not as an absolute quality score.",
        )
    st.caption(f"Prior shell: ‖z‖ ≈ {shell.mean:.2f} ± {shell.std:.2f} for z ∈ ℝ^{z_dim}.")

# -- shareable state: write it to the URL (only when it changed, so history is not spammed)
share = encode_state(seed, offsets)
if st.query_params.to_dict() != share:
    st.query_params.from_dict(share)
base = (st.context.url or "").split("?")[0]
st.caption("Link to this exact image (seed and offsets):")
st.code(f"{base}?{urlencode(share)}", language=None)
