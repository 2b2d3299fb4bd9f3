"""`python -m training.eval_net --dataset SPEC --image-size S [--out DIR]`: train the evaluation network.

The net (explorer.evaluation.eval_net) is FID's feature network and, on synthetic faces, the
ground-truth attribute scorer for vector arithmetic. It is trained on real images with the
dataset's own labels: class cross-entropy, attribute binary cross-entropy and, where the dataset
has continuous factors (synthetic faces: yaw, skin tone, hair colour...), a regression on the
standardised factors, which makes the features see the things FID should compare. Accuracy is
measured on the dataset's test split (or a held-out tenth of train where there is none) and
written into evalnet.json.

`--task clean-face` trains the arithmetic's single-clean-face checker instead
(explorer.evaluation.clean_face): the same CNN with one head, real images against pixel blends of
real images, written to checkpoints/eval-nets/KIND-SIZE-clean by default.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from explorer.datasets import DatasetError, ImageDataset, load_dataset
from explorer.evaluation.clean_face import CLEAN_NET_SUFFIX, clean_face_dataset
from explorer.evaluation.eval_net import (
    EvalNet,
    EvalNetConfig,
    EvalNetInfo,
    default_eval_net_dir,
    predict,
    r_squared,
    save_eval_net,
)

HELD_OUT_FRACTION = 0.1  # of train, when the dataset has no test split


def _targets(dataset: ImageDataset, index: np.ndarray) -> dict[str, torch.Tensor]:
    out = {}
    if dataset.labels is not None:
        out["classes"] = dataset.labels[index]
    if dataset.attributes is not None:
        out["attributes"] = dataset.attributes[index].float()
    if dataset.factors is not None:
        out["factors"] = dataset.factors[index]
    return out


def train_eval_net(
    train: ImageDataset,
    test: ImageDataset,
    epochs: int = 6,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> tuple[EvalNet, EvalNetInfo]:
    """Fit an EvalNet on `train` (uint8 images + labels/attributes/factors), report held-out accuracy on `test`."""
    torch.manual_seed(seed)
    config = EvalNetConfig(
        image_size=int(train.images.shape[-1]),
        channels=train.channels,
        width=width,
        class_names=tuple(train.class_names or ()) if train.labels is not None else (),
        attribute_names=tuple(train.attribute_names or ()) if train.attributes is not None else (),
        factor_names=tuple(train.factor_names or ()) if train.factors is not None else (),
    )
    net = EvalNet(config)
    if train.factors is not None:
        net.factor_mean.copy_(train.factors.mean(dim=0))
        net.factor_std.copy_(train.factors.std(dim=0).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    order_rng = np.random.default_rng(seed)
    started = time.perf_counter()
    net.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc="eval net", disable=not progress, unit="step")
    for _ in range(epochs):
        order = order_rng.permutation(len(train))
        for start in range(0, len(train), batch_size):
            index = order[start : start + batch_size]
            targets = _targets(train, index)
            heads = net.heads(net(train.images[index]))
            loss = torch.zeros(())
            if "classes" in heads:
                loss = loss + F.cross_entropy(heads["classes"], targets["classes"])
            if "attributes" in heads:
                loss = loss + F.binary_cross_entropy_with_logits(heads["attributes"], targets["attributes"])
            if "factors" in heads:
                standardised = (targets["factors"] - net.factor_mean) / net.factor_std
                loss = loss + F.mse_loss(heads["factors_standardised"], standardised)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)  # one sync per step: the net is tiny
    bar.close()
    net.eval()
    accuracy, chance = held_out_accuracy(net, test)
    info = EvalNetInfo(
        dataset=train.spec, accuracy=accuracy, chance=chance, test_split=test.spec, train_images=len(train),
        epochs=epochs, seconds=round(time.perf_counter() - started, 1),
    )
    return net, info


def held_out_accuracy(net: EvalNet, test: ImageDataset) -> tuple[dict[str, float], dict[str, float]]:
    """{"classes": top-1 accuracy, ATTRIBUTE: accuracy, "r2:FACTOR": R^2} and the same for a constant guess."""
    predictions = predict(net, test.images)
    accuracy, chance = {}, {}
    if predictions.class_probabilities is not None and test.labels is not None:
        labels = test.labels.numpy()
        accuracy["classes"] = float((predictions.class_probabilities.argmax(1) == labels).mean())
        chance["classes"] = float(np.bincount(labels).max() / len(labels))
    if predictions.attribute_probabilities is not None and test.attributes is not None:
        truth = test.attributes.numpy().astype(bool)
        for a, name in enumerate(net.config.attribute_names):
            accuracy[name] = float(((predictions.attribute_probabilities[:, a] >= 0.5) == truth[:, a]).mean())
            rate = truth[:, a].mean()
            chance[name] = float(max(rate, 1 - rate))
    if predictions.factors is not None and test.factors is not None:
        for f, name in enumerate(net.config.factor_names):
            accuracy[f"r2:{name}"] = r_squared(predictions.factors[:, f], test.factors.numpy()[:, f])
            chance[f"r2:{name}"] = 0.0
    return accuracy, chance


def load_train_test(spec: str, image_size: int, channels: int | None, max_images: int | None, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """The train split, and the test split where the reader has one, else a held-out tenth of train.

    The test set's `spec` names where it came from, e.g. "fashion-mnist (test split)".
    """
    train = load_dataset(spec, image_size=image_size, channels=channels, max_images=max_images, split="train")
    try:
        test = load_dataset(spec, image_size=image_size, channels=channels, split="test",
                            max_images=None if max_images is None else max(1, max_images // 5))
        test.spec = f"{test.spec} (test split)"
        return train, test
    except DatasetError as exc:
        if "split" not in str(exc):
            raise
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    cut = max(1, int(len(train) * HELD_OUT_FRACTION))
    return _subset(train, np.sort(order[cut:]), train.spec), _subset(train, np.sort(order[:cut]), f"{train.spec} (held-out {HELD_OUT_FRACTION:.0%})")


def _subset(dataset: ImageDataset, index: np.ndarray, spec: str) -> ImageDataset:
    take = lambda t: None if t is None else t[index]  # noqa: E731
    return ImageDataset(
        images=dataset.images[index], spec=spec, class_names=dataset.class_names, labels=take(dataset.labels),
        attribute_names=dataset.attribute_names, attributes=take(dataset.attributes),
        factor_names=dataset.factor_names, factors=take(dataset.factors),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.eval_net", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="a dataset SPEC with labels or attributes (see training.run)")
    p.add_argument("--task", choices=("labels", "clean-face"), default="labels",
                   help="labels: FID features + attribute judge (default); clean-face: the single-clean-face checker")
    p.add_argument("--image-size", type=int, default=64, help="32, 64 or 128: the size of the checkpoints it will judge")
    p.add_argument("--channels", type=int, choices=(1, 3), help="default: the dataset's")
    p.add_argument("--out", help="folder to write (default checkpoints/eval-nets/KIND-SIZE)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--max-images", type=int, help="train on at most this many images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.image_size not in (32, 64, 128):
        p.error(f"--image-size must be 32, 64 or 128, got {args.image_size}")
    for name in ("epochs", "batch_size", "width"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error("--lr must be a positive number")
    out = Path(args.out) if args.out else default_eval_net_dir(args.dataset, args.image_size)
    if args.task == "clean-face" and not args.out:
        out = out.with_name(out.name + CLEAN_NET_SUFFIX)
    try:
        train, test = load_train_test(args.dataset, args.image_size, args.channels, args.max_images, args.seed)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.task == "clean-face":
        # Blends of the training images to learn from, of the held-out images to test on.
        train, test = clean_face_dataset(train, seed=args.seed), clean_face_dataset(test, seed=args.seed + 1)
    elif train.labels is None and train.attributes is None:
        print(f"error: {args.dataset} has neither class labels nor attributes to train an eval net on", file=sys.stderr)
        return 2
    print(f"training the eval net on {len(train)} images of {train.spec}; testing on {len(test)} of {test.spec}")
    net, info = train_eval_net(train, test, args.epochs, args.batch_size, args.lr, args.width, args.seed, not args.no_progress)
    save_eval_net(out, net, info)
    print(f"wrote {out} ({info.seconds:.0f} s)")
    for name, value in info.accuracy.items():
        print(f"  {name:28s} {value:7.3f}   (constant guess {info.chance.get(name, float('nan')):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
