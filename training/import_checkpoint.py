"""`python -m training.import_checkpoint SRC [--netD FILE] --out checkpoints/NAME [--dataset SPEC]`: bring your own DCGAN.

Reads a generator (and optionally a discriminator) saved by pytorch/examples' dcgan/main.py
(`netG_epoch_N.pth`, `netD_epoch_N.pth`: `torch.save(net.state_dict())`, keys `main.0.weight`,
`main.1.weight`, `main.1.running_mean`, ...), any plain state dict of that layout or of this
project's (`blocks.0.0.weight`, ..., `head.weight`), or a safetensors file of either, and writes a
normal self-describing checkpoint (explorer.checkpoint) that every page and CLI opens.

* Nothing is unpickled beyond tensors: `torch.load(weights_only=True)` refuses pickled code and
  objects; safetensors files are read as such.
* nz, ngf, ndf, nc and the image size come from the tensor shapes; the rest of the layout is
  checked against this project's model (explorer/model.py is the same net: pytorch/examples' 64 px
  DCGAN is exactly its 64 px configuration), so a foreign, truncated or NaN-holding file is refused
  with the reason, before anything is written.
* pytorch/examples' D ends in a Sigmoid; ours returns the logit before it (the losses use the
  numerically safe logits form), so sigmoid(our D(x)) is their D(x).
* meta.json records each source file's path and SHA-256, and that the training data is unknown,
  or the dataset named by --dataset (whose real images the feature map and probes then use).

Exit codes: 0 written (or --dry-run checked), 2 a bad option or source file (nothing written).
"""
from __future__ import annotations

import argparse
import pickle
import re
import struct
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from explorer.checkpoint import CheckpointError, load_checkpoint, read_meta, write_checkpoint_dir
from explorer.datasets import DatasetError, load_dataset, parse_dataset_spec
from explorer.fsio import UnsafeFileError, check_regular, sha256_file
from explorer.model import DCGANConfig, Discriminator, Generator, count_parameters

MAX_SOURCE_BYTES = 2**30  # a 128 px DCGAN of width 128 is ~60 MB; anything near 1 GB is not one
BATCHNORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
IMPORT_TOOL = "training.import_checkpoint"


