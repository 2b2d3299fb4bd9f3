"""Latent vectors: addressed by seed, interpolated, walked, and compared with the prior's shell.

Every latent the explorer shows is `z_from_seed(seed, z_dim)` (the StyleGAN gen_images.py
convention), so an image, a shared link or a test names its latent with one integer. All
functions here are pure tensor maths on CPU float32 vectors; nothing touches a model.

Interpolation follows Radford et al. (2015, Sec. 6.1 "walking in the latent space") with
spherical interpolation as in White (2016), "Sampling Generative Networks": for z ~ N(0, I) in
high dimension almost all mass lies on a thin shell of radius ~sqrt(z_dim), and a straight
line between two shell points dips inside it (the midpoint of two independent samples has
norm ~sqrt(z_dim / 2)), where the generator saw few training latents.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

MAX_SEED = 2**32 - 1  # numpy's seed range, so seeds shared with other GAN tools stay valid
MAX_SEED_TEXT = 4096  # characters in a typed seed list; 64 seeds of 10 digits need under 800
MAX_KEYPOINTS = 16  # keypoints of a walk through seeds, in both UIs
PAPER_WALK = "0, 1, 2, 3, 4, 5, 6, 7, 8"  # the paper's figures walk through 9 points
# |cos(angle)| above this counts as (anti)parallel: the angle is within ~1.8 degrees of 0 or pi,
# where sin(angle) in slerp's denominator is < 0.032 and float32 round-off starts to dominate.
PARALLEL_COS = 0.9995
WALK_MODES = ("lerp", "slerp")


def validate_seed(seed) -> int:
    """`seed` as a Python int, or ValueError: an integer (not a bool) in [0, MAX_SEED].

    A wrong type is a ValueError too, not a TypeError: callers (UI widgets, arithmetic bins)
    catch one exception type for every unusable seed and show its message.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(  # noqa: TRY004 (see docstring)
            f"seed must be a whole number between 0 and {MAX_SEED}, got {seed!r} ({type(seed).__name__})"
        )
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {seed}")
    return int(seed)


def parse_seed(value, name: str = "seed") -> int:
    """The one seed parser of both UIs and the URL state: `value` as a seed, or ValueError naming `name`.

    Takes what widgets and links carry: an int, a float that is a whole number (a number widget),
    or text of ASCII digits (surrounding spaces allowed). Text is length-checked before int()
    so a huge number is never parsed, and "²", "1e3", "0x10" or "-1" are refused: a seed is a
    whole number from 0 to MAX_SEED written as plain digits.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_SEED)) and int(text) <= MAX_SEED):
            raise ValueError(f"{name}: {_quoted(value)} is not a whole number from 0 to {MAX_SEED}")
        return int(text)
    try:
        return validate_seed(value)
    except ValueError as exc:
        raise ValueError(str(exc) if name == "seed" else f"{name}: {exc}") from None


def parse_seed_list(text, name: str = "seeds", limit: int | None = None) -> tuple[list[int], list[str]]:
    """Seeds from text such as "12, 40 7" (commas, semicolons or spaces between them), and one message per problem.

    Parts that are not seeds are left out, each with a message; more than `limit` seeds keeps the
    first `limit`, with a message. Text longer than MAX_SEED_TEXT characters is refused outright
    (no list of seeds that fits any limit here is that long), so its parts are never split.
    A UI that cannot go on with a partial list shows the first message as its error.
    """
    if text is None:
        return [], []
    if not isinstance(text, str):
        return [], [f"{name} must be text listing seeds, e.g. '12, 40, 7'"]
    if len(text) > MAX_SEED_TEXT:
        return [], [f"{name} is {len(text):,} characters long; at most {MAX_SEED_TEXT:,} are read"]
    seeds, errors = [], []
    for part in [p for p in re.split(r"[\s,;]+", text.strip()) if p]:
        try:
            seeds.append(parse_seed(part, name))
        except ValueError as exc:
            errors.append(str(exc))
    if limit is not None and len(seeds) > limit:
        errors.append(f"{name} lists {len(seeds)} seeds; at most {limit} are allowed, so the first {limit} are used")
        seeds = seeds[:limit]
    return seeds, errors


def _quoted(text: str, limit: int = 40) -> str:
    """A user-supplied fragment, quoted and shortened, for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def keypoint_seeds(text) -> tuple[list[int], list[str]]:
    """The keypoints of a walk through seeds, from text: (at most MAX_KEYPOINTS seeds, one message per problem).

    Fewer than two usable seeds adds the message that a walk needs two: there is then no walk.
    """
    seeds, errors = parse_seed_list(text, "keypoint seeds", MAX_KEYPOINTS)
    if len(seeds) < 2:
        errors.append(f"a walk needs at least two keypoint seeds, e.g. '{PAPER_WALK}'")
    return seeds, errors


