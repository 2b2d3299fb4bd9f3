"""Inversion quality and speed (issue 15) on held-out renders: `python -m bench.inversion [--checkpoint C] [--n 200]`.

Held-out images: the dataset named in the checkpoint's meta.json, test split (for synthetic faces a
renderer seed the training split never used: train is seed 0, test seed 1), at the model's size.
For each image:

* baseline: the best of `--random` samples G(z_seed), seeds 0..random-1, by pixel RMS;
* inversion: `explorer.invert.invert_images` in batches of `--batch-size` (the CLI's default);
* pixel RMS in [0, 1] units; the judge (the shipped eval net for the dataset, explorer/evaluation/
  eval_net.py) thresholds each attribute at 0.5 on the image and on its reconstruction, and
  agreement is the share of (image, attribute) pairs where the two match;
* time: each image's share of its batch's wall time (the CLI's `seconds`), and separately the
  latency of inverting `--latency` images one at a time (what a page with one upload waits).

Targets: median RMS <= 0.6 x the best-of-2,000 baseline's; attribute agreement >= 90 %; <= 3 s per
image (p95 <= 5 s) on 2 cores. The machine is shared: the load average before and after is
recorded, and times are upper bounds when it is above the core count.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from explorer.checkpoint import load_checkpoint
from explorer.datasets import load_dataset
from explorer.encoder import add_encoder_options, encoder_training_from, load_or_train_encoder
from explorer.evaluation.eval_net import find_eval_net, load_eval_net, predict
from explorer.fsio import atomic_write_json
from explorer.generate import generate
from explorer.images import from_uint8
from explorer.invert import InversionSettings, invert_images, project_to_shell
from explorer.latent import z_from_seeds


def cpu_description() -> dict:
    """CPU model and the vector flags that matter for torch on CPU (lscpu's 'Model name' and 'Flags')."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "amx")) or f in ("f16c",))
    return {"model": model, "cores": os.cpu_count(), "vector_flags": vector, "torch_threads": torch.get_num_threads()}


def best_random_rms(G: torch.nn.Module, targets01: torch.Tensor, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(best pixel RMS (N,), its seed (N,)) over G(z_seed) for seeds 0..count-1; images in [0, 1]."""
    flat = targets01.flatten(1).double()
    best, best_seed = torch.full((len(flat),), np.inf, dtype=torch.float64), torch.zeros(len(flat), dtype=torch.int64)
    for first in range(0, count, 500):
        seeds = list(range(first, min(first + 500, count)))
        samples = ((generate(G, z_from_seeds(seeds, G.config.z_dim)) + 1) / 2).flatten(1).double()
        rms = torch.cdist(flat, samples) / flat.shape[1] ** 0.5  # (N, chunk)
        value, index = rms.min(dim=1)
        better = value < best
        best[better], best_seed[better] = value[better], index[better] + first
    return best.numpy(), best_seed.numpy()


def attribute_agreement(net, images_a, images_b) -> tuple[float, dict[str, float], float]:
    """Share of (image, attribute) pairs where the judge's thresholded attribute is the same for a and b;
    the same per attribute; and the share of images whose every attribute agrees."""
    pa, pb = predict(net, torch.as_tensor(images_a)), predict(net, torch.as_tensor(images_b))
    if pa.attribute_probabilities is not None:
        same = (pa.attribute_probabilities >= 0.5) == (pb.attribute_probabilities >= 0.5)
        names = net.config.attribute_names
    else:  # a class dataset: the judge's predicted class is the one "attribute"
        same = (pa.class_probabilities.argmax(1) == pb.class_probabilities.argmax(1))[:, None]
        names = ["class"]
    per_attribute = {name: float(same[:, j].mean()) for j, name in enumerate(names)}
    return float(same.mean()), per_attribute, float(same.all(axis=1).mean())


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inversion", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="checkpoints/synthetic-faces-64")
    parser.add_argument("--dataset", help="held-out images (default: the checkpoint's dataset, test split)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=200, help="held-out images (default 200)")
    parser.add_argument("--random", type=int, default=2000, help="random samples in the baseline (default 2000)")
    parser.add_argument("--latency", type=int, default=20, help="images also inverted one at a time (default 20; 0 skips)")
    defaults = InversionSettings()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--perceptual-weight", type=float, default=defaults.perceptual_weight)
    parser.add_argument("--shell-band", type=float, default=defaults.shell_band)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    add_encoder_options(parser)
    parser.add_argument("--json", help="write the results here (rewritten after every batch; 'complete' says whether all are in)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    checkpoint = load_checkpoint(args.checkpoint)
    config = checkpoint.config
    spec = args.dataset or checkpoint.dataset.get("spec")
    kind = str(spec).split(":", 1)[0]
    dataset = load_dataset(f"{kind}:{args.n}" if kind == "synthetic-faces" else spec, config.image_size, config.channels, args.n, args.split)
    images = dataset.images[: args.n]
    print(f"{len(images)} held-out images from {spec} ({args.split} split); load average {load_before[0]:.1f}", flush=True)

    started = time.perf_counter()
    encoder, header = load_or_train_encoder(checkpoint, encoder_training_from(args), progress_bar=True)
    encoder_seconds = time.perf_counter() - started
    print(f"encoder {'trained' if header['trained_now'] else 'cached'} ({encoder_seconds:.0f} s): {header['quality']}", flush=True)

    targets01 = (from_uint8(images) + 1) / 2
    started = time.perf_counter()
    random_rms, random_seed = best_random_rms(checkpoint.generator, targets01, args.random)
    print(f"best of {args.random} random samples: median RMS {np.median(random_rms):.4f} ({time.perf_counter() - started:.0f} s)", flush=True)

    settings = InversionSettings(
        steps=args.steps, lr=args.lr, perceptual_weight=args.perceptual_weight, shell_band=args.shell_band, batch_size=args.batch_size
    )
    judge = None
    net_dir = find_eval_net(str(spec), config.image_size, config.channels)
    if net_dir is not None:
        judge, _ = load_eval_net(net_dir)
    # Batch by batch, so that a run cut short (a shared machine) still leaves its figures so far in --json.
    parts: dict[str, list] = {name: [] for name in ("rms", "start_rms", "perceptual", "seconds", "cpu", "reconstruction", "start")}
    latency = latency_cpu = np.zeros(0)
    total_seconds = total_cpu = 0.0
    for first in range(0, len(images), settings.batch_size):
        batch = images[first : first + settings.batch_size]
        began, cpu_began = time.perf_counter(), time.process_time()
        result = invert_images(checkpoint, batch, settings, encoder)
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        total_seconds, total_cpu = total_seconds + wall, total_cpu + cpu
        for name in ("rms", "start_rms", "perceptual", "seconds"):
            parts[name].append(getattr(result, name))
        parts["cpu"].append(np.full(len(batch), cpu / len(batch)))
        parts["reconstruction"].append(result.reconstruction)
        with torch.no_grad():
            parts["start"].append(project_to_shell(encoder(from_uint8(batch)), settings.shell_band))
        done = first + len(batch)
        ratio = np.concatenate(parts["rms"]) / random_rms[:done]
        print(
            f"inverted {done}/{len(images)}: median RMS {np.median(np.concatenate(parts['rms'])):.4f}, median ratio to best random "
            f"{np.median(ratio):.3f}; this batch {wall / len(batch):.2f} s/image wall, {cpu / len(batch):.2f} s/image CPU",
            flush=True,
        )
        report = _report(args, checkpoint, spec, settings, header, encoder_seconds, load_before, images[:done], random_rms[:done],
                         random_seed[:done], parts, judge, total_seconds, total_cpu, latency, latency_cpu, done == len(images))
        _write(args.json, report)

    if args.latency:
        times, cpu_times = [], []
        for i in range(min(args.latency, len(images))):
            began, cpu_began = time.perf_counter(), time.process_time()
            invert_images(checkpoint, images[i : i + 1], settings, encoder)
            times.append(time.perf_counter() - began)
            cpu_times.append(time.process_time() - cpu_began)
        latency, latency_cpu = np.array(times), np.array(cpu_times)
        print(
            f"one image at a time: p50 {np.median(latency):.2f} s, p95 {percentile(latency, 95):.2f} s "
            f"(CPU time p50 {np.median(latency_cpu):.2f} s)",
            flush=True,
        )
        report = _report(args, checkpoint, spec, settings, header, encoder_seconds, load_before, images, random_rms, random_seed,
                         parts, judge, total_seconds, total_cpu, latency, latency_cpu, True)
        _write(args.json, report)
    if report["attribute_agreement"] is not None:
        print(
            f"judge's attributes agree on {report['attribute_agreement']:.1%} (encoder start {report['attribute_agreement_encoder_start']:.1%}, "
            f"best random sample {report['attribute_agreement_best_random']:.1%})",
            flush=True,
        )
    print(json.dumps({k: report[k] for k in ("rms", "seconds_per_image_batched", "cpu_seconds_per_image_batched", "seconds_single_image", "cpu")}, indent=1))
    return 0


def _write(path: str | None, report: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, report)


def _report(args, checkpoint, spec, settings, header, encoder_seconds, load_before, images, random_rms, random_seed, parts, judge,
            total_seconds, total_cpu, latency, latency_cpu, complete) -> dict:
    """The JSON record of the images inverted so far."""
    config = checkpoint.config
    rms, start_rms = np.concatenate(parts["rms"]), np.concatenate(parts["start_rms"])
    perceptual, per_image, cpu = np.concatenate(parts["perceptual"]), np.concatenate(parts["seconds"]), np.concatenate(parts["cpu"])
    ratio = rms / random_rms
    agreement = per_attribute = random_agreement = start_agreement = all_agree = None
    if judge is not None:
        recon = torch.as_tensor(np.concatenate(parts["reconstruction"]))
        recon = recon.permute(0, 3, 1, 2) if recon.dim() == 4 else recon[:, None]
        agreement, per_attribute, all_agree = attribute_agreement(judge, images, recon)
        best_random = generate(checkpoint.generator, z_from_seeds(random_seed.tolist(), config.z_dim))
        random_agreement = attribute_agreement(judge, images, best_random)[0]
        start_agreement = attribute_agreement(judge, images, generate(checkpoint.generator, torch.cat(parts["start"])))[0]
    return {
        "complete": complete,
        "command": "python -m bench.inversion " + " ".join(sys.argv[1:]),
        "checkpoint": str(checkpoint.path),
        "generator_sha256": checkpoint.meta["files"]["generator"]["sha256"],
        "dataset": str(spec),
        "split": args.split,
        "images": len(images),
        "settings": asdict(settings),
        "cpu": cpu_description(),
        "load_average_before": load_before,
        "load_average_now": os.getloadavg(),
        "encoder": {"trained_now": header["trained_now"], "seconds_this_run": encoder_seconds, **header.get("quality", {})},
        "random_samples": args.random,
        "rms": {
            "inversion_median": float(np.median(rms)),
            "encoder_start_median": float(np.median(start_rms)),
            "best_random_median": float(np.median(random_rms)),
            "ratio_of_medians": float(np.median(rms) / np.median(random_rms)),
            "median_per_image_ratio": float(np.median(ratio)),
            "share_of_images_at_or_below_0.6": float((ratio <= 0.6).mean()),
        },
        "perceptual_median": float(np.nanmedian(perceptual)) if np.isfinite(perceptual).any() else None,
        "attribute_agreement": agreement,
        "attribute_agreement_all_attributes_per_image": all_agree,
        "attribute_agreement_per_attribute": per_attribute,
        "attribute_agreement_best_random": random_agreement,
        "attribute_agreement_encoder_start": start_agreement,
        "seconds_per_image_batched": {"median": float(np.median(per_image)), "p95": percentile(per_image, 95), "max": float(per_image.max())},
        "seconds_total": total_seconds,
        # CPU time of this process (all its threads): on an idle 2-core machine the wall time is about this / 2 at best
        "cpu_seconds_per_image_batched": {"median": float(np.median(cpu)), "p95": percentile(cpu, 95), "total": total_cpu},
        "seconds_single_image": {
            "p50": percentile(latency, 50), "p95": percentile(latency, 95), "cpu_p50": percentile(latency_cpu, 50),
            "cpu_p95": percentile(latency_cpu, 95), "n": len(latency),
        },
    }


if __name__ == "__main__":
    raise SystemExit(main())
