"""Training configuration: one dataclass, validated before any work is done."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from explorer.model import SUPPORTED_IMAGE_SIZES, DCGANConfig

LOSSES = ("bce", "hinge")  # bce = the paper's non-saturating GAN loss
AMP_MODES = ("off", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    dataset: str = "synthetic-faces"
    out: str = "checkpoints/run"
    image_size: int = 64
    channels: int | None = None  # None: the dataset's own channel count
    z_dim: int = 100
    g_width: int = 64
    d_width: int = 64
    batch_size: int = 128  # per process; DDP's global batch is batch_size * world size
    epochs: int | None = 5
    max_steps: int | None = None  # overrides epochs when set
    max_images: int | None = None  # load at most this many training images
    lr: float = 2e-4  # the paper's Adam settings
    beta1: float = 0.5
    beta2: float = 0.999
    loss: str = "bce"
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - label_smoothing
    ema: bool = False  # keep an exponential moving average of G (used for samples and export)
    ema_decay: float = 0.999
    device: str = "auto"
    amp: str = "off"
    compile: bool = False
    channels_last: bool = True
    seed: int = 0
    log_every: int = 50  # steps between host syncs: losses are read back only then
    checkpoint_every: int = 500  # steps between snapshots (also saved at each epoch end and at the end)
    keep_snapshots: int = 2
    sample_count: int = 64  # fixed-noise grid size
    # Divergence guards (see training.loop.DivergenceGuard)
    collapse_std: float = 0.02  # per-pixel std across the fixed-noise batch, in [-1, 1] units
    d_win_patience: int = 10  # consecutive log windows with D(x) > 0.99 and D(G(z)) < 0.01

    def model_config(self, channels: int) -> DCGANConfig:
        return DCGANConfig(
            image_size=self.image_size, channels=channels, z_dim=self.z_dim, g_width=self.g_width, d_width=self.d_width
        )

    def validate(self) -> None:
        """Raise ValueError with a clear message for any option that cannot work."""
        problems = []
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            problems.append(f"--image-size must be one of {SUPPORTED_IMAGE_SIZES}")
        if self.channels not in (None, 1, 3):
            problems.append("--channels must be 1 or 3")
        for name in ("z_dim", "g_width", "d_width", "batch_size", "log_every", "checkpoint_every", "keep_snapshots", "sample_count"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1")
        if self.batch_size < 2:
            problems.append("--batch-size must be >= 2 (batchnorm needs more than one sample)")
        if self.epochs is None and self.max_steps is None:
            problems.append("give --epochs or --max-steps")
        if self.epochs is not None and self.epochs < 1:
            problems.append("--epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("--max-steps must be >= 1")
        if self.max_images is not None and self.max_images < self.batch_size:
            problems.append("--max-images must be at least --batch-size")
        if not (0 < self.lr < 1):
            problems.append("--lr must be in (0, 1)")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            problems.append("Adam betas must be in [0, 1)")
        if self.loss not in LOSSES:
            problems.append(f"--loss must be one of {LOSSES}")
        if not (0 <= self.label_smoothing < 0.5):
            problems.append("--label-smoothing must be in [0, 0.5)")
        if not (0 < self.ema_decay < 1):
            problems.append("--ema-decay must be in (0, 1)")
        if self.device not in DEVICES:
            problems.append(f"--device must be one of {DEVICES}")
        if self.amp not in AMP_MODES:
            problems.append(f"--amp must be one of {AMP_MODES}")
        if self.collapse_std < 0 or self.d_win_patience < 1:
            problems.append("divergence guard settings must be non-negative")
        if problems:
            raise ValueError("invalid training options:\n  " + "\n  ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
