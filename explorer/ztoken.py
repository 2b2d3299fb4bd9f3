"""A latent z as a short URL-safe token, so an inverted image (which has no seed) can be shared in a link.

    token = base64url(no padding) of  [version: uint8][z_dim: uint16 LE][z: z_dim x float16 LE]

float16 keeps ~3 significant digits (|error| <= 2e-3 for |z_i| < 4), invisible in G's output;
271 characters for z_dim 100. Decoding checks the length and alphabet before decoding anything,
then the version, the count and finiteness, so a typed or truncated link gives a ValueError with
the reason, never a wrong image.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
import struct

import numpy as np
import torch

Z_TOKEN_VERSION = 1
_TOKEN_HEADER = struct.Struct("<BH")  # version byte, z_dim as uint16
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]*")


def _token_length(z_dim: int) -> int:
    return math.ceil((_TOKEN_HEADER.size + 2 * z_dim) * 4 / 3)  # unpadded base64 of header + float16 values


def z_to_token(z: np.ndarray | torch.Tensor) -> str:
    """A z (z_dim,) as a URL-safe token (the module docstring gives the layout); ValueError for non-finite values."""
    values = np.asarray(z, dtype=np.float32).reshape(-1)
    if not 1 <= len(values) <= 0xFFFF or not np.isfinite(values).all() or np.abs(values).max() > 65504:
        raise ValueError("z must be 1 to 65535 finite values within float16's range")
    raw = _TOKEN_HEADER.pack(Z_TOKEN_VERSION, len(values)) + values.astype("<f2").tobytes()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def z_from_token(token: str, z_dim: int) -> np.ndarray:
    """The float32 z (z_dim,) of a `z_to_token` token; ValueError for any other string (checked before decoding)."""
    if not isinstance(token, str) or len(token) != _token_length(z_dim) or not _TOKEN_CHARS.fullmatch(token):
        raise ValueError(f"not a z token for z_dim {z_dim} (expected {_token_length(z_dim)} URL-safe base64 characters)")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a z token: {exc}") from exc
    version, length = _TOKEN_HEADER.unpack_from(raw)
    if version != Z_TOKEN_VERSION:
        raise ValueError(f"z token version {version} is not {Z_TOKEN_VERSION}")
    if length != z_dim or len(raw) != _TOKEN_HEADER.size + 2 * z_dim:
        raise ValueError(f"z token holds {length} values, this model's z has {z_dim}")
    z = np.frombuffer(raw, dtype="<f2", offset=_TOKEN_HEADER.size).astype(np.float32)
    if not np.isfinite(z).all():
        raise ValueError("z token holds NaN or infinite values")
    return z


def parse_z_tokens(text: str | None, z_dim: int, what: str, limit: int) -> tuple[list[str], list[str]]:
    """Distinct valid tokens from a text box or a link, split on whitespace, "," or ";": (tokens, problems).

    A token that does not decode is left out with a sentence naming `what` (e.g. "bin 'A'"); more than
    `limit` distinct tokens keep the first `limit`, with a sentence.
    """
    tokens, problems = [], []
    for raw in re.split(r"[\s,;]+", (text or "").strip()):
        if not raw or raw in tokens:
            continue
        try:
            z_from_token(raw, z_dim)
        except ValueError as exc:
            shown = raw if len(raw) <= 24 else raw[:24] + "..."
            problems.append(f"{what}: {shown!r} cannot be used: {exc}")
            continue
        tokens.append(raw)
    if len(tokens) > limit:
        problems.append(f"{what} lists {len(tokens)} inverted pictures; only the first {limit} were used")
        tokens = tokens[:limit]
    return tokens, problems
