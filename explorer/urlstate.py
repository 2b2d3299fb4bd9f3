"""The explorer's shareable state as URL query parameters (for Streamlit's `st.query_params`).

    ?ckpt=synthetic-faces-64&seed=42&d=attr:Smiling:-2,sefa:0:1.5                  (Generate)
    ?ckpt=fashion-mnist-32&bins=sneaker:1:0,1,2;sandal:-1:3,4,5&jitter=0.25&noise=0    (Vector arithmetic)
    ...&inv=TOKEN,TOKEN;;TOKEN              (its inverted real exemplars, per bin, as z tokens)

`ckpt` names the checkpoint as the sidebar does (its name under the checkpoints folder, or a
typed path inside it). `seed` names the latent (`z_from_seed`), `d` lists the non-zero direction
offsets as name:value in latent units, sorted by name so one state has one URL. The value follows
the *last* colon, so direction names keep their own colons ("sefa:0", see `explorer.directions`);
any "," or "%" in a name is percent-encoded (`quote`) so it cannot break the list. `bins` lists
the arithmetic's bins as name:weight:seeds, ";" between bins, with ":" ";" "," "%" in names
percent-encoded; `jitter` and `noise` are the neighbourhood's noise scale and seed; `inv` holds
each bin's inverted real pictures as z tokens (`explorer.ztoken`, 271 characters each at z 100),
";" between bins in the order of `bins`, "," between tokens. Links are
typed, truncated and edited by people, so decoding never raises: anything unusable falls back to
a default and yields a sentence for the UI to show.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from urllib.parse import quote, unquote

from explorer.arithmetic import DEFAULT_JITTER, MAX_BIN_SEEDS, MAX_BINS, MAX_WEIGHT
from explorer.latent import parse_seed, parse_seed_list, validate_seed
from explorer.sliders import MAX_OFFSET

CHECKPOINT_PARAM = "ckpt"
SEED_PARAM = "seed"
OFFSETS_PARAM = "d"
BINS_PARAM = "bins"
JITTER_PARAM = "jitter"
NOISE_PARAM = "noise"
INVERTED_PARAM = "inv"
MAX_INVERTED_CHARS = 16384  # ~60 tokens at z 100; a longer URL risks a server's request-line limit
MAX_JITTER = 2.0  # latent units; the neighbourhood noise of both UIs
MAX_CHECKPOINT_CHARS = 512
MAX_DIRECTIONS = 64
MAX_PARAM_CHARS = 4096  # a longer `d` is not from this app; refuse to parse it
_NAME_SAFE = "-_./~:"  # left readable in names besides letters and digits


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


def _seed_param(params: Mapping, key: str, name: str, default: int, fallback: str, errors: list[str]) -> int:
    """The seed in parameter `key` (`parse_seed`), or `default` with an error ending in `fallback`."""
    raw = _last_value(params, key)
    if raw is None:
        return default
    try:
        return parse_seed(raw, name)
    except ValueError as exc:
        errors.append(f"{exc}; {fallback}")
        return default


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
    seed = _seed_param(params, SEED_PARAM, "the link's seed", default_seed, f"showing seed {default_seed}", errors)

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


# ----------------------------------------------------------------------------------------------- checkpoint


def encode_checkpoint(label: str) -> dict[str, str]:
    return {CHECKPOINT_PARAM: label}


def decode_checkpoint(params: Mapping) -> str | None:
    """The link's checkpoint name or path as written (the UI resolves it), or None when there is none or it is absurd."""
    value = _last_value(params, CHECKPOINT_PARAM)
    if value is None or not value.strip() or len(value) > MAX_CHECKPOINT_CHARS or "\x00" in value:
        return None
    return value.strip()


# ----------------------------------------------------------------------------------------------- arithmetic


Bin = tuple[str, float, list[int]]  # (name, weight, seeds)


def encode_arithmetic(bins: list[Bin], jitter: float, noise_seed: int) -> dict[str, str]:
    """{"bins": "smiling woman:1:0,1,2;...", "jitter": "0.25", "noise": "0"}; strict like `encode_state`."""
    if not 1 <= len(bins) <= MAX_BINS:
        raise ValueError(f"a link holds 1 to {MAX_BINS} bins, got {len(bins)}")
    entries = []
    for name, weight, seeds in bins:
        weight = float(weight)
        if not (math.isfinite(weight) and abs(weight) <= MAX_WEIGHT):
            raise ValueError(f"bin {name!r}: weight must be a finite number within +-{MAX_WEIGHT:g}, got {weight!r}")
        if len(seeds) > MAX_BIN_SEEDS:
            raise ValueError(f"bin {name!r} has {len(seeds)} seeds; at most {MAX_BIN_SEEDS} fit in a link")
        entries.append(f"{quote(name, safe=' -_./~')}:{weight:g}:{','.join(str(validate_seed(s)) for s in seeds)}")
    jitter = float(jitter)
    if not (math.isfinite(jitter) and 0 <= jitter <= MAX_JITTER):
        raise ValueError(f"jitter must be a finite number from 0 to {MAX_JITTER:g}, got {jitter!r}")
    return {BINS_PARAM: ";".join(entries), JITTER_PARAM: f"{jitter:g}", NOISE_PARAM: str(validate_seed(noise_seed))}