def _validate_z_dim(z_dim) -> int:
    if isinstance(z_dim, bool) or not isinstance(z_dim, (int, np.integer)) or z_dim < 1:
        raise ValueError(f"z_dim must be a positive integer, got {z_dim!r}")
    return int(z_dim)


def z_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """The latent named by `seed`: (z_dim,) float32 drawn from N(0, I) by a private torch.Generator.

    A private generator leaves torch's global RNG alone. The same seed gives the same z on any
    machine for a given torch version (torch does not promise identical streams across releases).
    """
    generator = torch.Generator().manual_seed(validate_seed(seed))
    return torch.randn(_validate_z_dim(z_dim), generator=generator, dtype=torch.float32)


def z_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """(N, z_dim) float32: row i is z_from_seed(seeds[i], z_dim); (0, z_dim) for no seeds."""
    z_dim = _validate_z_dim(z_dim)
    if len(seeds) == 0:
        return torch.empty(0, z_dim)
    return torch.stack([z_from_seed(seed, z_dim) for seed in seeds])


def _broadcast_t(t, vector_ndim: int) -> torch.Tensor:
    """t as a tensor that broadcasts against (..., z_dim) vectors of `vector_ndim` dims.

    A float stays 0-d (result keeps the vectors' shape); a 1-D sequence of T values becomes
    (T, 1, ..., 1) so the result gains a leading T axis.
    """
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 0:
        return t
    if t.dim() != 1:
        raise ValueError(f"t must be a float or a 1-D sequence of values, got shape {tuple(t.shape)}")
    return t.reshape(-1, *([1] * vector_ndim))


def lerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """(1 - t) a + t b. a, b: (..., z_dim); t: float -> (..., z_dim), or T values -> (T, ..., z_dim)."""
    a, b = torch.broadcast_tensors(a.float(), b.float())
    return a + _broadcast_t(t, a.dim()) * (b - a)