class ImportCheckpointError(ValueError):
    """A source file that cannot be imported; the message names the file and says why."""


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (little-endian u64) followed by a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < path.stat().st_size


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A file's tensors by name: safetensors, or torch.save'd with weights_only=True (tensors and containers only)."""
    path = Path(path)
    if not path.exists():
        raise ImportCheckpointError(f"{path}: no such file")
    try:  # stat only: torch.load and safetensors open by name, and a FIFO or /dev/zero must never reach them
        check_regular(path)
    except UnsafeFileError as exc:
        raise ImportCheckpointError(f"{path}: not a file ({exc})") from exc
    size = path.stat().st_size
    if size == 0 or size > MAX_SOURCE_BYTES:
        raise ImportCheckpointError(f"{path}: {size:,} bytes is not the size of a DCGAN's weights")
    if _is_safetensors(path):
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ImportCheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4": the refusal below says what matters
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any global or opcode it does not know: a pickled module, optimizer or code.
        # torch's message goes on to suggest weights_only=False, which this tool never does: keep its reason only.
        reason = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        raise ImportCheckpointError(
            f"{path}: refused, it holds pickled Python objects or code, not only tensors "
            f"({reason.group(1).split('. ')[0].strip() if reason else type(exc).__name__}); nothing was unpickled. "
            "Save net.state_dict() with torch.save (as pytorch/examples does) or a safetensors file"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - torch.load raises RuntimeError, EOFError, zipfile errors... for a bad file
        raise ImportCheckpointError(f"{path}: not a readable torch.save file ({type(exc).__name__}: {exc})") from exc
    if isinstance(state, Mapping) and set(state) == {"state_dict"}:
        state = state["state_dict"]  # a common wrapper: {"state_dict": ...}
    if not isinstance(state, Mapping) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ImportCheckpointError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return dict(state)


# ----------------------------------------------------------------------------------------------- layout

_EXAMPLES_KEY = re.compile(r"main\.(\d+)\.(\w+)")
_OURS_KEY = re.compile(r"blocks\.(\d+)\.(\d+)\.(\w+)|head\.(weight)")


def _layers(state: Mapping[str, torch.Tensor], source: Path) -> tuple[str, list[tuple[str, dict[str, torch.Tensor]]]]:
    """(layout name, [("conv" | "bn", {param: tensor}) in network order]) of pytorch/examples' or our key layout."""
    keys = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}  # DataParallel / compile
    groups: dict[tuple, dict[str, torch.Tensor]] = {}
    if all(_EXAMPLES_KEY.fullmatch(k) for k in keys):
        layout = "pytorch/examples dcgan (main.N.*)"
        for key, tensor in keys.items():
            index, name = _EXAMPLES_KEY.fullmatch(key).groups()
            groups.setdefault((int(index),), {})[name] = tensor
    elif all(_OURS_KEY.fullmatch(k) for k in keys):
        layout = "latent-lab (blocks.i.j.*)"
        for key, tensor in keys.items():
            block, sub, name, head = _OURS_KEY.fullmatch(key).groups()
            groups.setdefault((10**6, 0) if head else (int(block), int(sub)), {})[head or name] = tensor
    else:
        odd = sorted(k for k in keys if not (_EXAMPLES_KEY.fullmatch(k) or _OURS_KEY.fullmatch(k)))[:3]
        raise ImportCheckpointError(
            f"{source}: unknown key layout (e.g. {', '.join(odd)}); expected pytorch/examples' dcgan keys "
            "(main.0.weight, main.1.running_mean, ...) or this project's (blocks.0.0.weight, ...)"
        )
    layers = []
    for index in sorted(groups):
        params = groups[index]
        if "running_mean" in params or "running_var" in params:
            layers.append(("bn", params))
        elif params.get("weight") is not None and params["weight"].dim() == 4:
            layers.append(("conv", params))
        else:
            raise ImportCheckpointError(f"{source}: layer {index} holds {sorted(params)}, neither a convolution nor a batchnorm")
    return layout, layers


def _looks_like(layers: list[tuple[str, dict]]) -> str:
    """'generator' when batchnorm follows the first convolution (G's layout), else 'discriminator' (D has none there)."""
    return "generator" if len(layers) > 1 and layers[0][0] == "conv" and layers[1][0] == "bn" else "discriminator"


def _infer_config(role: str, convs: list[torch.Tensor], source: Path) -> DCGANConfig:
    """The DCGANConfig that the conv weights' shapes imply (ConvTranspose2d weights are (in, out, k, k), Conv2d (out, in, k, k))."""
    if len(convs) < 2:
        raise ImportCheckpointError(f"{source}: {len(convs)} convolution(s) is too few for a DCGAN {role}")
    upsamplings = len(convs) - 1  # 64 px: 4 stride-2 layers after G's 4x4 seed (D: before its 4x4 head)
    try:
        if role == "generator":
            return DCGANConfig(
                image_size=4 * 2**upsamplings, channels=convs[-1].shape[1], z_dim=convs[0].shape[0], g_width=convs[-1].shape[0]
            )
        return DCGANConfig(image_size=4 * 2**upsamplings, channels=convs[0].shape[1], d_width=convs[0].shape[0])
    except ValueError as exc:  # an image size or channel count this project's model does not have
        raise ImportCheckpointError(f"{source}: the {role}'s shapes imply an unsupported net: {exc}") from exc