def decode_arithmetic(params: Mapping) -> tuple[list[Bin] | None, float, int, list[str]]:
    """(bins or None when the link has none, jitter, noise seed, errors); never raises.

    Bins beyond MAX_BINS, seeds beyond MAX_BIN_SEEDS per bin and unusable seeds are dropped;
    unusable weights become 1 and a weight beyond +-MAX_WEIGHT is clipped; a bad jitter or noise
    seed falls back to its default. Each repair adds one error.
    """
    errors: list[str] = []
    jitter = DEFAULT_JITTER
    raw_jitter = _last_value(params, JITTER_PARAM)
    if raw_jitter is not None:
        try:
            value = float(raw_jitter)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and 0 <= value <= MAX_JITTER:
            jitter = value
        else:
            errors.append(f"the link's jitter {_show(raw_jitter)} is not a number from 0 to {MAX_JITTER:g}; using {DEFAULT_JITTER:g}")
    noise = _seed_param(params, NOISE_PARAM, "the link's noise seed", 0, "using 0", errors)
    raw_bins = _last_value(params, BINS_PARAM)
    if raw_bins is None or not raw_bins.strip():
        return None, jitter, noise, errors
    if len(raw_bins) > MAX_PARAM_CHARS:
        errors.append(f"the link's bin list is {len(raw_bins)} characters long (at most {MAX_PARAM_CHARS}); it was ignored")
        return None, jitter, noise, errors
    entries = raw_bins.split(";")
    if len(entries) > MAX_BINS:
        errors.append(f"the link has {len(entries)} bins; only the first {MAX_BINS} were used")
        entries = entries[:MAX_BINS]
    bins: list[Bin] = []
    for i, entry in enumerate(entries):
        parts = entry.split(":")
        if len(parts) != 3:
            errors.append(f"the link's bin {_show(entry)} is not of the form name:weight:seeds; it is left empty")
            parts = [f"bin {i + 1}", "1", ""]
        name = unquote(parts[0]).strip() or f"bin {i + 1}"
        try:
            weight = float(parts[1])
        except ValueError:
            weight = math.nan
        if math.isnan(weight):
            errors.append(f"bin {_show(name)}: weight {_show(parts[1])} is not a number; using 1")
            weight = 1.0
        elif abs(weight) > MAX_WEIGHT:
            errors.append(f"bin {_show(name)}: weight {_show(parts[1])} is outside +-{MAX_WEIGHT:g}; using {math.copysign(MAX_WEIGHT, weight):g}")
            weight = math.copysign(MAX_WEIGHT, weight)
        seeds, seed_errors = parse_seed_list(parts[2], f"bin {_show(name)}", MAX_BIN_SEEDS)
        errors += seed_errors
        bins.append((name, weight, list(dict.fromkeys(seeds))))
    return bins, jitter, noise, errors


def encode_inverted(tokens_per_bin: list[list[str]]) -> tuple[dict[str, str], int]:
    """({"inv": "T,T;;T"}, or {} when no bin holds one; how many tokens were left out to stay within MAX_INVERTED_CHARS).

    Tokens are taken bin by bin, first ones first, while they fit.
    """
    used, left_out, kept = len(tokens_per_bin), 0, []
    for tokens in tokens_per_bin:
        fitting = []
        for token in tokens:
            if used + len(token) + 1 <= MAX_INVERTED_CHARS:
                fitting.append(token)
                used += len(token) + 1
            else:
                left_out += 1
        kept.append(",".join(fitting))
    return ({INVERTED_PARAM: ";".join(kept)} if any(kept) else {}), left_out


def decode_inverted(params: Mapping, names: list[str], z_dim: int) -> tuple[list[list[str]], list[str]]:
    """(tokens per bin, one list per name in `names`; errors); never raises. Unusable tokens are dropped, each with a sentence."""
    from explorer.ztoken import parse_z_tokens

    per_bin: list[list[str]] = [[] for _ in names]
    raw = _last_value(params, INVERTED_PARAM)
    if raw is None or not raw.strip(";, "):
        return per_bin, []
    if len(raw) > MAX_INVERTED_CHARS:
        return per_bin, [f"the link's inverted pictures take {len(raw)} characters (at most {MAX_INVERTED_CHARS}); they were ignored"]
    entries, errors = raw.split(";"), []
    if len(entries) > len(names):
        errors.append(f"the link has inverted pictures for {len(entries)} bins but {len(names)} bins; the rest were ignored")
    for i, (name, entry) in enumerate(zip(names, entries)):
        per_bin[i], problems = parse_z_tokens(entry, z_dim, f"bin {_show(name)}", MAX_BIN_SEEDS)
        errors += problems
    return per_bin, errors


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