def slerp(a: torch.Tensor, b: torch.Tensor, t) -> torch.Tensor:
    """Spherical interpolation along the great circle from a to b; shapes as in `lerp`.

    sin((1 - t) w) / sin(w) * a + sin(t w) / sin(w) * b, with w the angle between a and b. For
    equal norms every point keeps that norm (stays on the prior's shell); t = 0 and 1 give a and b.

    Degenerate pairs, where sin(w) -> 0 and the formula is 0/0:
      * parallel (cos w > PARALLEL_COS, w ~ 0) or a zero vector: plain `lerp`, which is then
        already (nearly) on the arc;
      * antiparallel (cos w < -PARALLEL_COS, w ~ pi): every half great circle from a to b is a
        shortest path, and `lerp` would pass through the origin (norm 0, far inside the shell).
        We take the shell path through m, a vector perpendicular to a with the mean of the two
        norms, chosen deterministically (a's least-used coordinate axis made orthogonal to a):
        slerp(a, m, 2t) for t <= 0.5, slerp(m, b, 2t - 1) after. Both halves are ~90 degree
        arcs, so the formula is well conditioned there.
    """
    a, b = torch.broadcast_tensors(a.float(), b.float())
    t = _broadcast_t(t, a.dim())
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = _cos(a, b)
    out = _great_circle(a, b, t, cos)
    parallel = (cos > PARALLEL_COS) | (norm_a * norm_b == 0)
    out = torch.where(parallel, a + t * (b - a), out)
    antiparallel = cos < -PARALLEL_COS
    if antiparallel.any():
        m = _perpendicular(a) * (norm_a + norm_b) / 2
        first = _great_circle(a, m, 2 * t, _cos(a, m))
        second = _great_circle(m, b, 2 * t - 1, _cos(m, b))
        out = torch.where(antiparallel, torch.where(t <= 0.5, first, second), out)
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of the angle between a and b along the last dim, keepdim; 0 for zero vectors."""
    denom = (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)).clamp_min(1e-12)
    return ((a * b).sum(-1, keepdim=True) / denom).clamp(-1.0, 1.0)


def _great_circle(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """The slerp formula. sin(w) is floored so the (discarded) parallel rows give no inf/NaN."""
    omega = torch.acos(cos)
    sin_omega = torch.sin(omega).clamp_min(1e-6)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin_omega


def _perpendicular(a: torch.Tensor) -> torch.Tensor:
    """A unit vector orthogonal to each row of a (..., z_dim): Gram-Schmidt on a's smallest-|.| axis.

    The smallest coordinate's axis is the one least aligned with a (|cos| <= 1/sqrt(z_dim)), so
    the subtraction never cancels badly.
    """
    axis = torch.nn.functional.one_hot(a.abs().argmin(dim=-1), a.shape[-1]).to(a.dtype)
    unit = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    p = axis - (axis * unit).sum(-1, keepdim=True) * unit
    return p / p.norm(dim=-1, keepdim=True)


def walk(keypoints: torch.Tensor, frames_per_segment: int, mode: str = "slerp", loop: bool = False) -> torch.Tensor:
    """A path through K keypoints (K, z_dim) -> (F, z_dim) frames, like the paper's 9-point walks (Fig. 4).

    Each segment contributes `frames_per_segment` frames at t = 0, 1/n, ..., (n-1)/n, so a
    keypoint appears exactly once. An open walk ends on the last keypoint: F = (K - 1) * n + 1.
    A looped walk returns towards the first keypoint and stops one step short of it, so a GIF
    repeating the frames has no stutter: F = K * n.
    """
    if mode not in WALK_MODES:
        raise ValueError(f"mode must be one of {WALK_MODES}, got {mode!r}")
    if keypoints.dim() != 2 or keypoints.shape[0] < 2:
        raise ValueError(f"keypoints must be (K, z_dim) with K >= 2, got shape {tuple(keypoints.shape)}")
    if isinstance(frames_per_segment, bool) or not isinstance(frames_per_segment, int) or frames_per_segment < 1:
        raise ValueError(f"frames_per_segment must be a positive integer, got {frames_per_segment!r}")
    keypoints = keypoints.float()
    starts = keypoints
    ends = keypoints.roll(-1, dims=0)  # ends[i] = keypoints[i + 1], ends[K - 1] = keypoints[0]
    if not loop:
        starts, ends = starts[:-1], ends[:-1]
    t = torch.arange(frames_per_segment, dtype=torch.float32) / frames_per_segment
    frames = (slerp if mode == "slerp" else lerp)(starts, ends, t)  # (n, segments, z_dim)
    frames = frames.transpose(0, 1).reshape(-1, keypoints.shape[1])  # segment-major order
    return frames if loop else torch.cat([frames, keypoints[-1:]])


def direction_walk(z: torch.Tensor, direction: torch.Tensor, span: float, frames: int) -> torch.Tensor:
    """(frames, z_dim) evenly spaced from z - span * d to z + span * d, d = direction / |direction|.

    `span` is in latent units (the prior's per-coordinate std is 1). An odd `frames` puts z itself
    in the middle frame.
    """
    if z.dim() != 1 or direction.shape != z.shape:
        raise ValueError(f"z and direction must both be (z_dim,), got {tuple(z.shape)} and {tuple(direction.shape)}")
    if not (math.isfinite(span) and span >= 0):
        raise ValueError(f"span must be a finite number >= 0, got {span!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    norm = direction.float().norm()
    if not (torch.isfinite(norm) and norm > 0):
        raise ValueError("direction must be a finite, non-zero vector")
    steps = torch.linspace(-span, span, frames)
    return z.float() + steps[:, None] * (direction.float() / norm)


class NormStats(NamedTuple):
    mean: float  # E||z|| for z ~ N(0, I_z_dim): the radius of the shell where latents live
    std: float  # std of ||z||: the shell's thickness (-> 1/sqrt(2) as z_dim grows)


def latent_norm_stats(z_dim: int) -> NormStats:
    """Exact mean and std of ||z|| under the prior (||z|| follows a chi distribution with z_dim dof).

    mean = sqrt(2) * Gamma((k + 1) / 2) / Gamma(k / 2) (~ sqrt(k - 0.5)); std = sqrt(k - mean^2),
    since E||z||^2 = k. For k = 100: mean 9.975, std 0.706. Log-gammas keep large k finite (the
    std loses ~3 digits to cancellation at k = 10^6, plenty for a display).
    """
    k = _validate_z_dim(z_dim)
    mean = math.sqrt(2.0) * math.exp(math.lgamma((k + 1) / 2) - math.lgamma(k / 2))
    return NormStats(mean=mean, std=math.sqrt(max(k - mean * mean, 0.0)))


def apply_offsets(z: torch.Tensor, offsets: dict[str, float], vectors: Mapping[str, np.ndarray | torch.Tensor]) -> torch.Tensor:
    """z (z_dim,) + sum of offset * unit vector: the slider edit of both UIs. Names "z:i" move raw coordinate i."""
    out = z.clone().float()
    for name, value in offsets.items():
        if not value:
            continue
        if name.startswith("z:") and name[2:].isdigit():
            out[int(name[2:])] += float(value)
        else:
            v = torch.as_tensor(vectors[name], dtype=torch.float32)
            out += float(value) * v / v.norm()
    return out
