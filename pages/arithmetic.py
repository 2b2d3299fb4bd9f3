"""Vector arithmetic (Radford et al. 2015, Sec. 6.3, Fig. 7) on a drag-and-drop board of concept bins.

The board (ui/board.py) only says which seeds sit in which bin; names and signed weights are
widgets; `explorer.arithmetic` does the maths (`arithmetic`) and says how far to trust it (`check_arithmetic`: bin
consistency, the attribute classifier's verdict). st.session_state[BINS] holds the seeds per bin and
is the source of truth: the board's reports, auto-fill and links write it, and the board redraws from
it. Real pictures join a bin inverted (`ui.real_bins`: uploads, or the dataset by label), kept beside
the seeds as z tokens. The checkpoint, bins, weights, inverted pictures and noise live in the URL.
The workspace is a fragment: a drop reruns it alone.
"""
from __future__ import annotations

import streamlit as st

from explorer.arithmetic import (
    AUTO_PER_BIN, MAX_BINS, MAX_WEIGHT, auto_fill, clean_bin_seeds, default_bins, empty_bins_message, expression_text,
)
from explorer.images import to_uint8
from explorer.latent import MAX_SEED
from explorer.real_exemplars import InvertedExemplar
from explorer.urlstate import BINS_PARAM, MAX_JITTER, decode_arithmetic, decode_inverted, encode_arithmetic, encode_inverted
from ui import cache
from ui.board import concept_board
from ui.real_bins import real_bins, real_panel, set_real, show_inverted
from ui.sidebar import page_setup
from ui.state import checkpoint_changed, is_new_page, kept, kept_value, set_kept, set_link
from ui.widgets import show_image, show_messages, show_mosaic

BOARD = "arith_board"
BINS = "arith_bins"  # list[list[int]]: seeds per bin
SEEN = "arith_seen"  # the board value last adopted, so a rerun does not re-adopt a stale one
VERSION = "arith_version"  # bumped whenever Python itself changes BINS, so the board takes them over
AUTO_POOL = 512  # generated samples the auto-fill ranks by the probe

active = page_setup("arithmetic", link=False)
key, checkpoint = active.key, active.checkpoint
state = st.session_state
state.setdefault(VERSION, 0)
labels = checkpoint.attribute_names or checkpoint.class_names


def set_bins(specs: list[tuple[str, float]], seeds: list[list[int]], real: list[list[str]] | None = None) -> None:
    """Bin names, weights, seeds and inverted pictures' tokens, all at once (another checkpoint, or a link)."""
    set_kept("arith_nbins", len(specs))
    for i, (name, weight) in enumerate(specs):
        set_kept(f"arith_name_{i}", name)
        set_kept(f"arith_w_{i}", float(weight))
    state[BINS] = seeds
    set_real([[InvertedExemplar(t, "from the link") for t in tokens] for tokens in real or [[] for _ in specs]])
    state[VERSION] += 1


if checkpoint_changed("arithmetic", active.label):  # no "smiling woman" bins on Fashion-MNIST
    defaults = default_bins(checkpoint.attribute_names, checkpoint.class_names)
    set_bins(defaults, [[] for _ in defaults])
link_errors: list[str] = []
if is_new_page() and BINS_PARAM in st.query_params:
    linked, jitter, noise, link_errors = decode_arithmetic(st.query_params.to_dict())
    if linked:
        real, inverted_errors = decode_inverted(st.query_params.to_dict(), [n for n, _, _ in linked], checkpoint.config.z_dim)
        set_bins([(name, weight) for name, weight, _ in linked], [seeds for _, _, seeds in linked], real)
        link_errors += inverted_errors
    set_kept("arith_jitter", round(jitter * 20) / 20)  # the slider's step
    set_kept("arith_noise", noise)

