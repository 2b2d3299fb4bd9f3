"""The evaluation network: a small CNN trained on a dataset's own labels.

It has two jobs, which is why it is trained on real images only and never sees the GAN:

* FID's feature network. Inception-v3 FID needs weights from the internet and 299 px inputs;
  a classifier trained here on the dataset's labels gives a feature space that knows what matters
  in *this* data (FID with a "custom feature network", as torchmetrics allows). Its `forward`
  maps uint8 images (N, C, H, W) to features (N, feature_dim) and it carries `num_features`, the
  contract of `torchmetrics.image.fid.FrechetInceptionDistance(feature=module)`.
* The ground-truth scorer for vector arithmetic on synthetic faces: its attribute heads (and a yaw
  regression head) say whether a generated face is smiling, male, wearing glasses, turned left...
  Its held-out accuracy is shipped with it, so a score can be read against how good the scorer is.

Architecture (sizes for 64 px RGB, width 16): a 3x3 stem, then stride-2 3x3 conv blocks halving
the map down to 4x4 (64 -> 32 -> 16 -> 8 -> 4, channels 16 -> 32 -> 64 -> 128 -> 128), batch norm
and ReLU, global average pooling, one 128-unit ReLU layer = the features, then linear heads:
class logits (softmax), attribute logits (sigmoid), factor regressions (standardised targets).
~0.4 M parameters, ~37 MFLOP per 64 px image.

Files: `evalnet.json` (format, config, dataset, accuracies, sha256 of the weights) beside
`evalnet.safetensors`; loaded through the checkpoint module's validating weight loader (shapes,
dtypes, finite values, hash), never unpickled.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from explorer.checkpoint import (
    CheckpointError,
    _load_weights,
    _sha256,
    _state_for_saving,
    atomic_write_json,
    library_versions,
)
from explorer.fsio import atomic_write_bytes
from explorer.images import from_uint8

EVALNET_FORMAT = "latent-lab-evalnet"
EVALNET_VERSION = 1
EVALNET_META = "evalnet.json"
EVALNET_WEIGHTS = "evalnet.safetensors"
# Shipped nets live here, one folder per (dataset kind, image size), e.g. fashion-mnist-32.
EVAL_NETS_ROOT = Path(__file__).resolve().parents[2] / "checkpoints" / "eval-nets"


@dataclass(frozen=True)
class EvalNetConfig:
    image_size: int
    channels: int
    width: int = 16  # stem channels; doubles per block up to 8x
    feature_dim: int = 128
    class_names: tuple[str, ...] = ()  # softmax head, empty when the dataset has no class labels
    attribute_names: tuple[str, ...] = ()  # one sigmoid logit each
    factor_names: tuple[str, ...] = ()  # one regression output each (standardised units)

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 4 or size & (size - 1) or self.channels not in (1, 3):
            raise ValueError(f"eval net needs a power-of-two image_size >= 4 and 1 or 3 channels, got {size}, {self.channels}")
        if not (self.class_names or self.attribute_names):
            raise ValueError("an eval net needs class names or attribute names to train on")

    @classmethod
    def from_dict(cls, d: dict) -> "EvalNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown eval net config keys {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class EvalNet(nn.Module):
    def __init__(self, config: EvalNetConfig):
        super().__init__()
        self.config = config
        self.num_features = config.feature_dim  # torchmetrics' FID reads this instead of a dummy forward
        w = config.width
        layers: list[nn.Module] = [nn.Conv2d(config.channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        size, channels = config.image_size, w
        while size > 4:
            out = min(channels * 2, 8 * w)
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            size, channels = size // 2, out
        self.body = nn.Sequential(*layers)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(channels, config.feature_dim), nn.ReLU(inplace=True))
        self.class_head = nn.Linear(config.feature_dim, len(config.class_names)) if config.class_names else None
        self.attribute_head = nn.Linear(config.feature_dim, len(config.attribute_names)) if config.attribute_names else None
        self.factor_head = nn.Linear(config.feature_dim, len(config.factor_names)) if config.factor_names else None
        # Factor targets are standardised for training; the statistics travel with the weights.
        self.register_buffer("factor_mean", torch.zeros(len(config.factor_names)))
        self.register_buffer("factor_std", torch.ones(len(config.factor_names)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images uint8 (N, C, H, W) or float in [-1, 1] -> features (N, feature_dim) float32."""
        x = from_uint8(images) if images.dtype == torch.uint8 else images.float()
        if x.shape[1:] != (self.config.channels, self.config.image_size, self.config.image_size):
            raise ValueError(
                f"eval net expects (N, {self.config.channels}, {self.config.image_size}, {self.config.image_size}) images, "
                f"got {tuple(images.shape)}"
            )
        x = self.body(x)
        return self.embed(x.mean(dim=(2, 3), keepdim=True))

    def heads(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """features (N, F) -> {"classes": logits (N, K), "attributes": logits (N, A), "factors": (N, F) in data units}."""
        out = {}
        if self.class_head is not None:
            out["classes"] = self.class_head(features)
        if self.attribute_head is not None:
            out["attributes"] = self.attribute_head(features)
        if self.factor_head is not None:
            out["factors_standardised"] = self.factor_head(features)
            out["factors"] = out["factors_standardised"] * self.factor_std + self.factor_mean
        return out


@dataclass
class Predictions:
    features: np.ndarray  # (N, feature_dim) float32
    class_probabilities: np.ndarray | None = None  # (N, K)
    attribute_probabilities: np.ndarray | None = None  # (N, A)
    factors: np.ndarray | None = None  # (N, F) in the dataset's units (e.g. yaw in radians)


@torch.no_grad()
def predict(net: EvalNet, images: torch.Tensor | np.ndarray, batch_size: int = 256) -> Predictions:
    """Run the net in eval mode over uint8 or [-1, 1] float images (N, C, H, W), batch by batch."""
    images = torch.as_tensor(images)
    was_training = net.training
    net.eval()
    chunks: dict[str, list[np.ndarray]] = {"features": [], "classes": [], "attributes": [], "factors": []}
    try:
        for start in range(0, images.shape[0], batch_size):
            features = net(images[start : start + batch_size])
            heads = net.heads(features)
            chunks["features"].append(features.numpy())
            if "classes" in heads:
                chunks["classes"].append(heads["classes"].softmax(dim=1).numpy())
            if "attributes" in heads:
                chunks["attributes"].append(heads["attributes"].sigmoid().numpy())
            if "factors" in heads:
                chunks["factors"].append(heads["factors"].numpy())
    finally:
        net.train(was_training)
    joined = {k: (np.concatenate(v) if v else None) for k, v in chunks.items()}
    if joined["features"] is None:
        joined["features"] = np.zeros((0, net.config.feature_dim), np.float32)
    return Predictions(joined["features"], joined["classes"], joined["attributes"], joined["factors"])


@dataclass
class EvalNetInfo:
    """What evalnet.json says besides the config: provenance and how good the net is."""

    dataset: str  # spec it was trained on
    accuracy: dict[str, float] = field(default_factory=dict)  # held-out: "classes" top-1, per attribute; factor R^2
    chance: dict[str, float] = field(default_factory=dict)  # the same for a constant guess
    test_split: str = ""  # which images `accuracy` was measured on
    train_images: int = 0
    epochs: int = 0
    seconds: float = 0.0


def save_eval_net(path: str | os.PathLike, net: EvalNet, info: EvalNetInfo) -> Path:
    """Write evalnet.safetensors + evalnet.json into the folder `path` (created), atomically each."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / EVALNET_WEIGHTS, safetensors_bytes(_state_for_saving(net, torch.float32)))
    meta = {
        "format": EVALNET_FORMAT,
        "format_version": EVALNET_VERSION,
        "config": asdict(net.config),
        **asdict(info),
        "weights": {"name": EVALNET_WEIGHTS, "sha256": _sha256(folder / EVALNET_WEIGHTS)},
        "versions": library_versions(),
    }
    atomic_write_json(folder / EVALNET_META, meta)
    return folder


def load_eval_net(path: str | os.PathLike) -> tuple[EvalNet, EvalNetInfo]:
    """Validated load of a saved eval net (eval mode, CPU). CheckpointError with the reason otherwise."""
    folder = Path(path)
    meta_file = folder / EVALNET_META
    if not meta_file.is_file():
        raise CheckpointError(f"{folder} is not an eval net folder: {EVALNET_META} is missing")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_file} is not readable JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != EVALNET_FORMAT:
        raise CheckpointError(f"{meta_file} is not a {EVALNET_FORMAT} file")
    if meta.get("format_version") != EVALNET_VERSION:
        raise CheckpointError(f"{meta_file} has format_version {meta.get('format_version')!r}; this code reads {EVALNET_VERSION}")
    try:
        config = EvalNetConfig.from_dict(meta["config"])
        info = EvalNetInfo(**{k: meta[k] for k in EvalNetInfo.__dataclass_fields__ if k in meta})
        weights = meta["weights"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{meta_file} describes no valid eval net ({exc})") from exc
    net = EvalNet(config)
    _load_weights(folder / weights["name"], weights.get("sha256"), net)
    return net.eval(), info


def dataset_kind(spec: str) -> str:
    """'synthetic-faces:30000' -> 'synthetic-faces', 'folder:/x' -> 'folder'."""
    return spec.split(":", 1)[0]


def default_eval_net_dir(spec: str, image_size: int) -> Path:
    return EVAL_NETS_ROOT / f"{dataset_kind(spec)}-{image_size}"


def find_eval_net(spec: str, image_size: int, channels: int, root: str | os.PathLike | None = None) -> Path | None:
    """The shipped/trained eval net for a dataset kind at this image size and channel count, or None.

    Only datasets whose images are the same whatever the path (synthetic-faces, fashion-mnist) can
    share a net by kind; a `folder:`/`celeba:` checkpoint needs a net trained on its own data
    (`python -m training.eval_net --dataset SPEC`), given explicitly.
    """
    folder = Path(root) / f"{dataset_kind(spec)}-{image_size}" if root else default_eval_net_dir(spec, image_size)
    meta_file = folder / EVALNET_META
    if not meta_file.is_file():
        return None
    try:
        config = json.loads(meta_file.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if config.get("channels") == channels and config.get("image_size") == image_size else None


def r_squared(predicted: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination of one regression column; 0 = as good as predicting the mean."""
    residual = float(((predicted - target) ** 2).sum())
    total = float(((target - target.mean()) ** 2).sum())
    return 1.0 - residual / total if total > 0 else math.nan
