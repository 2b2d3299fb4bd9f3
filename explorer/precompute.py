"""Precompute a checkpoint's directions, feature map and inversion encoder into <checkpoint>/analysis/.

    python -m explorer.precompute CHECKPOINT [--n-real 5000] [--n-fake 5000] [--seed 0] [--max-images 30000] [--method umap]
                                             [--encoder-pairs 16384] [--encoder-epochs 6] [--no-encoder]

The explorer's pages then only read .npz files (directions, feature map, attribute probe): no probe fitting, no sampling and no numba
compile (umap-learn's ~7 s first-call cost, ~35 s with its own neighbour search) in a request path. The dataset is the one named in
the checkpoint's meta.json, loaded at the checkpoint's image size and channel count. When it is not
available on this machine the run goes on without it and says so: the feature map then shows
generated images only, and there are no attribute/class directions.

The inversion encoder (`explorer.encoder`, image -> starting z for `explorer.invert`) needs only the
generator: it is trained on the generator's own samples (minutes on 2 CPU cores) and cached as
safetensors beside the rest.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time

from explorer.checkpoint import CheckpointError, load_checkpoint
from explorer.datasets import DatasetError, load_dataset
from explorer.encoder import add_encoder_options, encoder_training_from, load_or_train_encoder
from explorer.probe import Probe
from explorer.real_exemplars import unknown_data_message
from explorer.analysis import (
    METHODS,
    feature_map_cache_path,
    load_or_build_feature_map,
    load_or_compute_directions,
    load_or_fit_probe,
)

DEFAULT_MAX_IMAGES = 30000  # the probe and the map sample from these; decoding all of CelebA would take minutes


def _print_progress(fraction: float, message: str) -> None:
    print(f"  [{fraction:4.0%}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.precompute", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint directory (holds meta.json) or a training run directory")
    parser.add_argument("--n-real", type=int, default=5000, help="dataset images in the feature map (default 5000)")
    parser.add_argument("--n-fake", type=int, default=5000, help="generated images in the feature map (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="first seed of the generated images, and the sampling seed")
    parser.add_argument(
        "--max-images", type=int, default=DEFAULT_MAX_IMAGES, help=f"dataset images loaded (default {DEFAULT_MAX_IMAGES})"
    )
    parser.add_argument("--method", choices=METHODS, default="umap", help="feature map layout; pca skips UMAP (default umap)")
    add_encoder_options(parser)
    parser.add_argument("--no-encoder", action="store_true", help="skip the inversion encoder")
    args = parser.parse_args(argv)
    try:
        training = encoder_training_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = checkpoint.dataset.get("spec")
    dataset = None
    try:
        if not spec:
            raise DatasetError("meta.json names no dataset")
        config = checkpoint.config
        dataset = load_dataset(spec, image_size=config.image_size, channels=config.channels, max_images=args.max_images)
        print(f"dataset {spec}: {len(dataset)} images")
    except DatasetError as exc:
        reason = unknown_data_message(checkpoint) or f"the training dataset {spec!r} is not available on this machine ({exc})."
        print(
            f"warning: {reason}\n  The feature map will show generated images only, and there will be no attribute/class directions.",
            file=sys.stderr,
        )

    labelled = dataset is not None and (dataset.attributes is not None or dataset.labels is not None)

    @functools.cache
    def probe() -> Probe | None:
        """Read from, or fitted into, the cache, then shared by the directions and the feature map."""
        if not labelled or checkpoint.discriminator is None:
            return None
        start = time.perf_counter()
        fitted = load_or_fit_probe(checkpoint, dataset, seed=args.seed)
        accuracy = ", ".join(f"{name} {acc:.0%}" for name, acc in fitted.accuracy.items())
        print(f"probe ready in {time.perf_counter() - start:.1f} s; held-out accuracy: {accuracy}")
        return fitted

    probe()  # cached too: the app's auto-fill and map colouring then never fit one
    start = time.perf_counter()
    directions = load_or_compute_directions(checkpoint, dataset, seed=args.seed, probe=probe, progress=_print_progress)
    print(f"{len(directions)} directions in {time.perf_counter() - start:.1f} s")
    for name, reason in directions.skipped.items():
        print(f"  no direction for {name}: {reason}")

    if not args.no_encoder:
        start = time.perf_counter()
        _, header = load_or_train_encoder(checkpoint, training, progress=_print_progress, progress_bar=False)
        quality = header["quality"]
        print(
            f"inversion encoder {'trained' if header['trained_now'] else 'cached'} in {time.perf_counter() - start:.1f} s; "
            f"held-out samples: z MSE {quality['z_mse']:.3f}, pixel RMS of G(E(x)) {quality['pixel_rms_median']:.4f}"
        )

    if checkpoint.discriminator is None:
        print("warning: the checkpoint has no discriminator, so there is no feature map", file=sys.stderr)
        return 0
    start = time.perf_counter()
    feature_map = load_or_build_feature_map(
        checkpoint, dataset, args.n_real, args.n_fake, args.seed, args.method, probe, _print_progress
    )
    print(
        f"feature map of {int(feature_map.is_real.sum())} real and {int((~feature_map.is_real).sum())} generated images "
        f"in {time.perf_counter() - start:.1f} s"
    )
    folder = feature_map_cache_path(checkpoint, args.n_real, args.n_fake, args.seed, args.method).parent
    print(f"analysis files in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