def convert(state: Mapping[str, torch.Tensor], role: str, source: Path) -> tuple[DCGANConfig, dict[str, torch.Tensor], str]:
    """A foreign state dict -> (inferred config, state dict of explorer.model's `role` net, layout name).

    Every tensor is checked against the model the shapes imply: names, shapes (square 4x4
    kernels, widths doubling per block), finite values. Batchnorm's num_batches_tracked (absent in
    checkpoints of PyTorch < 0.4.1) is filled with 0; it does not affect eval-mode outputs.
    """
    layout, layers = _layers(state, source)
    if _looks_like(layers) != role:
        hint = "pass the generator as SRC and this file as --netD" if role == "generator" else "this file looks like a generator"
        raise ImportCheckpointError(f"{source}: this is not a DCGAN {role} ({hint})")
    convs = [params for kind, params in layers if kind == "conv"]
    config = _infer_config(role, [c["weight"] for c in convs], source)
    mapped: dict[str, torch.Tensor] = {}
    block = -1
    for kind, params in layers:
        if kind == "conv":
            block += 1
            unexpected = sorted(set(params) - {"weight"})
            if unexpected:
                raise ImportCheckpointError(f"{source}: convolution {block} has {unexpected}; the DCGAN's convolutions have no bias")
            is_head = role == "discriminator" and block == len(convs) - 1
            mapped["head.weight" if is_head else f"blocks.{block}.0.weight"] = params["weight"]
        else:
            missing = sorted(set(BATCHNORM_KEYS) - set(params) - {"num_batches_tracked"})
            unexpected = sorted(set(params) - set(BATCHNORM_KEYS))
            if missing or unexpected:
                raise ImportCheckpointError(f"{source}: batchnorm after convolution {block}: missing {missing}, unexpected {unexpected}")
            for name in BATCHNORM_KEYS:
                mapped[f"blocks.{block}.1.{name}"] = params.get(name, torch.tensor(0))
    with torch.device("meta"):
        expected = (Generator if role == "generator" else Discriminator)(config).state_dict()
    missing, unexpected = sorted(set(expected) - set(mapped)), sorted(set(mapped) - set(expected))
    if missing or unexpected:
        raise ImportCheckpointError(
            f"{source}: does not fit a DCGAN {role} of {config}: missing {missing[:4]}, unexpected {unexpected[:4]} "
            "(a batchnorm where the DCGAN has none, or one missing)"
        )
    out = {}
    for key, want in expected.items():
        tensor = mapped[key]
        if tuple(tensor.shape) != tuple(want.shape):
            raise ImportCheckpointError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, a DCGAN {role} with {config} needs {tuple(want.shape)} "
                "(square 4x4 kernels and widths doubling per block, as in pytorch/examples)"
            )
        if want.is_floating_point():
            if not tensor.is_floating_point():
                raise ImportCheckpointError(f"{source}: {key} has dtype {tensor.dtype}, expected floating point")
            if not torch.isfinite(tensor).all():
                raise ImportCheckpointError(f"{source}: {key} holds NaN or infinite values")
        out[key] = tensor.to(want.dtype)
    return config, out, layout


