"""Checks of numbers that arrive from a UI or an API call, with the messages both front ends show.

Widget values arrive as floats, None, or anything a hand-written API call sends (JSON allows
NaN/Infinity in Python's parser), so each is checked before it reaches a model. ValueError
messages start with the field's name, e.g. "jitter must be between 0 and 2, got 5".
Seeds have their own parser (`explorer.latent.parse_seed`).
"""
from __future__ import annotations

import math


def number_in(value, name: str, low: float, high: float) -> float:
    """`value` as a finite float in [low, high], or ValueError naming `name`."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not low <= x <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {x:g}")
    return x


def whole_in(value, name: str, low: int, high: int) -> int:
    """`value` as an int in [low, high] (a float must be a whole number), or ValueError naming `name`."""
    x = number_in(value, name, low, high)
    if not x.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(x)
