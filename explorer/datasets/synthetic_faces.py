"""Procedural cartoon faces: the offline default dataset and ground truth for latent arithmetic.

Every face is drawn from a small set of named parameters (`sample_parameters`), so the same face
can be re-rendered with one attribute flipped (`render`) - that is what makes it possible to
measure whether "smiling woman - neutral woman + neutral man" lands on a smiling man.

Attributes (0/1, CelebA names, roughly CelebA-like base rates, independent unless noted):

    Smiling              0.50  mouth curves up at the corners and widens
    Male                 0.45  short hair, squarer jaw, heavier and lower brows, paler lips;
                               female: long hair falling beside the face, heavier lash line
    Eyeglasses           0.15  frames round both eyes + bridge + temples; 1 in 5 are sunglasses
    Wearing_Hat          0.15  beanie, cap or brimmed hat over the top of the head, any hue
    Bangs                0.20  jagged fringe over the forehead down to the brows
    Black_Hair, Blond_Hair     derived from the hair colour: black 0.28, brown 0.30, blond 0.18,
                               red 0.10, grey 0.14
    Mustache             0.30 of males, never on females
    Pale_Skin                  derived: skin_tone < PALE_SKIN_MAX (0.12 of faces)
    Mouth_Slightly_Open  0.50 of smiling faces (dark gap with teeth), 0.10 of neutral ones

Continuous factors (FACTOR_NAMES; uniform on the FACTOR_RANGES bounds unless noted). Head units:
the head is an ellipse of half-width 0.5 * face_width and half-height 0.64 head units.

    yaw                   [-0.4, 0.4] rad  head turn; > 0 turns the face toward the viewer's right:
                                           features and pupils shift right, the right half squashes
    skin_tone             [0, 1]           0 palest .. 1 darkest, along a 6-stop skin palette
    hair_hue              [0, 1)           HLS hue of the hair, uniform in its hair colour's band
    hair_lightness        [0, 1]           HLS lightness of the hair, uniform in its colour's band
    background_hue        [0, 1)           HLS hue of the backdrop
    lighting              [-1, 1]          light direction; > 0 brightens the viewer's right side of
                                           the figure and darkens the left (up to +-30 %)
    roll                  [-0.12, 0.12] rad  in-plane head tilt, > 0 clockwise on screen
    head_scale            [0.9, 1.08]      head size relative to the nominal framing
    head_x, head_y        [-0.06, 0.06], [-0.02, 0.08]  head centre offset, canvas half-widths
                                           (the canvas spans [-1, 1]; y grows downward)
    face_width            [0.92, 1.08]     head width multiplier (height fixed)
    background_lightness  [0.3, 0.85]      HLS lightness of the backdrop
    eye_spacing           [0.2, 0.24]      eye-centre distance from the face midline, head units
    mouth_width           [0.85, 1.15]     mouth width multiplier
    hair_length           [0, 1]           female: how far the hair falls below the chin;
                                           male: hair volume above the scalp
    hat_hue, shirt_hue    [0, 1)           HLS hue of the hat (when worn) and of the shirt

Determinism: parameters are drawn in blocks of _PARAM_BLOCK faces, block k from
`np.random.default_rng([seed, k])`, and each pixel of face i is an element-wise function of face
i's parameters alone, so face i depends only on (seed, i): `generate(n)` is a prefix of
`generate(m)` for n <= m, and the same (n, seed, size) gives byte-identical output on the same
numpy build (float32 sqrt/sin kernels may differ in the last bit between CPUs or builds).

Rendering (explorer.datasets.face_drawing): every shape is a signed-distance field in head-local
units, evaluated for a chunk of 64 faces at once by broadcasting, with an analytic one-pixel
anti-alias ramp; layers are composited back to front.

Speed, measured on the 2-core dev box (AMD EPYC, numpy 2.4, 2 render threads): generate(30_000)
at 64 px costs 24-25 CPU-seconds, ~1,200 images/s per core. With both cores free that is ~13-18 s
wall (~1,700-2,300 images/s; 15 s measured on an earlier, ~5 % cheaper revision); with other jobs
holding the box at a load average of ~7 it took 48-61 s (~500-630 images/s). generate(256) takes
~0.1-0.2 s idle, 0.4-0.6 s under that load.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.datasets.face_drawing import FRAME_COLORS, IRIS_COLORS, render_chunk

RENDERER_VERSION: int = 1

ATTRIBUTE_NAMES: tuple[str, ...] = (
    "Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Bangs",
    "Black_Hair", "Blond_Hair", "Mustache", "Pale_Skin", "Mouth_Slightly_Open",
)

# name -> (low, high) of the uniform draw; see the module docstring for each meaning.
FACTOR_RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-0.4, 0.4),
    "skin_tone": (0.0, 1.0),
    "hair_hue": (0.0, 1.0),
    "hair_lightness": (0.0, 1.0),
    "background_hue": (0.0, 1.0),
    "lighting": (-1.0, 1.0),
    "roll": (-0.12, 0.12),
    "head_scale": (0.9, 1.08),
    "head_x": (-0.06, 0.06),
    "head_y": (-0.02, 0.08),
    "face_width": (0.92, 1.08),
    "background_lightness": (0.3, 0.85),
    "eye_spacing": (0.2, 0.24),
    "mouth_width": (0.85, 1.15),
    "hair_length": (0.0, 1.0),
    "hat_hue": (0.0, 1.0),
    "shirt_hue": (0.0, 1.0),
}
FACTOR_NAMES: tuple[str, ...] = tuple(FACTOR_RANGES)

PALE_SKIN_MAX = 0.12  # skin_tone below this is labelled Pale_Skin

# Hair colours: name, probability, and HLS bands (hue, lightness, saturation) the colour is drawn from.
_HAIR_COLORS = (
    ("black", 0.28, (0.0, 0.1), (0.06, 0.14), (0.1, 0.3)),
    ("brown", 0.30, (0.055, 0.09), (0.2, 0.34), (0.35, 0.55)),
    ("blond", 0.18, (0.1, 0.14), (0.6, 0.74), (0.5, 0.75)),
    ("red", 0.10, (0.02, 0.05), (0.34, 0.45), (0.55, 0.75)),
    ("grey", 0.14, (0.0, 1.0), (0.6, 0.8), (0.0, 0.06)),
)
_BLACK, _BLOND = 0, 2

_PARAM_BLOCK = 1024  # faces per parameter Generator; fixed so face i depends only on (seed, i)
_RENDER_CHUNK = 64  # faces per render call: 64 x 64 x 64 float32 = 1 MiB per plane stays in L2/L3


@dataclass(frozen=True)
class SyntheticFaces:
    images: np.ndarray  # uint8 (N, size, size, 3), HWC RGB
    attributes: np.ndarray  # uint8 (N, len(ATTRIBUTE_NAMES)), 0/1
    factors: np.ndarray  # float32 (N, len(FACTOR_NAMES))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    lo, hi = bounds
    return (lo + (hi - lo) * rng.random(m)).astype(np.float32)


def _sample_block(rng: np.random.Generator, m: int) -> dict[str, np.ndarray]:
    """m faces' parameters. Changing the draw order changes every face: bump RENDERER_VERSION."""
    p: dict[str, np.ndarray] = {}
    p["Smiling"] = rng.random(m) < 0.5
    p["Male"] = rng.random(m) < 0.45
    p["Eyeglasses"] = rng.random(m) < 0.15
    p["Wearing_Hat"] = rng.random(m) < 0.15
    p["Bangs"] = rng.random(m) < 0.2
    p["Mustache"] = p["Male"] & (rng.random(m) < 0.3)
    p["Mouth_Slightly_Open"] = rng.random(m) < np.where(p["Smiling"], 0.5, 0.1)
    for name, bounds in FACTOR_RANGES.items():
        if name not in ("hair_hue", "hair_lightness"):  # drawn per hair colour below
            p[name] = _uniform(rng, bounds, m)

    # Hair colour: a category, then hue/lightness/saturation uniform inside that colour's bands.
    probs = np.array([c[1] for c in _HAIR_COLORS])
    hair = rng.choice(len(_HAIR_COLORS), size=m, p=probs / probs.sum())
    u = rng.random((3, m))
    bands = np.array([[c[2], c[3], c[4]] for c in _HAIR_COLORS], np.float32)  # (colours, hls, lo/hi)
    lo, hi = bands[hair, :, 0].T, bands[hair, :, 1].T  # (3, m)
    hls = lo + (hi - lo) * u
    p["hair_color"] = hair.astype(np.int8)
    p["hair_hue"], p["hair_lightness"], p["hair_saturation"] = (c.astype(np.float32) for c in hls)
    p["Black_Hair"] = hair == _BLACK
    p["Blond_Hair"] = hair == _BLOND
    p["Pale_Skin"] = p["skin_tone"] < PALE_SKIN_MAX

    p["background_saturation"] = _uniform(rng, (0.1, 0.6), m)
    p["background_angle"] = _uniform(rng, (0.0, 2 * np.pi), m)  # gradient direction, rad
    p["iris_color"] = rng.integers(0, len(IRIS_COLORS), m).astype(np.int8)
    p["frame_color"] = rng.integers(0, len(FRAME_COLORS), m).astype(np.int8)
    p["sunglasses"] = rng.random(m) < 0.2
    p["hat_style"] = rng.integers(0, 3, m).astype(np.int8)  # 0 beanie, 1 cap, 2 brimmed hat
    p["shirt_lightness"] = _uniform(rng, (0.2, 0.8), m)
    for name in ATTRIBUTE_NAMES:
        p[name] = p[name].astype(np.uint8)
    return p


