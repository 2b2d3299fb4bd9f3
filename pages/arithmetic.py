"""Vector arithmetic (Radford et al. 2015, Sec. 6.3, Fig. 7) on a drag-and-drop board of concept bins.

The board (pages/board.py) only says which seeds sit in which bin; names and signed weights are
Streamlit widgets; `explorer.arithmetic.arithmetic` does the maths. st.session_state["arith_bins"]
holds the seeds per bin and is the source of truth: the board's reports and the auto-fill button
both write it, and the board redraws from it.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import streamlit as st
import torch

from explorer.arithmetic import MAX_BIN_SEEDS, ConceptBin, arithmetic, bin_consistency, concept_mean
from explorer.features import discriminator_features
from explorer.generate import generate
from explorer.images import to_uint8
from explorer.latent import MAX_SEED, z_from_seeds
from pages import common
from pages.board import concept_board

BOARD = "arith_board"
BINS = "arith_bins"  # list[list[int]]: seeds per bin
SEEN = "arith_seen"  # the board value last adopted, so a rerun does not re-adopt a stale one
VERSION = "arith_version"  # bumped whenever Python itself changes BINS, so the board takes them over
DEFAULT_BINS = [("smiling woman", 1.0), ("neutral woman", -1.0), ("neutral man", 1.0)]  # the paper's Fig. 7
MAX_BINS = 6
AUTO_POOL = 512  # generated samples the auto-fill ranks by the probe
AUTO_PER_BIN = 3  # the paper's three exemplars per concept
BASELINE_SEEDS = tuple(range(900_000, 900_016))  # random samples: the consistency a bin gets by chance

# words in bin names -> (probe column, wanted value); attribute and class names match themselves
SYNONYMS = {
    "woman": ("Male", 0), "women": ("Male", 0), "female": ("Male", 0), "girl": ("Male", 0),
    "man": ("Male", 1), "men": ("Male", 1), "male": ("Male", 1), "boy": ("Male", 1),
    "neutral": ("Smiling", 0), "serious": ("Smiling", 0), "smiling": ("Smiling", 1), "smile": ("Smiling", 1),
    "glasses": ("Eyeglasses", 1), "hat": ("Wearing_Hat", 1),
}


def wanted_columns(name: str, columns: list[str]) -> dict[str, int]:
    """Probe columns a bin name asks for, e.g. "smiling woman" -> {"Smiling": 1, "Male": 0}."""
    lower = {c.lower().replace("_", " "): c for c in columns}
    text = name.lower().replace("_", " ")
    wanted: dict[str, int] = {}
    for phrase, column in lower.items():  # whole attribute/class names, e.g. "wearing hat", "ankle boot"
        if re.search(rf"\b{re.escape(phrase)}\b", text):
            wanted[column] = 1
    for word in re.findall(r"[a-z]+", text):
        if word in SYNONYMS and SYNONYMS[word][0] in columns:
            column, value = SYNONYMS[word]
            wanted[column] = value
    return wanted


@st.cache_data(max_entries=8, show_spinner=False)
def probe_predictions(key: common.ModelKey, seeds: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """(column names, probabilities (N, columns)) of the probe on G(z(seed))."""
    checkpoint = common.model(key)
    probe = common.attribute_probe(key)
    images = generate(checkpoint.generator, z_from_seeds(list(seeds), checkpoint.config.z_dim))
    return probe.names, probe.predict_proba(discriminator_features(checkpoint.discriminator, images))


@st.cache_data(max_entries=16, show_spinner="Computing the arithmetic…")
def run_arithmetic(key: common.ModelKey, bins: tuple, noise_seed: int, jitter: float) -> dict:
    """Everything the result section shows, as arrays; bins = ((name, seeds, weight), ...). ValueError for unusable bins."""
    checkpoint = common.model(key)
    G, D, z_dim = checkpoint.generator, checkpoint.discriminator, checkpoint.config.z_dim
    concept_bins = [ConceptBin(name, list(seeds), weight) for name, seeds, weight in bins]
    result = arithmetic(G, concept_bins, z_dim, seed=noise_seed, jitter=jitter)
    means = torch.stack([concept_mean(z_from_seeds(b.seeds, z_dim)) for b in concept_bins])
    out = {
        "grid": to_uint8(result.grid_images),
        "pixel": to_uint8(result.pixel_result),
        "means": to_uint8(generate(G, means)),
        "warnings": result.warnings,
        "consistency": None,
        "baseline": None,
    }
    if D is not None:
        exemplars = generate(G, z_from_seeds([s for b in concept_bins for s in b.seeds], z_dim))
        features = discriminator_features(D, exemplars)
        sizes = np.cumsum([0] + [len(b.seeds) for b in concept_bins])
        out["consistency"] = [bin_consistency(features[a:b]) for a, b in itertools.pairwise(sizes)]
        random_features = discriminator_features(D, generate(G, z_from_seeds(list(BASELINE_SEEDS), z_dim)))
        out["baseline"] = bin_consistency(random_features)
    return out


active = common.page_setup()
key, checkpoint = active.key, active.checkpoint
state = st.session_state
st.title("Vector arithmetic")
st.caption(
    "Drag generated samples into concept bins. Each bin's latents are averaged (the paper found single samples "
    "unstable and used three), the signed sum Y is decoded, and its neighbourhood Y + U(−0.25, 0.25) fills the "
    "3×3 grid around G(Y). Pixel arithmetic on the same images is shown for comparison."
)

# -- bins: count, names and weights are widgets; the seeds in each come from the board
c1, c2, c3 = st.columns(3)
first = c1.number_input("First seed", 0, MAX_SEED - 64, **common.kept("arith_first", 0))
count = c2.slider("Samples on the board", 4, 64, **common.kept("arith_count", 24))
n_bins = int(c3.number_input("Bins", 1, MAX_BINS, **common.kept("arith_nbins", len(DEFAULT_BINS))))
bins_state = [list(b) for b in state.get(BINS, [])][:n_bins]
bins_state += [[] for _ in range(n_bins - len(bins_state))]
state[BINS] = bins_state
state.setdefault(VERSION, 0)


def adopt(report) -> None:
    """Take a new assignment reported by the browser (or injected by a test) as the bins' contents."""
    if not isinstance(report, list) or report == state.get(SEEN):
        return
    state[SEEN] = report
    # The report comes from the browser, so it is bounded here: each bin keeps its first MAX_BIN_SEEDS
    # distinct seeds (every seed in a bin is generated for the board), whatever a crafted client sends.
    cleaned = [
        list(dict.fromkeys(int(s) for s in b if isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= MAX_SEED))[:MAX_BIN_SEEDS]
        for b in report[:n_bins]
        if isinstance(b, list)
    ]
    state[BINS] = cleaned + [[] for _ in range(n_bins - len(cleaned))]


