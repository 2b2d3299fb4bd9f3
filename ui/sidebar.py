"""The sidebar's checkpoint picker and `page_setup`, where every page starts.

The picker lists the checkpoints folder (`explorer.registry`) and takes a typed path confined to
it. Its choice lives in kept state (`ui.state`), so it holds across pages, and in the URL (`ckpt`),
so a shared link opens the same checkpoint.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from explorer.checkpoint import Checkpoint, CheckpointError
from explorer.registry import CHECKPOINTS_ROOT, DEFAULT_CHECKPOINT, CheckpointInfo, list_checkpoints, resolve_user_path
from explorer.selection import ModelKey, model_key, run_dir_for
from explorer.urlstate import decode_checkpoint, encode_checkpoint
from ui import cache
from ui.navigation import through_app
from ui.state import is_new_page, kept, kept_value, note_page, set_kept, set_link

ROOT_ENV = "LATENT_LAB_CHECKPOINTS"  # tests (and deployments) point the app at another checkpoints folder
PICK = "ckpt_pick"
TYPED = "ckpt_typed"


@dataclass
class Active:
    """The checkpoint the sidebar picked, as the pages see it."""

    label: str  # its name under the checkpoints folder, or the typed path: what the URL's `ckpt` holds
    run_dir: Path  # where history.jsonl and samples/ live
    key: ModelKey

    @property
    def checkpoint(self) -> Checkpoint:
        return cache.model(self.key)

    def link(self, **params: str) -> dict[str, str]:
        """URL parameters naming this checkpoint plus a page's own `params`."""
        return {**encode_checkpoint(self.label), **params}


def checkpoints_root() -> Path:
    """The folder the picker lists and typed paths are confined to: $LATENT_LAB_CHECKPOINTS or checkpoints/."""
    value = os.environ.get(ROOT_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else CHECKPOINTS_ROOT


def _format_info(info: CheckpointInfo) -> str:
    if info.error:
        return f"{info.name} (broken)"
    return f"{info.name} · {info.dataset_spec or '?'} · {info.image_size}px · step {info.step}"


def _apply_link(infos: list[CheckpointInfo], root: Path) -> str | None:
    """On a page's first run, the URL's checkpoint becomes the picker's choice; a problem to show, or None."""
    wanted = decode_checkpoint(st.query_params.to_dict())
    if wanted is None or not is_new_page():
        return None
    if wanted in {info.name for info in infos}:
        set_kept(PICK, wanted)
        set_kept(TYPED, "")
        return None
    try:
        model_key(resolve_user_path(wanted, allowed_roots=(root,)))
    except (ValueError, CheckpointError, OSError) as exc:
        return f"The link's checkpoint {wanted!r} cannot be opened here ({exc}); showing the one picked in the sidebar."
    set_kept(TYPED, wanted)
    return None


def checkpoint_sidebar(infos: list[CheckpointInfo], root: Path) -> Active | None:
    """The picker (listed runs + a typed path), its meta, and the loaded model; None (after st.error) if unusable."""
    st.subheader("Checkpoint")
    names = [info.name for info in infos]
    by_name = {info.name: info for info in infos}
    if names and kept_value(PICK) not in names:
        # first visit, or the picked run disappeared: the shipped default if usable, else the first usable one
        usable = [info.name for info in infos if not info.error] or names
        set_kept(PICK, DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT in usable else usable[0])
    if names:
        st.selectbox("Run", names, format_func=lambda n: _format_info(by_name[n]), **kept(PICK, names[0]))
    else:
        st.info(f"No checkpoints under {root}. Train one, e.g. `python -m training.run --dataset synthetic-faces --out checkpoints/my-run`.")
    typed = st.text_input(
        "…or a path inside the checkpoints folder", placeholder="e.g. experiments/run-3",
        help=f"Relative to {root}; paths outside it are refused.", **kept(TYPED, ""),
    ).strip()
    if typed:
        try:
            listed = resolve_user_path(typed, allowed_roots=(root,))
        except ValueError as exc:
            st.error(f"Cannot use that path: {exc}")
            return None
        label = typed
    elif names:
        info = by_name[kept_value(PICK)]
        if info.error:
            st.error(f"{info.name} cannot be opened: {info.error}")
            return None
        listed, label = info.path, info.name
    else:
        return None
    try:
        key = model_key(listed)
        checkpoint = cache.model(key)
    except (CheckpointError, OSError, ValueError) as exc:
        st.error(f"Cannot load {label}: {exc}")
        return None
    _show_meta(checkpoint)
    return Active(label=label, run_dir=run_dir_for(listed, Path(key.path)), key=key)


def _show_meta(checkpoint: Checkpoint) -> None:
    cfg, dataset = checkpoint.config, checkpoint.dataset
    colour = "RGB" if cfg.channels == 3 else "grayscale"
    st.caption(
        f"**{dataset.get('spec', 'unknown dataset')}** · step {checkpoint.step:,} · {cfg.image_size} px {colour} · "
        f"z {cfg.z_dim} · {'EMA generator' if checkpoint.generator_kind == 'ema' else 'raw generator'}"
        + ("" if checkpoint.discriminator is not None else " · no discriminator")
    )
    metrics = checkpoint.meta.get("metrics") or {}
    if metrics:
        with st.expander("Last training metrics"):
            st.dataframe(
                {"metric": list(metrics), "value": [f"{v:.4g}" if isinstance(v, float) else str(v) for v in metrics.values()]},
                hide_index=True,
            )


def page_setup(page: str, link: bool = True) -> Active:
    """Every page starts here: page config, the sidebar's checkpoint picker, and the page's checkpoint.

    `page` names the page (for kept state: a widget's value is restored once per visit). With
    `link`, the URL is set to name the checkpoint alone; pages with their own link state pass
    False and call `ui.state.set_link(active.link(...))` themselves. Stops the page when no
    checkpoint is usable; the sidebar then says why.
    """
    st.set_page_config(page_title="latent-lab explorer", layout="wide")
    through_app()
    note_page(page)
    root = checkpoints_root()
    infos = list_checkpoints(root)
    problem = _apply_link(infos, root)
    with st.sidebar:
        active = checkpoint_sidebar(infos, root)
    if problem:
        st.warning(problem)
    if active is None:
        st.warning("No usable checkpoint is selected: pick one in the sidebar.")
        st.stop()
    if link:
        set_link(active.link())
    return active