def sample_parameters(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random parameters of n faces, each a length-n array; deterministic in (n, seed), seed >= 0.

    Keys: every ATTRIBUTE_NAMES entry (uint8 0/1), every FACTOR_NAMES entry (float32, see the
    module docstring), and the nuisance parameters hair_color (int8 index: black, brown, blond,
    red, grey), hair_saturation (HLS), background_saturation (HLS), background_angle (rad, direction
    of the backdrop gradient), iris_color / frame_color (int8 palette indices), sunglasses (bool),
    hat_style (int8: 0 beanie, 1 cap, 2 brimmed hat) and shirt_lightness (HLS).

    Black_Hair, Blond_Hair and Pale_Skin are labels derived from the colour parameters; `render`
    ignores them. `render` draws whatever the other attributes say (a Mustache with Male=0
    included), the Mustache-only-on-males rule is enforced here.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    # Whole blocks (at least one, so n = 0 still yields every key), then the first n faces.
    blocks = [_sample_block(np.random.default_rng([seed, k]), _PARAM_BLOCK)
              for k in range(max(1, -(-n // _PARAM_BLOCK)))]
    return {k: np.concatenate([b[k] for b in blocks])[:n] for k in blocks[0]}



def render(params: dict[str, np.ndarray], size: int = 64) -> np.ndarray:
    """Draw faces from explicit parameters -> uint8 (N, size, size, 3) HWC RGB.

    params has the keys of `sample_parameters` (length-N arrays); edit a copy of its output to
    render a chosen face, e.g. the same face with Smiling 0 and 1. Any size >= 1 works: geometry
    is resolution-independent and the anti-alias ramp is always one output pixel wide.
    Chunks of _RENDER_CHUNK faces are rendered on a thread pool (numpy releases the GIL inside its
    element-wise loops); chunks are independent, so the result does not depend on the thread count.
    """
    n = len(params["yaw"])
    out = np.empty((n, size, size, 3), np.uint8)
    starts = range(0, n, _RENDER_CHUNK)

    def work(start: int) -> None:
        chunk = {k: np.asarray(v)[start:start + _RENDER_CHUNK] for k, v in params.items()}
        out[start:start + _RENDER_CHUNK] = render_chunk(chunk, size)

    workers = min(os.cpu_count() or 1, len(starts))
    if workers <= 1:
        for s in starts:
            work(s)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, starts))
    return out


def generate(n: int, seed: int = 0, size: int = 64) -> SyntheticFaces:
    """n random faces with their attribute labels and continuous factors."""
    params = sample_parameters(n, seed)
    return SyntheticFaces(
        images=render(params, size),
        attributes=np.stack([params[k] for k in ATTRIBUTE_NAMES], axis=1).astype(np.uint8),
        factors=np.stack([params[k] for k in FACTOR_NAMES], axis=1).astype(np.float32),
    )


def _default_cache_dir() -> Path:
    from explorer.datasets.common import user_cache_dir

    return user_cache_dir()


def load_cached(n: int, seed: int = 0, size: int = 64,
                cache_dir: str | os.PathLike | None = None) -> SyntheticFaces:
    """`generate(n, seed, size)`, cached as an .npz keyed by (n, seed, size, RENDERER_VERSION).

    As with `generate`, face i depends only on (seed, i), so load_cached(n) is a prefix of
    load_cached(m) for n <= m. The cache directory defaults to $LATENT_LAB_CACHE, else
    ~/.cache/latent-lab. The file is written to a temp file and os.replace'd, so concurrent
    readers see either no file or a whole one; an unreadable or mis-shaped file is regenerated
    and overwritten.
    """
    directory = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    path = directory / f"synthetic_faces_n{n}_seed{seed}_size{size}_v{RENDERER_VERSION}.npz"
    try:
        with np.load(path) as f:
            data = SyntheticFaces(f["images"], f["attributes"], f["factors"])
        if (data.images.shape == (n, size, size, 3) and data.images.dtype == np.uint8
                and data.attributes.shape == (n, len(ATTRIBUTE_NAMES))
                and data.factors.shape == (n, len(FACTOR_NAMES))):
            return data
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # missing or corrupt: regenerate below

    data = generate(n, seed, size)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # Compressed: ~3x smaller (30k faces: ~110 MB instead of 370 MB) and still ~10x faster
            # to load than to render.
            np.savez_compressed(f, images=data.images, attributes=data.attributes, factors=data.factors)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return data


# ---------------------------------------------------------------------------------------------
# The dataset reader (explorer.datasets.load_dataset's "synthetic-faces[:N]")
# ---------------------------------------------------------------------------------------------

DEFAULT_COUNT = 30_000
# Held-out splits are independent draws: a different seed, never overlapping the training faces.
_SPLIT_SEEDS = {"train": 0, "all": 0, "test": 1, "val": 2}
VERSION = RENDERER_VERSION  # the decoded-data cache's key
_PARAMETER_BYTES = 200  # per face: ~45 sampled parameters (float32 / int8 / bool) while rendering


def _count(request) -> int:
    """Faces to render, checked against the memory available before anything is drawn."""
    from explorer.datasets.common import check_fits_memory, check_split

    check_split("synthetic-faces", request.split, tuple(_SPLIT_SEEDS))
    n = request.spec.count or DEFAULT_COUNT
    if request.max_images is not None:
        n = min(n, request.max_images)  # face i depends only on (seed, i): the first n are a prefix
    per_face = 3 * request.image_size**2 + len(ATTRIBUTE_NAMES) + 4 * len(FACTOR_NAMES) + _PARAMETER_BYTES
    check_fits_memory(n * per_face, f"synthetic-faces:{n} rendered at {request.image_size} px",
                      "ask for fewer faces (synthetic-faces:N) or a smaller --image-size")
    return n


def check_size(request) -> None:
    """DatasetError when the faces would not fit in memory (before anything is drawn)."""
    _count(request)


def inputs(request) -> tuple[list, dict]:
    """No files: the faces follow from (count, seed, size, renderer version) alone."""
    return [], {"count": _count(request), "seed": _SPLIT_SEEDS[request.split]}


def read(request, progress: bool = False, allocate=None):
    """ImageDataset of rendered faces with their attributes and factors.

    With `allocate` given, the decoded-data cache is writing the result, so the faces are rendered
    without load_cached's own .npz (which would keep a second, compressed copy).
    """
    import torch

    from explorer.datasets.common import ImageDataset, convert_channels

    n, seed = _count(request), _SPLIT_SEEDS[request.split]
    faces = generate(n, seed, request.image_size) if allocate else load_cached(n, seed=seed, size=request.image_size)
    # (N, S, S, 3) HWC -> (N, 3, S, S), contiguous like every reader's output
    images = torch.from_numpy(np.asarray(faces.images)).permute(0, 3, 1, 2).contiguous()
    return ImageDataset(
        images=convert_channels(images, request.channels),
        spec=request.text,
        attribute_names=list(ATTRIBUTE_NAMES),
        attributes=torch.from_numpy(np.asarray(faces.attributes, dtype=np.uint8)),
        factor_names=list(FACTOR_NAMES),
        factors=torch.from_numpy(np.asarray(faces.factors, dtype=np.float32)),
    )