# The board's last report is in session_state before the board is drawn: adopting it first means the
# board is drawn (and the result computed) from the newest assignment in this same run.
board_state = state.get(BOARD)
adopt(board_state.get("assignment") if isinstance(board_state, dict) else None)

weight_cols = st.columns(n_bins)
bin_specs = []
for i, col in enumerate(weight_cols):
    default_name, default_weight = DEFAULT_BINS[i] if i < len(DEFAULT_BINS) else (f"concept {i + 1}", 1.0)
    with col:
        name = st.text_input(f"Bin {i + 1}", **common.kept(f"arith_name_{i}", default_name)).strip() or f"bin {i + 1}"
        weight = st.number_input("weight", -3.0, 3.0, step=0.5, **common.kept(f"arith_w_{i}", default_weight))
    bin_specs.append((name, float(weight)))

# -- auto-fill from attribute predictions (needs labels and a discriminator)
columns_available = checkpoint.attribute_names or checkpoint.class_names
if checkpoint.discriminator is None or not columns_available:
    st.caption(
        "Auto-fill is not available: it ranks samples with an attribute probe on the discriminator's features, "
        + ("and this checkpoint has no discriminator." if checkpoint.discriminator is None else "and this checkpoint's dataset has no labels.")
    )
elif st.button("Auto-fill bins from attribute predictions", help=f"Ranks {AUTO_POOL} samples with the probe and puts the {AUTO_PER_BIN} most typical into each bin whose name mentions attributes (e.g. 'smiling woman')."):
    with st.spinner("Fitting the attribute probe and labelling samples (first time: up to a minute)…"):
        try:
            names, proba = probe_predictions(key, tuple(range(int(first), int(first) + AUTO_POOL)))
        except ValueError as exc:
            st.error(f"Auto-fill needs the attribute probe, which could not be fitted: {exc}")
            names = None
    if names is not None:
        filled, unknown = [], []
        for i, (name, _) in enumerate(bin_specs):
            wanted = wanted_columns(name, names)
            if not wanted:
                unknown.append(name)
                continue
            # joint score: product of P(column = wanted value) over the asked-for columns
            score = np.ones(len(proba))
            for column, value in wanted.items():
                p = proba[:, names.index(column)]
                score *= p if value else 1 - p
            top = np.argsort(-score)[:AUTO_PER_BIN]
            state[BINS][i] = [int(first) + int(j) for j in top]
            filled.append(f"{name} ({', '.join(f'{c}={v}' for c, v in wanted.items())})")
        if filled:
            state[VERSION] += 1
            st.success("Filled " + "; ".join(filled) + ".")
        if unknown:
            st.info("No probe attribute in the name of: " + ", ".join(unknown) + f". Known: {', '.join(names)}.")

