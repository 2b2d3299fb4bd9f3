"""Training configuration: one dataclass, every value checked (type, finiteness, bounds) before any work is done.

Values come from the command line and, on --resume, from the run's config.json, which may have been
edited by hand or crafted: `validate` refuses a string where a number belongs, NaN, 1e21 images per
batch or a seed beyond 64 bits with one message per problem, numbers shortened (explorer.values.brief).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from explorer import values
from explorer.checkpoint_meta import MAX_CHANNELS
from explorer.model import SUPPORTED_IMAGE_SIZES, DCGANConfig

LOSSES = ("bce", "hinge")  # bce = the paper's non-saturating GAN loss
AMP_MODES = ("off", "bf16", "fp16", "auto")  # auto: bf16 where it is native (training.precision), else FP32
DEVICES = ("auto", "cpu", "cuda")

MAX_BATCH = 65_536
MAX_STEPS = 10**12
# name: (lowest, highest) for the whole-number options; None allowed where the default is None.
WHOLE_BOUNDS = {
    "z_dim": (1, MAX_CHANNELS),
    "g_width": (1, MAX_CHANNELS),
    "d_width": (1, MAX_CHANNELS),
    "batch_size": (2, MAX_BATCH),  # batchnorm needs more than one sample
    "epochs": (1, 10**6),
    "max_steps": (1, MAX_STEPS),
    "max_images": (1, 10**10),
    "seed": (0, 2**63 - 1),  # torch.manual_seed takes 64 bits
    "log_every": (1, MAX_STEPS),
    "checkpoint_every": (1, MAX_STEPS),
    "keep_snapshots": (1, 10**9),
    "sample_count": (2, 1024),  # the fixed-noise grid; diversity is a std over it
    "d_win_patience": (1, 10**6),
}
# name: (low, high, open at low, open at high)
NUMBER_BOUNDS = {
    "lr": (0.0, 1.0, True, True),
    "beta1": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "label_smoothing": (0.0, 0.5, False, True),
    "ema_decay": (0.0, 1.0, True, True),
    "collapse_std": (0.0, 2.0, False, False),  # a std of values in [-1, 1]
}
CHOICES = {"image_size": SUPPORTED_IMAGE_SIZES, "channels": (None, 1, 3), "loss": LOSSES, "device": DEVICES, "amp": AMP_MODES}
FLAGS = ("ema", "compile", "channels_last")
TEXTS = ("dataset", "out", "data_cache")
MAX_RAM_GB = 1e6


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
    data_cache: str = "auto"  # decoded-data cache folder: "auto" (the user's cache folder), "off", or a path
    max_ram_gb: float | None = None  # preload the set below this size, else stream it from the cache; None: half the free memory
    compile: bool = False
    channels_last: bool = True
    seed: int = 0
    log_every: int = 50  # steps between host syncs: losses are read back only then
    checkpoint_every: int = 500  # steps between snapshots (also saved at each epoch end and at the end)
    keep_snapshots: int = 2
    sample_count: int = 64  # fixed-noise grid size
    # Divergence guards (see training.gan.DivergenceGuard)
    collapse_std: float = 0.02  # per-pixel std across the fixed-noise batch, in [-1, 1] units
    d_win_patience: int = 10  # consecutive log windows with D(x) > 0.99 and D(G(z)) < 0.01

    def model_config(self, channels: int) -> DCGANConfig:
        return DCGANConfig(
            image_size=self.image_size, channels=channels, z_dim=self.z_dim, g_width=self.g_width, d_width=self.d_width
        )

    def problems(self) -> list[str]:
        """One message per option that cannot work ([] when all can), checked by type first."""
        found = []

        def check(fn, name: str, *args, **kwargs) -> None:
            try:
                fn(f"--{name.replace('_', '-')}", getattr(self, name), *args, **kwargs)
            except ValueError as exc:
                found.append(str(exc))

        for name, (lo, hi) in WHOLE_BOUNDS.items():
            if getattr(self, name) is not None or name not in ("epochs", "max_steps", "max_images"):
                check(values.whole, name, lo, hi)
        for name, (lo, hi, open_lo, open_hi) in NUMBER_BOUNDS.items():
            check(values.number, name, lo, hi, open_lo=open_lo, open_hi=open_hi)
        for name, options in CHOICES.items():
            check(values.choice, name, options)
        for name in FLAGS:
            check(values.flag, name)
        for name in TEXTS:
            check(values.text, name)
        if self.max_ram_gb is not None:
            check(values.number, "max_ram_gb", 0.0, MAX_RAM_GB, open_lo=True, open_hi=False)
        if found:
            return found
        if self.epochs is None and self.max_steps is None:
            found.append("give --epochs or --max-steps")
        if self.max_images is not None and self.max_images < self.batch_size:
            found.append(f"--max-images ({values.brief(self.max_images)}) must be at least --batch-size ({self.batch_size})")
        return found

    def validate(self) -> None:
        """Raise ValueError with a clear message for any option that cannot work."""
        found = self.problems()
        if found:
            raise ValueError("invalid training options:\n  " + "\n  ".join(found))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Known keys only (config.json also records e.g. world_size); values are checked by `validate`."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def steps_per_epoch(num_images: int, batch_size: int, world_size: int) -> int:
    """Optimizer steps in one pass over the data: each step takes batch_size images on every process."""
    return num_images // (batch_size * world_size)


def total_steps(config: TrainConfig, per_epoch: int) -> int:
    return config.max_steps if config.max_steps is not None else config.epochs * per_epoch

