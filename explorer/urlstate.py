"""The explorer's shareable state as URL query parameters (for Streamlit's `st.query_params`).

    ?seed=42&d=attr:Smiling:-2,sefa:0:1.5

`seed` names the latent (`z_from_seed`), `d` lists the non-zero direction offsets as name:value
in latent units, sorted by name so one state has one URL. The value follows the *last* colon, so
direction names keep their own colons ("sefa:0", see `explorer.directions`); any "," or "%" in a
name is percent-encoded (`quote`) so it cannot break the list. Links are typed, truncated and
edited by people, so decoding never raises: anything unusable falls back to a default and
yields a sentence for the UI to show.
"""
from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from urllib.parse import quote, unquote

from explorer.latent import MAX_SEED, validate_seed

SEED_PARAM = "seed"
OFFSETS_PARAM = "d"
MAX_OFFSET = 10.0  # latent units; the explorer's sliders stay well inside this
MAX_DIRECTIONS = 64
MAX_PARAM_CHARS = 4096  # a longer `d` is not from this app; refuse to parse it
_NAME_SAFE = "-_./~:"  # left readable in names besides letters and digits
_SEED_TEXT = re.compile(r"[0-9]{1,10}")  # MAX_SEED has 10 digits; no sign, no decimal point


def encode_state(seed: int, offsets: Mapping[str, float]) -> dict[str, str]:
    """{"seed": "42", "d": "attr:Smiling:-2,sefa:0:1.5"}; zero offsets are left out, as is an empty "d".

    Strict (ValueError) where `decode_state` would complain, so every encoded link decodes
    without errors. Values keep 6 significant digits.
    """
    params = {SEED_PARAM: str(validate_seed(seed))}
    entries = []
    for name, value in sorted(offsets.items()):
        if not isinstance(name, str) or not name:
            raise ValueError(f"direction names must be non-empty strings, got {name!r}")
        value = float(value)
        if not (math.isfinite(value) and abs(value) <= MAX_OFFSET):
            raise ValueError(f"offset for direction {name!r} must be a finite number within +-{MAX_OFFSET:g}, got {value!r}")
        if value != 0:
            entries.append(f"{quote(name, safe=_NAME_SAFE)}:{value:.6g}")
    if len(entries) > MAX_DIRECTIONS:
        raise ValueError(f"at most {MAX_DIRECTIONS} non-zero directions fit in a link, got {len(entries)}")
    if entries:
        params[OFFSETS_PARAM] = ",".join(entries)
        if len(params[OFFSETS_PARAM]) > MAX_PARAM_CHARS:
            raise ValueError(f"the direction list is {len(params[OFFSETS_PARAM])} characters long; links hold at most {MAX_PARAM_CHARS}")
    return params


def _last_value(params: Mapping, key: str) -> str | None:
    """A parameter's value; for a repeated one (a list), the last, as `st.query_params[key]` returns."""
    value = params.get(key)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value is None else str(value)


def _show(text: str, limit: int = 40) -> str:
    """A user-supplied fragment, quoted and shortened, for an error message."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def decode_state(
    params: Mapping[str, str | list[str]],
    default_seed: int = 0,
    known_directions: Collection[str] | None = None,
) -> tuple[int, dict[str, float], list[str]]:
    """(seed, offsets, errors) from query parameters; never raises.

    Bad seeds give `default_seed`; unparseable or NaN entries are dropped; infinite or larger
    than MAX_OFFSET values are clipped to +-MAX_OFFSET; with `known_directions`, names the
    current checkpoint lacks are dropped. Each such repair adds one human-readable error.
    Other parameters (another page's) are ignored.
    """
    errors: list[str] = []
    seed = default_seed
    raw_seed = _last_value(params, SEED_PARAM)
    if raw_seed is not None:
        text = raw_seed.strip()
        if _SEED_TEXT.fullmatch(text) and int(text) <= MAX_SEED:
            seed = int(text)
        else:
            errors.append(f"the link's seed {_show(raw_seed)} is not a whole number from 0 to {MAX_SEED}; showing seed {default_seed}")

    offsets: dict[str, float] = {}
    raw_offsets = _last_value(params, OFFSETS_PARAM)
    if raw_offsets is None or not raw_offsets.strip():
        return seed, offsets, errors
    if len(raw_offsets) > MAX_PARAM_CHARS:
        errors.append(f"the link's direction list is {len(raw_offsets)} characters long (at most {MAX_PARAM_CHARS}); all offsets were reset")
        return seed, offsets, errors
    entries = [entry for entry in raw_offsets.split(",") if entry.strip()]
    if len(entries) > MAX_DIRECTIONS:
        errors.append(f"the link sets {len(entries)} directions; only the first {MAX_DIRECTIONS} were used")
        entries = entries[:MAX_DIRECTIONS]
    for entry in entries:
        quoted_name, sep, value_text = entry.rpartition(":")
        name = unquote(quoted_name.strip())
        if not sep or not name:
            errors.append(f"the link's direction entry {_show(entry)} is not of the form name:value; it was ignored")
            continue
        try:
            value = float(value_text)
        except ValueError:
            errors.append(f"direction {_show(name)}: {_show(value_text)} is not a number; it was ignored")
            continue
        if math.isnan(value):
            errors.append(f"direction {_show(name)}: NaN is not an offset; it was ignored")
            continue
        if abs(value) > MAX_OFFSET:
            clipped = math.copysign(MAX_OFFSET, value)
            errors.append(f"direction {_show(name)}: {_show(value_text.strip())} is outside +-{MAX_OFFSET:g}; using {clipped:g}")
            value = clipped
        if known_directions is not None and name not in known_directions:
            errors.append(f"this checkpoint has no direction {_show(name)}; its offset was ignored")
            continue
        if name in offsets:
            errors.append(f"direction {_show(name)} appears more than once in the link; the last value was used")
        offsets[name] = value
    return seed, offsets, errors


# ----------------------------------------------------------------------------------------------- inverted latents
# An inverted picture has no seed: its link holds the z itself as a token (`explorer.ztoken`), ?z=...&d=...

Z_PARAM = "z"


def encode_latent_state(z, offsets: Mapping[str, float]) -> dict[str, str]:
    """{"z": token, "d": ...} for the Invert & edit page; strict (ValueError) like `encode_state`."""
    from explorer.ztoken import z_to_token

    params = encode_state(0, offsets)
    del params[SEED_PARAM]
    return {Z_PARAM: z_to_token(z), **params}


def decode_latent_state(
    params: Mapping[str, str | list[str]], z_dim: int, known_directions: Collection[str] | None = None
) -> tuple[object | None, dict[str, float], list[str]]:
    """(z (z_dim,) float32 or None, offsets, errors) from query parameters; never raises.

    No `z` parameter gives None without an error; a damaged or foreign token gives None and says why.
    """
    from explorer.ztoken import z_from_token

    _, offsets, errors = decode_state({k: v for k, v in params.items() if k != SEED_PARAM}, 0, known_directions)
    token = _last_value(params, Z_PARAM)
    if token is None:
        return None, offsets, errors
    try:
        return z_from_token(token.strip(), z_dim), offsets, errors
    except ValueError as exc:
        return None, offsets, [*errors, f"the link's latent {_show(token)} cannot be used: {exc}"]
