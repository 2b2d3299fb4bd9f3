"""Walk animations as GIF or MP4 bytes, ready for a download button or an <img>/<video> tag.

Frames come from `explorer.images.to_uint8`/`grid`: uint8 (F, H, W) grayscale or (F, H, W, C)
with C in {1, 3}. Both encoders get the same preparation: grayscale becomes RGB, and small frames
are enlarged by an integer nearest-neighbour factor, so 64 px samples stay crisp pixels (no
blur from the player's own scaling) and the H.264 encoder gets a size it handles well.
"""
from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np

AUTO_SIDE = 256  # scale=None enlarges until the shorter side reaches this many pixels
MAX_GIF_FPS = 50  # GIF delays are whole centiseconds, and browsers slow delays under 2 cs to 10 cs
MAX_MP4_FPS = 120


def _prepare(frames: np.ndarray, scale: int | None) -> np.ndarray:
    """uint8 (F, H, W[, C]) -> uint8 RGB (F, H * s, W * s, 3), padded to even H and W (H.264 4:2:0 needs them)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (use explorer.images.to_uint8), got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or 0 in frames.shape:
        raise ValueError(f"frames must be (F, H, W) or (F, H, W, 1 or 3) with F, H, W >= 1, got shape {frames.shape}")
    if scale is None:
        scale = max(1, math.ceil(AUTO_SIDE / min(frames.shape[1:3])))
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= 16:
        raise ValueError(f"scale must be a whole number from 1 to 16 (or None for automatic), got {scale!r}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    if scale > 1:
        frames = frames.repeat(scale, axis=1).repeat(scale, axis=2)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:  # repeat the last row/column rather than let the encoder resample the frame
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frames)


def _check_fps(fps: float, limit: int) -> None:
    if not (isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= limit):
        raise ValueError(f"fps must be a number above 0 and at most {limit}, got {fps!r}")


def frames_to_gif(frames: np.ndarray, fps: float = 12, scale: int | None = None) -> bytes:
    """An endlessly looping GIF of uint8 frames (F, H, W[, C]); `scale` as in `frames_to_mp4`."""
    _check_fps(fps, MAX_GIF_FPS)
    # Pillow writes each frame's delay in milliseconds (stored as centiseconds); loop=0 repeats forever.
    return iio.imwrite("<bytes>", _prepare(frames, scale), extension=".gif", duration=1000.0 / fps, loop=0)


def frames_to_mp4(frames: np.ndarray, fps: float = 24, scale: int | None = None) -> bytes:
    """An H.264 MP4 (yuv420p, plays in every browser) of uint8 frames (F, H, W[, C]).

    `scale`: integer nearest-neighbour enlargement; None picks the smallest factor that makes
    the shorter side >= AUTO_SIDE px (64 px frames -> x4 = 256 px; 128 px -> x2).
    """
    _check_fps(fps, MAX_MP4_FPS)
    return iio.imwrite(
        "<bytes>",
        _prepare(frames, scale),
        extension=".mp4",
        plugin="FFMPEG",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,  # sizes are already even; the default 16 would resize frames with a warning
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],  # index first, so a browser can start playing at once
    )