st.title("Vector arithmetic")
st.caption(
    "Drag generated samples into concept bins, or add real pictures (inverted) below. Each bin's latents are averaged "
    "(the paper found single samples unstable and used three), the signed sum Y is decoded, and its neighbourhood "
    "Y + U(−0.25, 0.25) fills the 3×3 grid around G(Y). Pixel arithmetic on the same images is shown for comparison."
)
if link_errors:
    st.warning("The link could not be used as it is: " + "; ".join(link_errors) + ".")


@st.fragment
def workspace() -> None:
    c1, c2, c3 = st.columns(3)
    first = int(c1.number_input("First seed", 0, MAX_SEED - 64 - AUTO_POOL, **kept("arith_first", 0)))
    count = c2.slider("Samples on the board", 4, 64, **kept("arith_count", 24))
    n_bins = int(c3.number_input("Bins", 1, MAX_BINS, **kept("arith_nbins", 3)))
    state[BINS] = clean_bin_seeds(state.get(BINS, []), n_bins)
    real = real_bins(n_bins)

    # The board's last report is in session_state before the board is drawn: adopting it first means the
    # board is drawn (and the result computed) from the newest assignment in this same run.
    def adopt(report) -> None:
        if isinstance(report, list) and report != state.get(SEEN):
            state[SEEN] = report
            state[BINS] = clean_bin_seeds(report, n_bins)  # from the browser: bounded whatever it sends

    board_state = state.get(BOARD)
    adopt(board_state.get("assignment") if isinstance(board_state, dict) else None)

    specs, slots = [], []
    for i, col in enumerate(st.columns(n_bins)):
        name = col.text_input(f"Bin {i + 1}", **kept(f"arith_name_{i}", f"concept {i + 1}")).strip() or f"bin {i + 1}"
        weight = col.number_input("weight", -MAX_WEIGHT, MAX_WEIGHT, step=0.5, **kept(f"arith_w_{i}", 1.0))
        specs.append((name, float(weight)))
        slots.append(col.empty())  # the bin's inverted pictures, drawn once the panel below has added any
    replaced = real_panel(key, checkpoint, specs, state[BINS])
    if replaced:  # filled from the dataset: those bins hold its pictures alone
        state[BINS] = [[] if i in replaced else seeds for i, seeds in enumerate(state[BINS])]
        state[VERSION] += 1
    for i, slot in enumerate(slots):
        show_inverted(key, slot, i)

    if checkpoint.discriminator is None or not labels:
        st.caption(
            "Auto-fill and the verdict are not available: they read an attribute classifier on the discriminator's "
            "features, " + ("and this checkpoint has no discriminator." if checkpoint.discriminator is None else "and its dataset has no labels.")
        )
    elif st.button("Auto-fill bins from attribute predictions", help=f"Ranks {AUTO_POOL} samples with the probe and puts the "
                   f"{AUTO_PER_BIN} most typical into each bin whose name names attributes or classes (e.g. 'smiling woman')."):
        with st.spinner("Fitting the attribute probe and labelling samples (first time: up to a minute)…"):
            try:
                names, proba = cache.probe_predictions(key, tuple(range(first, first + AUTO_POOL)))
            except ValueError as exc:
                st.error(f"Auto-fill needs the attribute probe, which could not be fitted: {exc}")
                names = None
        if names is not None:
            filled = auto_fill(names, proba, range(first, first + AUTO_POOL), [n for n, _ in specs])
            state[BINS] = [new if new is not None else old for new, old in zip(filled.bins, state[BINS])]
            state[VERSION] += 1
            if filled.filled:
                st.success("Filled " + "; ".join(filled.filled) + ".")
            if filled.unknown:
                st.info("No probe attribute or class in the name of: " + ", ".join(filled.unknown) + f". Known: {', '.join(names)}.")

    palette = list(range(first, first + int(count)))
    extra = sorted({s for b in state[BINS] for s in b} - set(palette))
    urls = cache.seed_data_urls(key, tuple(palette + extra))
    adopt(concept_board(
        BOARD, thumbs=[{"seed": s, "src": urls[s]} for s in palette], extra=[{"seed": s, "src": urls[s]} for s in extra],
        bins=[{"name": n, "label": f"{n} ({w:+g})" + (f" + {len(r)} inverted" if r else "")} for (n, w), r in zip(specs, real)],
        assignment=state[BINS], version=state[VERSION],
    ))  # normally a no-op: the same report was adopted above

    def clear_bins() -> None:
        state[BINS] = [[] for _ in range(n_bins)]
        set_real([[] for _ in range(n_bins)])
        state[VERSION] += 1

    st.button("Clear all bins", on_click=clear_bins)
    st.subheader("Result")
    j1, j2 = st.columns(2)
    jitter = float(j1.slider("Neighbourhood noise (U(±x))", 0.0, MAX_JITTER, step=0.05, **kept("arith_jitter", 0.25)))
    noise_seed = int(j2.number_input("Noise seed", 0, MAX_SEED, **kept("arith_noise", 0)))
    bins = tuple((name, tuple(seeds), weight, tuple(e.token for e in r)) for (name, weight), seeds, r in zip(specs, state[BINS], real))
    inverted, left_out = encode_inverted([list(tokens) for *_, tokens in bins])
    set_link(active.link(**encode_arithmetic([(n, w, list(s)) for n, s, w, _ in bins], jitter, noise_seed), **inverted))
    if left_out:
        st.caption(f"{left_out} inverted picture(s) are not in the link: it would grow too long. The others are.")
    result(bins, noise_seed, jitter)


