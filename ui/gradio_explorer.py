"""The Gradio demo's actions over one loaded checkpoint: widget values in, core calls, images and text out.

Every number shown comes from `explorer/`; the rules (which sliders exist, seed parsing, number
checks, empty bins, the feature map's figure) are the core's or `ui.figures`', shared with the
Streamlit explorer, so both front ends offer the same directions and say the same things. What
belongs here is the glue: turning a core ValueError into a gr.Error, and formatting results.

Sharing model: one checkpoint is loaded at start and shared by every visitor. It is in eval mode
and never mutated (see `explorer.generate`), so concurrent requests cannot disturb each other;
whatever belongs to one visitor (which seeds their exemplar gallery shows) lives in gr.State.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from explorer import analysis
from explorer.arithmetic import (
    MAX_BIN_SEEDS, ConceptBin, arithmetic, check_arithmetic, consistency_baseline, default_bins, empty_bins_message,
)
from explorer.checkpoint import Checkpoint
from explorer.encoder import cached_encoder
from explorer.featuremap import FeatureMap, discriminator_accuracy, load_feature_map
from explorer.generate import MAX_GRID, generate, realism, seed_grid
from explorer.images import grid, to_uint8
from explorer.invert import InversionSettings, invert_picture
from explorer.latent import WALK_MODES, apply_offsets, keypoint_seeds, latent_norm_stats, parse_seed, parse_seed_list, walk, z_from_seed, z_from_seeds
from explorer.real_exemplars import (
    DATASET_POOL, MAX_FILL_PER_BIN, InvertedExemplar, fill_bins_from_dataset, join_exemplars, unknown_data_message,
)
from explorer.sliders import MAX_OFFSET, direction_label, slider_groups, slider_help
from explorer.urlstate import MAX_JITTER
from explorer.validation import number_in, whole_in
from explorer.video import MAX_GIF_FPS, frames_to_gif, frames_to_mp4
from explorer.ztoken import parse_z_tokens, z_from_token
from ui.figures import REAL_VS_GENERATED, colourings, feature_map_caption, feature_map_figure, map_colourings, subsample

# Public demo: every request's cost is bounded, so one visitor cannot stall the queue for the rest.
RAW_Z_SLIDERS = 4  # the first few raw coordinates of z; the rest are only reachable via directions
MAX_GALLERY = min(64, MAX_GRID)  # exemplars per gallery page
MAX_FRAMES_PER_SEGMENT = 60
MAX_WALK_FRAMES = 240  # total frames per walk; the GIF encoder is the slow part (seconds per 60 frames)
GIF_SIDE = 128  # GIF frames are enlarged only to this side (MP4 gets the core's default 256): GIF is ~10x costlier
MAX_FEATURE_POINTS = 20000  # plotly in the browser stays responsive up to about this many markers
SCRATCH_MAX_AGE_S = 600  # walk files are copied into gradio's cache on return; our copies can go soon after
GROUPS = ("A", "B", "C")  # the arithmetic's groups: A − B + C
NO_FEATURE_MAP = (
    "No feature map has been computed for this checkpoint yet. It embeds thousands of samples with UMAP "
    "(minutes on a CPU), so the demo only shows a cached one: build it once offline "
    "(`python -m explorer.precompute CHECKPOINT`) and it appears here."
)


def fail(message: str) -> gr.Error:
    """A gr.Error for the visitor: shown in the page and raised by gradio_client; the server keeps serving.

    print_exception=False: a visitor's typo is not a server fault, so it leaves no traceback in the log.
    """
    return gr.Error(message[:1].upper() + message[1:], print_exception=False)


def checked(check: Callable, *args):
    """`check(*args)` from the core, with its ValueError turned into the visitor's gr.Error."""
    try:
        return check(*args)
    except ValueError as exc:
        raise fail(str(exc)) from None


@dataclass(frozen=True)
class Slider:
    api_name: str  # the /generate parameter, e.g. "sefa_0", "attr_Smiling", "z_3"
    name: str  # the direction ("sefa:0") or raw coordinate ("z:3")
    label: str
    info: str
    group: str  # the accordion it sits in
    open: bool