def _built(role: str, config: DCGANConfig, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    module = (Generator if role == "generator" else Discriminator)(config)
    module.load_state_dict(state, strict=True)
    return module.eval()


def _epoch_from_name(path: Path) -> int | None:
    """N of pytorch/examples' netG_epoch_N.pth, or None."""
    match = re.fullmatch(r"net[GD]_epoch_(\d+)", path.stem)
    return int(match.group(1)) if match else None


def _dataset_meta(spec: str | None, config: DCGANConfig) -> dict:
    """meta["dataset"]: the --dataset spec with its label names (read from one image's worth of it), or 'unknown'."""
    if spec is None:
        return {
            "spec": None,
            "known": False,
            "note": "imported checkpoint: the data it was trained on is unknown; pass --dataset SPEC at import to name it",
        }
    dataset = load_dataset(spec, image_size=config.image_size, channels=config.channels, max_images=1)
    return {
        "spec": str(spec),
        "known": True,
        "note": "named with --dataset at import; the source file does not record its training data",
        "class_names": dataset.class_names,
        "attribute_names": dataset.attribute_names,
        "factor_names": dataset.factor_names,
    }


def _source_meta(path: Path, layout: str) -> dict:
    return {"path": str(path.resolve()), "sha256": sha256_file(path), "bytes": path.stat().st_size, "layout": layout}


def _refusal(out: Path, overwrite: bool) -> str | None:
    """Why --out must not be written, or None: only a missing or empty folder, or with --overwrite one this tool wrote."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not out.is_dir():
        return f"--out {out} exists and is not a folder"
    try:
        ours = (read_meta(out)[1].get("imported_from") or {}).get("tool") == IMPORT_TOOL
    except CheckpointError:
        ours = False
    if not ours:
        return f"--out {out} exists and was not written by {IMPORT_TOOL}; choose another folder"
    return None if overwrite else f"--out {out} holds an earlier import; pass --overwrite to replace it"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.import_checkpoint", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SRC", help="generator weights: netG_epoch_N.pth, a state dict (.pth/.pt) or .safetensors")
    parser.add_argument("--netD", metavar="FILE", help="the matching discriminator (netD_epoch_N.pth, ...); without it no realism score or D features")
    parser.add_argument("--out", required=True, help="the new checkpoint folder, e.g. checkpoints/NAME")
    parser.add_argument("--dataset", metavar="SPEC", help="the dataset it was trained on, if you know it (e.g. celeba:/data/celeba)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it holds an earlier import")
    parser.add_argument("--dry-run", action="store_true", help="read and check everything, print what would be written, write nothing")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    out = Path(args.out)
    reason = _refusal(out, args.overwrite)
    if reason:
        return fail(reason)
    try:
        if args.dataset is not None:
            parse_dataset_spec(args.dataset)
        source = Path(args.source)
        g_config, g_state, layout = convert(read_state_dict(source), "generator", source)
        modules = {"generator": _built("generator", g_config, g_state)}
        imported = {"tool": IMPORT_TOOL, "generator": _source_meta(source, layout), "discriminator": None}
        config = g_config
        if args.netD is not None:
            netd = Path(args.netD)
            d_config, d_state, d_layout = convert(read_state_dict(netd), "discriminator", netd)
            if (d_config.image_size, d_config.channels) != (g_config.image_size, g_config.channels):
                raise ImportCheckpointError(
                    f"{netd}: the discriminator reads {d_config.image_size} px, {d_config.channels}-channel images but the "
                    f"generator makes {g_config.image_size} px, {g_config.channels}-channel ones: not a pair"
                )
            config = DCGANConfig(**{**g_config.to_dict(), "d_width": d_config.d_width})
            modules["discriminator"] = _built("discriminator", config, d_state)
            imported["discriminator"] = _source_meta(netd, d_layout)
        dataset = _dataset_meta(args.dataset, config)
    except (ImportCheckpointError, DatasetError, OSError) as exc:
        return fail(str(exc))

    g_params = count_parameters(modules["generator"])
    d_text = f", D {count_parameters(modules['discriminator']):,} parameters" if "discriminator" in modules else ", no discriminator"
    print(
        f"{layout}: {config.image_size} px, {config.channels} channel(s), nz {config.z_dim}, ngf {config.g_width}"
        f"{', ndf ' + str(config.d_width) if 'discriminator' in modules else ''}; G {g_params:,} parameters{d_text}; "
        f"dataset: {dataset['spec'] or 'unknown'}"
    )
    if args.dry_run:
        print(f"would write {out}")
        return 0
    meta = {"model": config.to_dict(), "step": 0, "epoch": _epoch_from_name(source), "dataset": dataset, "imported_from": imported}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint_dir(out, meta, modules, None, torch.float32)
    load_checkpoint(out)  # the one loader validates what was written (hashes, names, shapes)
    print(f"wrote {out} (generator from {source.name}, SHA-256 {imported['generator']['sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