def result(bins: tuple, noise_seed: int, jitter: float) -> None:
    empty = empty_bins_message([name for name, seeds, _, real in bins if not seeds and not real])
    if empty:
        st.warning(empty)
        return
    try:
        out = cache.arithmetic_result(key, bins, noise_seed, jitter)
    except ValueError as exc:
        st.warning(str(exc))
        return
    show_messages(out.warnings)
    st.markdown(f"**Y = {expression_text([(n, w) for n, _, w, _ in bins])}**")
    r1, r2, r3 = st.columns([3, 2, 2])
    with r1:
        show_mosaic(to_uint8(out.grid_images), nrow=3, caption="G(Y) in the centre, G(Y + noise) around it", side=96)
    with r2:
        show_image(to_uint8(out.pixel_result), "The same sum in pixel space", side=192)
    with r3:
        show_mosaic(to_uint8(out.bin_means), nrow=len(bins), caption="G(mean z) of each bin: " + ", ".join(b[0] for b in bins), side=64)
    if checkpoint.discriminator is None:  # the images above are already on screen while the checks below compute
        st.caption("No verdict or consistency scores: this checkpoint has no discriminator to read features with.")
        return
    judged = cache.cached_probe(key) is not None
    checks = cache.arithmetic_checks(key, bins, noise_seed, jitter, judged)
    v = checks.verdict
    if v is not None:
        counts = ", ".join(f"{n} {c}" for n, c in v.counts.items() if c)
        st.markdown(f"**Attribute classifier: {v.text}**" if v.target else
                    "**Attribute classifier**: the bin names name no attribute or class it knows, so it expects nothing.")
        st.caption(f"Of the 9 images it reads: {counts or 'nothing'} (a linear probe on D's features, not ground truth).")
    elif labels and not judged:
        st.caption("No verdict yet: the attribute classifier is not cached for this checkpoint; Auto-fill fits it.")
    st.markdown("**Bin consistency** (mean pairwise cosine of the exemplars' discriminator features)")
    for col, (name, seeds, _, real), score in zip(st.columns(len(bins)), bins, checks.consistency):
        if len(seeds) + len(real) > 1:
            col.metric(name, f"{score:.2f}", f"{score - checks.baseline:+.2f} vs random")
        else:
            col.metric(name, "—", help="A bin of one exemplar has nothing to be consistent with.")
    st.caption(f"Random samples score {checks.baseline:.2f}: a bin well above that holds one look, a bin near it mixes unlike images.")


workspace()