def with_parameters(fn, names: list[str]):
    """fn(*values) under a signature naming each value, all defaulting to 0.

    Gradio names API parameters after the handler's signature (a *args handler shows param_1,
    param_2, ...); named ones let a client send `predict(seed=5, sefa_0=2.0, api_name="/generate")`.
    """

    def call(*values):
        return fn(*values)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    call.__signature__ = inspect.Signature([inspect.Parameter(n, kind, default=0) for n in names])
    call.__name__ = fn.__name__
    return call


class Explorer:
    """The demo's actions over one loaded checkpoint, shared by all visitors.

    Read-only after construction, except `_feature_map`, which goes once from None to a loaded map
    (under a lock) when an analysis appears in the cache while the demo runs.
    """

    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint = checkpoint
        self.G, self.D = checkpoint.generator, checkpoint.discriminator
        self.z_dim = checkpoint.config.z_dim
        self.norm = latent_norm_stats(self.z_dim)
        self.directions, analysed, _ = analysis.available_directions(checkpoint)
        self.directions_note = (
            "Directions from the cached analysis (cond: = one attribute with the others held; attr:/class: = raw mean "
            "difference; svm: = SVM normal) and SeFa." if analysed else
            "SeFa directions only (closed form): the labelled and GANSpace directions need `python -m explorer.precompute`."
        )
        self.probe = analysis.cached_probe(checkpoint) if self.D is not None else None
        self.bin_names = [name for name, _ in default_bins(checkpoint.attribute_names, checkpoint.class_names)]
        self.sliders = [Slider(f"z_{i}", f"z:{i}", f"z[{i}] offset", "adds this much to one coordinate of z", "raw", False)
                        for i in range(min(RAW_Z_SLIDERS, self.z_dim))]
        for group in slider_groups(self.directions):
            for name in group.names:
                api = re.sub(r"\W+", "_", name).strip("_")  # "sefa:0" -> sefa_0, "class:T-shirt/top" -> class_T_shirt_top
                taken = {s.api_name for s in self.sliders}
                api = api if api and api not in taken else f"direction_{len(self.sliders)}"
                label = direction_label(name, self.directions)
                info = slider_help(name, self.directions, checkpoint.meta.get("evaluation"))
                self.sliders.append(Slider(api, name, label, info, group.title, group.open))
        self.generate_api = with_parameters(self.generate, ["seed", *(s.api_name for s in self.sliders)])
        self.invert_api = with_parameters(self.invert, ["picture", *(s.api_name for s in self.sliders)])
        self._feature_map: FeatureMap | None = None
        self._feature_map_lock = threading.Lock()
        self.scratch = Path(tempfile.mkdtemp(prefix="latent-lab-gradio-"))
        atexit.register(shutil.rmtree, self.scratch, ignore_errors=True)

    # -- helpers
    def _realism_text(self, images: torch.Tensor) -> str:
        if self.D is None:
            return ""
        scores = realism(self.D, images)
        return f" · mean D(x) {scores.mean():.2f}" if len(scores) > 1 else f" · D(x) {scores[0]:.2f}"

    def _scratch_file(self, suffix: str, data: bytes) -> str:
        now = time.time()
        for old in self.scratch.iterdir():
            try:
                if now - old.stat().st_mtime > SCRATCH_MAX_AGE_S:
                    old.unlink()
            except OSError:  # another request removed it first
                pass
        path = self.scratch / f"walk-{uuid.uuid4().hex[:12]}{suffix}"
        path.write_bytes(data)
        return str(path)

    def _edited(self, z: torch.Tensor, values: tuple, after: str) -> torch.Tensor:
        """z + the sliders' offsets (one value per slider, in `self.sliders` order, sent after `after`)."""
        if len(values) != len(self.sliders):
            raise fail(f"expected {len(self.sliders)} slider values after the {after}, got {len(values)}")
        offsets = {s.name: checked(number_in, v, f"slider '{s.label}'", -MAX_OFFSET, MAX_OFFSET) for v, s in zip(values, self.sliders)}
        return apply_offsets(z, offsets, {n: d.vector for n, d in self.directions.items()})

    # -- Generate
    def generate(self, seed, *values):
        """seed, then one offset per slider (raw z coordinates, then directions) -> (uint8 image, info markdown)."""
        seed = checked(parse_seed, seed)
        z = self._edited(z_from_seed(seed, self.z_dim), values, "seed")
        image = generate(self.G, z[None])
        info = f"seed {seed} · |z| {z.norm():.2f} (prior shell {self.norm.mean:.2f} ± {self.norm.std:.2f})" + self._realism_text(image)
        return to_uint8(image[0]), info

    # -- Invert & edit
    def invert(self, picture, *values):
        """An uploaded picture (file path), then one offset per slider ->
        (the picture as the model sees it, its reconstruction G(z), the edit G(z + offsets), info markdown with z's token)."""
        if not picture:
            raise fail("upload a picture first")
        done = self._inverted(picture)
        edit = to_uint8(generate(self.G, self._edited(torch.from_numpy(done.z), values, "picture")[None]))[0]
        info = (f"pixel RMS {done.pixel_rms:.3f} (the encoder's guess {done.start_pixel_rms:.3f}) · {done.seconds:.1f} s · "
                f"z as a token: `{done.token}`")
        return done.picture, done.reconstruction, edit, info

    def _encoder(self):
        """The checkpoint's cached inversion encoder; a gr.Error without one (training it takes minutes: not in a request)."""
        found = cached_encoder(self.checkpoint)
        if found is None:
            raise fail("this checkpoint has no inversion encoder yet: run `python -m explorer.precompute CHECKPOINT` once (minutes)")
        return found[0]

    def _inverted(self, picture):
        """`invert_picture` of an upload (a file path) with the cached encoder; a gr.Error for what cannot be inverted."""
        return checked(invert_picture, self.checkpoint, str(picture), Path(str(picture)).name, InversionSettings(), self._encoder())

    # -- Vector arithmetic
    def exemplars(self, first_seed, count):
        """A gallery page of seeded exemplars: ([(image, caption)], seeds for the visitor's gr.State)."""
        first_seed = checked(parse_seed, first_seed, "first seed")
        count = checked(whole_in, count, "number of exemplars", 1, MAX_GALLERY)
        images, seeds = checked(seed_grid, self.G, first_seed, count)
        return [(image, f"seed {s}") for image, s in zip(to_uint8(images), seeds)], seeds

    @staticmethod
    def pick(seeds: list[int] | None, target: str, a: str, b: str, c: str, evt: gr.SelectData):
        """Clicking gallery image i appends its seed to the chosen group (once)."""
        groups = {"A": a or "", "B": b or "", "C": c or ""}
        if not seeds or evt.index is None or target not in groups:
            return a, b, c
        index = evt.index if isinstance(evt.index, int) else evt.index[0]
        if not 0 <= index < len(seeds):
            return a, b, c
        seed = str(seeds[index])
        present = [t for t in re.split(r"[\s,;]+", groups[target].strip()) if t]
        if seed not in present:
            groups[target] = ", ".join([*present, seed])
        return groups["A"], groups["B"], groups["C"]

    def _names(self, *names) -> list[str]:
        return [str(n).strip() if n else default for n, default in zip(names, self.bin_names)]

    def _tokens(self, *texts) -> list[list[str]]:
        """The groups' inverted pictures (z tokens, `explorer.ztoken`) from their text boxes; a gr.Error for a bad one."""
        groups = []
        for group, text in zip(GROUPS, texts):
            tokens, problems = parse_z_tokens(text, self.z_dim, f"{group}'s inverted pictures", MAX_BIN_SEEDS)
            if problems:
                raise fail(problems[0])
            groups.append(tokens)
        return groups

    def arithmetic(self, a_text, b_text, c_text, noise_seed, jitter, name_a=None, name_b=None, name_c=None, real_a=None, real_b=None, real_c=None):
        """A − B + C (Radford et al. Fig. 7) over seeds and inverted pictures (z tokens) ->
        (3x3 grid around Y, pixel-space baseline, notes with the verdict)."""
        bins = []
        real = self._tokens(real_a, real_b, real_c)
        for name, text, weight, tokens in zip(self._names(name_a, name_b, name_c), (a_text, b_text, c_text), (1.0, -1.0, 1.0), real):
            seeds, problems = parse_seed_list(text, f"bin '{name}'", MAX_BIN_SEEDS)
            if problems:
                raise fail(problems[0])
            bins.append(ConceptBin(name, seeds, weight, latents=[z_from_token(t, self.z_dim) for t in tokens]))
        empty = empty_bins_message([b.name for b in bins if not b.seeds and not b.latents])
        if empty:
            raise fail(empty)
        noise_seed = checked(parse_seed, noise_seed, "noise seed")
        jitter = checked(number_in, jitter, "jitter", 0.0, MAX_JITTER)
        result = checked(arithmetic, self.G, bins, self.z_dim, noise_seed, jitter)
        notes = [f"Centre: G(Y) with Y = mean z(A) − mean z(B) + mean z(C); the other 8 add uniform noise of ±{jitter:g}."
                 + self._realism_text(result.grid_images)]
        if self.D is not None:
            checks = check_arithmetic(self.D, bins, result, self.baseline, self.probe)
            if checks.verdict is not None and checks.verdict.target:
                notes.append(f"**Attribute classifier: {checks.verdict.text}**")
            notes.append("Bin consistency (D features; random samples: " + f"{checks.baseline:.2f}): "
                         + ", ".join(f"{b.name} {c:.2f}" for b, c in zip(bins, checks.consistency)))
        notes += [f"⚠ {w}" for w in result.warnings]
        return grid(result.grid_images, nrow=3), to_uint8(result.pixel_result), "\n\n".join(notes)

    def inverted_gallery(self, groups: list[list[str]]) -> list[tuple]:
        """Every group's inverted pictures as their reconstructions G(z), captioned "A · inverted" etc."""
        tokens = [(g, t) for g, group in zip(GROUPS, groups) for t in group]
        if not tokens:
            return []
        images = to_uint8(generate(self.G, torch.from_numpy(np.stack([z_from_token(t, self.z_dim) for _, t in tokens]))))
        return [(image, f"{g} · inverted") for image, (g, _) in zip(images, tokens)]

    def add_inverted(self, pictures, target, real_a, real_b, real_c):
        """Uploaded pictures (file paths), inverted and added to group `target` ->
        (A, B, C inverted pictures as z-token texts, gallery of them all, note)."""
        if not pictures:
            raise fail("upload one or more pictures first")
        if target not in GROUPS:
            raise fail(f"the group must be one of {', '.join(GROUPS)}, got {target!r}")
        groups, i = self._tokens(real_a, real_b, real_c), GROUPS.index(target)
        new = [InvertedExemplar(self._inverted(p).token, Path(str(p)).name) for p in (pictures if isinstance(pictures, list) else [pictures])]
        joined, notes = join_exemplars([InvertedExemplar(t, "") for t in groups[i]], new, 0)
        added, groups[i] = len(joined) - len(groups[i]), [e.token for e in joined]
        note = " ".join([f"Added {added} inverted picture(s) to {target}."] + [n[:1].upper() + n[1:] + "." for n in notes])
        return (*(", ".join(g) for g in groups), self.inverted_gallery(groups), note)

    @functools.cached_property
    def _dataset(self):
        """The training pictures fills pick from (DatasetError, a ValueError, where unreadable: not cached, tried again)."""
        return analysis.load_real_dataset(self.checkpoint, DATASET_POOL)

    def fill_from_dataset(self, k, draw, name_a, name_b, name_c, a_text, b_text, c_text, real_a, real_b, real_c):
        """Groups whose names name the dataset's own labels get k of its matching pictures, inverted, and nothing else ->
        (A, B, C seeds, A, B, C z tokens, gallery of the inverted pictures, note). Other groups stay as they were."""
        unknown = unknown_data_message(self.checkpoint)
        if unknown:
            raise fail(unknown)
        k = checked(whole_in, k, "pictures per group", 1, MAX_FILL_PER_BIN)
        draw = checked(parse_seed, draw, "draw")
        seeds, groups = [a_text or "", b_text or "", c_text or ""], self._tokens(real_a, real_b, real_c)
        try:
            dataset = self._dataset
        except ValueError as exc:
            raise fail(f"the training pictures cannot be read here: {exc}") from None
        specs = list(zip(self._names(name_a, name_b, name_c), (1.0, -1.0, 1.0)))
        fill = checked(fill_bins_from_dataset, self.checkpoint, dataset, specs, k, draw, InversionSettings(), self._encoder())
        for i, exemplars in enumerate(fill.exemplars):
            if exemplars is not None:
                seeds[i], groups[i] = "", [e.token for e in exemplars]
        note = ("Filled with inverted dataset pictures: " + "; ".join(fill.filled) + "." if fill.filled else "") + "".join(
            f" {p[:1].upper() + p[1:]}." for p in fill.problems)
        return (*seeds, *(", ".join(g) for g in groups), self.inverted_gallery(groups), note.strip())

    @functools.cached_property
    def baseline(self) -> float:
        """`consistency_baseline` of this checkpoint, computed by the first arithmetic request (a race only repeats it)."""
        return consistency_baseline(self.G, self.D)

    # -- Latent walk
    def walk(self, seeds_text, frames_per_segment, mode, loop, fps):
        """A walk through seeded keypoints -> (GIF preview, GIF file, MP4 file, info)."""
        seeds, problems = keypoint_seeds(seeds_text)
        if problems:
            raise fail(problems[0])
        n = checked(whole_in, frames_per_segment, "frames per segment", 1, MAX_FRAMES_PER_SEGMENT)
        fps = checked(number_in, fps, "frames per second", 1, MAX_GIF_FPS)
        if mode not in WALK_MODES:
            raise fail(f"mode must be one of {', '.join(WALK_MODES)}, got {mode!r}")
        path = walk(z_from_seeds(seeds, self.z_dim), n, mode=mode, loop=bool(loop))
        if len(path) > MAX_WALK_FRAMES:  # checked on the latents, before any image is generated
            raise fail(f"this walk has {len(path)} frames; at most {MAX_WALK_FRAMES} are allowed: use fewer seeds or frames per segment")
        frames = to_uint8(generate(self.G, path))
        gif_scale = max(1, GIF_SIDE // self.checkpoint.config.image_size)
        gif = self._scratch_file(".gif", frames_to_gif(frames, fps=fps, scale=gif_scale))
        mp4 = self._scratch_file(".mp4", frames_to_mp4(frames, fps=fps))
        return gif, gif, mp4, f"{len(frames)} frames, {mode}{' (looped)' if loop else ''}, {fps:g} fps"

    # -- Feature map
    @property
    def feature_map(self) -> FeatureMap | None:
        """The cached map, looked up again while there is none, so a map built after start-up is picked up."""
        if self._feature_map is None:
            with self._feature_map_lock:
                if self._feature_map is None:
                    found = analysis.find_feature_maps(self.checkpoint)
                    self._feature_map = load_feature_map(found[0]) if found else None
        return self._feature_map

    def colorings(self) -> list[str]:
        """The map's colourings; without a map yet, those a map of this checkpoint's labels will have."""
        fmap = self.feature_map
        if fmap is not None:
            return map_colourings(fmap)
        ck = self.checkpoint
        return colourings("attribute" if ck.attribute_names else "class" if ck.class_names else None, ck.attribute_names or ck.class_names)

    def feature_map_figure(self, color_by, max_points):
        """The cached feature map as (plotly figure, caption), or an error saying why there is none."""
        fmap = self.feature_map
        if fmap is None:
            raise fail(NO_FEATURE_MAP)
        max_points = checked(whole_in, max_points, "number of points", 1, MAX_FEATURE_POINTS)
        shown = subsample(len(fmap.is_real), max_points)
        colour = color_by or REAL_VS_GENERATED
        figure = checked(feature_map_figure, fmap, colour, "UMAP", shown, None, 600)
        caption = feature_map_caption(fmap, len(shown), colour) + " " + discriminator_accuracy(fmap).note
        return figure, caption
