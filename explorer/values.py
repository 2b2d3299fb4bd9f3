"""Values from untrusted JSON files and command lines, checked before anything is built from them.

One set of checks (type, finiteness, bounds, nesting) serves a checkpoint's meta.json
(explorer.checkpoint_meta) and a run's options and config.json (training.config). Every check
raises ValueError with a message that names the field; `brief` keeps any value in a message short
(a 300-digit number is shown as "1.23e299 (300 digits)", never in full).
"""
from __future__ import annotations

import json
import math
import os
import re
from decimal import Decimal
from typing import Any

from explorer.fsio import read_regular_bytes

_SHOWN_CHARS = 40


def brief(value: Any) -> str:
    """A short rendering of any value for an error message."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) < 10**15:
            return str(value)
        if value.bit_length() > 14_000:  # str() refuses ints of more than 4300 digits (sys.get_int_max_str_digits)
            return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
        digits = len(str(abs(value)))
        return f"{format(Decimal(value), '.2e').replace('e+', 'e')} ({digits} digits)"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        text = repr(value)
        return text if len(text) <= 12 else f"{value:.4g}"
    if isinstance(value, str):
        if len(value) <= _SHOWN_CHARS:
            return repr(value)
        return repr(value[:_SHOWN_CHARS]) + f"... ({len(value):,} characters)"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,} items"
    if isinstance(value, dict):
        return f"an object with {len(value):,} keys"
    return type(value).__name__


# ----------------------------------------------------------------------------------------------- checks


def whole(name: str, value: Any, lo: int, hi: int) -> int:
    """An int (not a bool, not 3.0) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {brief(value)}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {brief(lo)} and {brief(hi)}, got {brief(value)}")
    return value


def number(name: str, value: Any, lo: float = -math.inf, hi: float = math.inf, *, open_lo: bool = False, open_hi: bool = False) -> float:
    """A finite int or float in the interval lo..hi (each end closed unless open_lo/open_hi)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {brief(value)}")
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        raise ValueError(f"{name} must be a finite number, got {brief(value)}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {brief(value)}")
    if value < lo or value > hi or (open_lo and value == lo) or (open_hi and value == hi):
        interval = f"{'(' if open_lo else '['}{brief(lo)}, {brief(hi)}{')' if open_hi else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {brief(value)}")
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {brief(value)}")
    return value


def text(name: str, value: Any, max_chars: int = 4096) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {brief(value)}")
    if len(value) > max_chars:
        raise ValueError(f"{name} is {len(value):,} characters long, at most {max_chars:,} are accepted")
    if "\x00" in value:
        raise ValueError(f"{name} contains a NUL character")
    return value


def choice(name: str, value: Any, options: tuple) -> Any:
    """One of `options`, of the same type too (64.0 is not the image size 64, True is not 1)."""
    if not any(type(value) is type(option) and value == option for option in options):
        raise ValueError(f"{name} must be one of {', '.join(map(str, options))}, got {brief(value)}")
    return value


def mapping(name: str, value: Any, max_keys: int = 10_000) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object, got {brief(value)}")
    if len(value) > max_keys:
        raise ValueError(f"{name} has {len(value):,} keys, at most {max_keys:,} are accepted")
    return value


def text_list(name: str, value: Any, max_items: int = 100_000, max_chars: int = 1024) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings, got {brief(value)}")
    if len(value) > max_items:
        raise ValueError(f"{name} has {len(value):,} items, at most {max_items:,} are accepted")
    for i, item in enumerate(value):
        text(f"{name}[{i}]", item, max_chars)
    return value


def depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, [] and {} are 1), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def read_json_file(path: str | os.PathLike, max_bytes: int, max_depth: int) -> Any:
    """Parse a regular UTF-8 JSON file of bounded size and nesting; ValueError (with the path) otherwise.

    UnsafeFileError (a ValueError) for a FIFO, device, /proc file or oversized file; OSError on I/O.
    """
    data = read_regular_bytes(path, max_bytes)
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply to be one of latent-lab's JSON files") from None
    except ValueError as exc:  # JSONDecodeError (a position, no content), or an integer of more than 4300 digits
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if depth(value) > max_depth:
        raise ValueError(f"{path} is nested {depth(value)} levels deep, at most {max_depth} are accepted")
    return value


# ----------------------------------------------------------------------------------------------- parsing


_WHOLE = re.compile(r"[+-]?\d+")
_SCIENTIFIC = re.compile(r"[+-]?\d+(\.\d+)?[eE]\+?(?P<exponent>\d+)")


def parse_whole(text_value: str) -> int:
    """A whole number typed by a user: "42", or "1e6" / "2.5e3" when the value is whole.

    ValueError (the text shortened) for anything else; the caller checks the bounds.
    """
    stripped = text_value.strip()
    scientific = _SCIENTIFIC.fullmatch(stripped)
    if _WHOLE.fullmatch(stripped):
        if len(stripped) > 5000:
            raise ValueError(f"{brief(stripped)} is far too large")
        return int(stripped)
    if scientific:
        if len(stripped) > 64 or len(scientific["exponent"].lstrip("0")) > 4:  # 10**9999 at most
            raise ValueError(f"{brief(stripped)} is far too large")
        exact = Decimal(stripped)
        if exact == exact.to_integral_value():
            return int(exact)
    raise ValueError(f"{brief(stripped)} is not a whole number")