# -- the board
palette_seeds = list(range(int(first), int(first) + int(count)))
extra_seeds = sorted({s for b in state[BINS] for s in b} - set(palette_seeds))
images = common.seed_images(key, tuple(palette_seeds + extra_seeds))
srcs = {s: common.data_url(im) for s, im in zip(palette_seeds + extra_seeds, images)}
reported = concept_board(
    BOARD,
    thumbs=[{"seed": s, "src": srcs[s]} for s in palette_seeds],
    extra=[{"seed": s, "src": srcs[s]} for s in extra_seeds],
    bins=[{"name": n, "label": f"{n} ({w:+g})"} for n, w in bin_specs],
    assignment=state[BINS],
    version=state[VERSION],
)
adopt(reported)  # normally a no-op: the same report was adopted above


def clear_bins() -> None:
    state[BINS] = [[] for _ in range(n_bins)]
    state[VERSION] += 1


st.button("Clear all bins", on_click=clear_bins)

# -- the result
st.subheader("Result")
j1, j2 = st.columns(2)
jitter = j1.slider("Neighbourhood noise (U(±x))", 0.0, 1.0, step=0.05, **common.kept("arith_jitter", 0.25))
noise_seed = j2.number_input("Noise seed", 0, MAX_SEED, **common.kept("arith_noise", 0))
bins = tuple((name, tuple(seeds), weight) for (name, weight), seeds in zip(bin_specs, state[BINS]))
empty = [name for name, seeds, _ in bins if not seeds]
if empty:
    st.warning(
        "Empty bin" + ("s " if len(empty) > 1 else " ") + ", ".join(f"'{n}'" for n in empty)
        + ": drag at least one sample into each bin (three give a stable mean) to see the result."
    )
    st.stop()
try:
    out = run_arithmetic(key, bins, int(noise_seed), float(jitter))
except ValueError as exc:
    st.warning(str(exc))
    st.stop()
common.show_errors(out["warnings"])

expression = " ".join(f"{'−' if w < 0 else '+'} {'' if abs(w) == 1 else f'{abs(w):g}·'}[{n}]" for n, _, w in bins).removeprefix("+ ")
st.markdown(f"**Y = {expression}**")
r1, r2, r3 = st.columns([3, 2, 2])
with r1:
    common.show_mosaic(out["grid"], nrow=3, caption="G(Y) in the centre, G(Y + noise) around it", side=96)
with r2:
    common.show_image(out["pixel"], "The same sum in pixel space", side=192)
with r3:
    common.show_mosaic(out["means"], nrow=len(bins), caption="G(mean z) of each bin: " + ", ".join(n for n, _, _ in bins), side=64)

if out["consistency"] is not None:
    st.markdown("**Bin consistency** (mean pairwise cosine of the exemplars' discriminator features)")
    cols = st.columns(len(bins))
    for col, (name, seeds, _), score in zip(cols, bins, out["consistency"]):
        if len(seeds) > 1:
            col.metric(name, f"{score:.2f}", f"{score - out['baseline']:+.2f} vs random")
        else:
            col.metric(name, "—", help="A bin of one exemplar has nothing to be consistent with.")
    st.caption(f"Random samples score {out['baseline']:.2f}: a bin well above that holds one look, a bin near it mixes unlike images.")
else:
    st.caption("No consistency scores: this checkpoint has no discriminator to extract features with.")
