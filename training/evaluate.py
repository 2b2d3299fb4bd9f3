"""`python -m training.evaluate --checkpoint PATH [--what fid,probe,arithmetic,neighbors,smoothness]`.

Reproduces the DCGAN paper's experiments on a checkpoint and measures its samples:

  fid         Fréchet distance of samples to real images on the eval net's features (or
              Inception's, --fid-net inception, online only), the real-vs-real floor beside it,
              and with --snapshots the FID of every snapshot of a run directory (FID vs step)
  probe       the paper's Tables 1-2: an L2-SVM on 100 labels per class over discriminator
              features vs raw pixels, 1-layer k-means features and a random-weight D
  arithmetic  "smiling woman - neutral woman + neutral man" and friends with k = 1, 3, 10
              exemplars, z-space vs pixel-space, scored by the eval net (synthetic faces); exemplars
              picked by the probe, by the eval net (oracle), or real held-out pictures picked by their
              own labels and inverted (real; --real-images 0 skips it: inverting them takes minutes)
  neighbors   nearest training images to samples in pixels and D features; duplicate rate
  smoothness  frame-to-frame change along lerp vs slerp 9-point walks
  directions  the explorer's attribute sliders (conditional, raw, SVM): moved +3 from 200 seeds without
              the attribute, how often it appears, how often other attributes change, skin-tone drift;
              on synthetic faces also the renderer's own edit, judged the same way (a perfect slider)

Results go into the checkpoint's meta.json under "evaluation" (unless --no-write), figures into
<checkpoint>/evaluation/, and a table is printed. Every number is a function of the checkpoint,
the dataset and --seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from explorer.checkpoint import CheckpointError, atomic_write_json, load_checkpoint, read_meta
from explorer.datasets import DatasetError, ImageDataset, load_dataset
from explorer.encoder import add_encoder_options, encoder_training_from
from explorer.evaluation.clean_face import CLEAN_NET_SUFFIX, is_clean
from explorer.evaluation.directions_eval import DIRECTIONS_SEED_OFFSET, MAX_SEEDS_SCANNED
from explorer.evaluation.eval_net import EVALNET_META, default_eval_net_dir, find_eval_net, load_eval_net
from explorer.images import grid, save_png
from explorer.latent import MAX_SEED
from explorer.rundir import EVALUATION_DIR

WHAT = ("fid", "probe", "arithmetic", "directions", "neighbors", "smoothness")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint folder, run directory or snapshot")
    p.add_argument("--what", default=",".join(WHAT), help=f"comma-separated subset of {','.join(WHAT)} (default all)")
    p.add_argument("--dataset", help="dataset SPEC (default: the one in meta.json; needed for folder:/celeba: paths on another machine)")
    p.add_argument("--eval-net", help="eval net folder, or 'inception' for Inception FID (default: checkpoints/eval-nets/KIND-SIZE)")
    p.add_argument("--clean-net", help="arithmetic: the single-clean-face checker (default: checkpoints/eval-nets/KIND-SIZE-clean)")
    p.add_argument("--fid-samples", type=int, default=5000, help="generated and real images per FID (default 5000)")
    p.add_argument(
        "--snapshots", nargs="?", const="", metavar="RUN",
        help="FID of every snapshot too (FID vs step): of --checkpoint's run directory, or of RUN (e.g. the run an exported checkpoint came from)",
    )
    p.add_argument("--draws", type=int, default=10, help="probe: random label draws (default 10)")
    p.add_argument("--labels-per-class", type=int, default=100, help="probe: labelled images per class (default 100)")
    p.add_argument("--trials", type=int, default=20, help="arithmetic: trials per expression and k (default 20)")
    p.add_argument("--ks", default="1,3,10", help="arithmetic: exemplars per concept (default 1,3,10)")
    p.add_argument(
        "--real-images", type=int, default=2000,
        help="arithmetic: held-out (test split) pictures the real exemplars are picked from; 0 skips the real source (default 2000)",
    )
    add_encoder_options(p)  # arithmetic's real source inverts pictures: the encoder it trains when none is cached
    p.add_argument("--neighbors-samples", type=int, default=1000, help="neighbors: generated samples (default 1000)")
    p.add_argument("--walks", type=int, default=10, help="smoothness: 9-point walks per mode (default 10)")
    p.add_argument("--direction-seeds", type=int, default=200, help="directions: seeds without the attribute per direction (default 200)")
    p.add_argument("--direction-seed-offset", type=int, default=DIRECTIONS_SEED_OFFSET,
                   help=f"directions: the first seed scanned (default {DIRECTIONS_SEED_OFFSET:,}; another value gives an independent sample)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-write", action="store_true", help="print only; leave meta.json and figures alone")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


def parse_what(text: str) -> list[str]:
    chosen = [w.strip() for w in text.split(",") if w.strip()]
    unknown = sorted(set(chosen) - set(WHAT))
    if unknown or not chosen:
        raise ValueError(f"--what takes a comma-separated subset of {','.join(WHAT)}; got {text!r}")
    return [w for w in WHAT if w in chosen]


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise ValueError(f"--ks takes comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"--ks values must be >= 1, got {text!r}")
    return ks


def _load_split(spec: str, image_size: int, channels: int, split: str) -> ImageDataset | None:
    try:
        return load_dataset(spec, image_size=image_size, channels=channels, split=split)
    except DatasetError as exc:
        if split != "train" and "split" in str(exc):
            return None  # the reader has no such split (folders, CelebA without a partition file)
        raise


def _snapshot_dirs(path: Path) -> list[Path]:
    snapshots = path / "snapshots"
    return sorted(p for p in snapshots.iterdir() if (p / "meta.json").is_file()) if snapshots.is_dir() else []


def run_fid(args, checkpoint, train, net, say) -> dict:
    from explorer.evaluation.fid import FID, disjoint_real_sets, generated_uint8

    real_a, real_b = disjoint_real_sets(train.images, args.fid_samples, seed=args.seed)
    fid = FID(real_a, net)
    n = real_a.shape[0]
    say(f"FID: {n} real vs {n} generated images")
    result = {"samples": n, "feature_net": args.feature_net_name, "fid": fid.score(generated_uint8(checkpoint.generator, n)),
              "real_vs_real": fid.score(real_b), "feature_net_test_accuracy": getattr(args, "eval_net_accuracy", None)}
    if args.snapshots is not None:
        run = Path(args.snapshots or args.checkpoint)
        snapshots = _snapshot_dirs(run)
        if not snapshots:
            say(f"no snapshots under {run / 'snapshots'}: FID vs step skipped")
        result["by_step_run"] = str(run)
        # The same kind of generator as the evaluated checkpoint: an EMA with decay 0.999 lags the
        # raw weights by ~1000 steps, so mixing kinds would make the curve disagree with its end point.
        prefer_ema = checkpoint.generator_kind == "ema"
        result["by_step_generator"] = "ema" if prefer_ema else "raw"
        by_step = []
        for snapshot in snapshots:
            loaded = load_checkpoint(snapshot, prefer_ema=prefer_ema, load_discriminator=False)
            score = fid.score(generated_uint8(loaded.generator, n))
            say(f"  step {loaded.step}: FID {score:.4f}")
            by_step.append({"step": loaded.step, "fid": score, "ema": loaded.uses_ema})
        result["by_step"] = by_step
    return result


def run_probe(args, checkpoint, train, say) -> dict:
    from explorer.evaluation.representation import format_table, representation_table

    if train.labels is None:
        return {"skipped": f"{train.spec} has no class labels: the paper's SVM protocol classifies classes"}
    test = _load_split(args.dataset, checkpoint.config.image_size, checkpoint.config.channels, "test")
    if test is None:
        return {"skipped": f"{train.spec} has no test split to score the SVM on"}
    result = representation_table(checkpoint.discriminator, train, test, labels_per_class=args.labels_per_class,
                                  draws=args.draws, seed=args.seed, progress=say)
    result["table"] = format_table(result)
    return result


def run_arithmetic(args, checkpoint, train, net, figures: Path | None, say) -> dict:
    from explorer.evaluation.arithmetic_eval import SELECTIONS, evaluate_arithmetic, format_table

    if train.attributes is None or not train.factor_names or "yaw" not in train.factor_names:
        return {"skipped": f"{train.spec} has no ground-truth attributes and yaw: arithmetic is measured on synthetic-faces"}
    if not net.config.attribute_names:
        return {"skipped": "the eval net has no attribute heads to judge results with"}
    clean = None
    folder = Path(args.clean_net) if args.clean_net else default_eval_net_dir(args.dataset, checkpoint.config.image_size)
    folder = folder if args.clean_net else folder.with_name(folder.name + CLEAN_NET_SUFFIX)
    if (folder / EVALNET_META).is_file():
        checker, _ = load_eval_net(folder)
        clean = lambda images: is_clean(checker, images)  # noqa: E731
        say(f"arithmetic: results must pass the single-clean-face check of {folder}")
    else:
        say(f"arithmetic: no clean-face checker at {folder} (python -m training.eval_net --task clean-face): pixel blends count unchecked")
    real = _real_exemplars(args, checkpoint, say)
    evaluation = evaluate_arithmetic(checkpoint.generator, checkpoint.discriminator, train, net, ks=parse_ks(args.ks),
                                     trials=args.trials, seed=args.seed, progress=say, clean=clean, real=real,
                                     selections=SELECTIONS if real is not None else tuple(s for s in SELECTIONS if s != "real"))
    if figures is not None:
        for old in figures.glob("arithmetic-*.png"):
            old.unlink()  # figures of an earlier run with other k or expressions
        for name in {key[0] for key in evaluation.figures}:
            # One mosaic per expression (trial 0): a row per (selection, k): G(Y), G(Y on the shell), pixel result.
            rows = [(sel, k) for (n, sel, k) in evaluation.figures if n == name]
            cells = [evaluation.figures[(name, sel, k)] for sel, k in rows]
            mosaic = torch.stack([image for c in cells for image in (c["z"][4], c["z_shell"][4], c["pixel"])])
            save_png(grid(mosaic, nrow=3), figures / f"arithmetic-{name}.png")
            # The paper's figure: the 3x3 grid of G(Y) and its jittered neighbours, probe-picked exemplars, k = 3 when run.
            paper = ("probe", 3) if ("probe", 3) in rows else rows[0]
            save_png(grid(evaluation.figures[(name, *paper)]["z"], nrow=3), figures / f"arithmetic-{name}-grid-{paper[0]}-k{paper[1]}.png")
    results = evaluation.results
    results["table"] = format_table(results)
    return results


def _real_exemplars(args, checkpoint, say):
    """The "real" exemplar source: --real-images held-out pictures, inverted on demand; None when skipped."""
    from explorer.encoder import load_or_train_encoder
    from explorer.evaluation.arithmetic_eval import real_exemplars_from
    from explorer.invert import invert_images

    if args.real_images < 1:
        return None
    config = checkpoint.config
    try:
        test = load_dataset(args.dataset, image_size=config.image_size, channels=config.channels, max_images=args.real_images, split="test")
    except DatasetError as exc:
        say(f"arithmetic: no held-out pictures for real exemplars ({exc})")
        return None
    encoder, header = load_or_train_encoder(checkpoint, encoder_training_from(args), progress_bar=False)
    say(f"arithmetic: real exemplars from {len(test)} held-out pictures, inverted (encoder {'trained' if header['trained_now'] else 'cached'})")
    return real_exemplars_from(test, lambda images: torch.from_numpy(invert_images(checkpoint, images, encoder=encoder).z))


def run_directions(args, checkpoint, train, net, say) -> dict:
    from explorer.evaluation.arithmetic_eval import ground_truth
    from explorer.evaluation.directions_eval import DEFAULT_ATTRIBUTES, evaluate_directions, format_table, skin_tone_judge
    from explorer.evaluation.slider_floor import has_renderer, renderer_edit_floor
    from explorer.probe import attribute_dependence
    from explorer.analysis import load_or_compute_directions, load_or_fit_probe

    if train.attributes is None or not net.config.attribute_names:
        return {"skipped": f"{train.spec} has no attributes for the eval net to judge: directions are measured on labelled faces"}
    say("directions: the explorer's sliders (read from, or computed into, the checkpoint's analysis cache)")
    directions = load_or_compute_directions(checkpoint, train, seed=0, probe=lambda: load_or_fit_probe(checkpoint, train, seed=0))
    skin, skin_std = skin_tone_judge(net, train)
    attributes = [a for a in DEFAULT_ATTRIBUTES if a in net.config.attribute_names]
    results = evaluate_directions(
        checkpoint.generator, directions, judge=lambda images: ground_truth(net, images), skin=skin, skin_std=skin_std,
        dependence=attribute_dependence(train.attributes.numpy(), train.attribute_names), attributes=attributes,
        n=args.direction_seeds, progress=say, seed_offset=args.direction_seed_offset,
    )
    if has_renderer(train.spec):
        say("directions: the renderer's own edits, judged the same way (what a perfect slider scores)")
        for attribute, floor in renderer_edit_floor(net, attributes, image_size=checkpoint.config.image_size).items():
            results[attribute]["renderer_edit"] = floor  # also beside a skipped slider: it does not depend on G
    results["table"] = format_table(results)
    return results


def run_neighbors(args, checkpoint, train, figures: Path | None, say) -> dict:
    from explorer.evaluation.memorization import memorization, neighbour_figure_rows

    held = _load_split(args.dataset, checkpoint.config.image_size, checkpoint.config.channels, "test")
    if held is None:
        return {"skipped": f"{train.spec} has no test split: held-out images calibrate what 'too close' means"}
    result = memorization(checkpoint.generator, checkpoint.discriminator, train.images, held.images,
                          n=args.neighbors_samples, seed=args.seed, progress=say)
    if figures is not None:
        rows = neighbour_figure_rows(result, train.images)
        mosaic = grid(rows, nrow=rows.shape[0] // 8)  # a row per sample: it, then k pixel and k D-feature neighbours
        scale = max(1, 64 // checkpoint.config.image_size)  # 32 px images shown at 2x, nearest neighbour
        save_png(mosaic.repeat(scale, axis=0).repeat(scale, axis=1), figures / "neighbors.png")
    return result.summary


def run_smoothness(args, checkpoint, say) -> dict:
    from explorer.evaluation.smoothness import walk_smoothness

    say(f"smoothness: {args.walks} lerp and slerp walks")
    return walk_smoothness(checkpoint.generator, walks=args.walks)


def summary_lines(results: dict) -> list[str]:
    lines = []
    if "fid" in results and "fid" in results["fid"]:
        r = results["fid"]
        lines.append(f"FID ({r['feature_net']}, n={r['samples']}): {r['fid']:.4f}   real-vs-real floor: {r['real_vs_real']:.4f}")
        for row in r.get("by_step", []):
            lines.append(f"  step {row['step']:>7}: {row['fid']:.4f}")
    for key in ("probe", "arithmetic", "directions"):
        if key in results:
            lines.append(results[key].get("table") or f"{key}: skipped ({results[key].get('skipped')})")
    if "neighbors" in results:
        r = results["neighbors"]
        if "skipped" in r:
            lines.append(f"neighbors: skipped ({r['skipped']})")
        else:
            lines.append(
                f"nearest training image, median RMS: generated {r['pixel_rms_median']['generated']:.4f}, "
                f"held-out real {r['pixel_rms_median']['held_out']:.4f}; duplicate rate {r['duplicate_rate']:.1%} "
                f"(held-out-like: {r['expected_duplicate_rate_if_like_held_out']:.0%}); D-feature duplicate rate "
                f"{r['feature_duplicate_rate']:.1%}; near copies (RMS < {r['near_copy_rms']}): generated "
                f"{r['near_copy_rate']['generated']:.1%}, held-out {r['near_copy_rate']['held_out']:.1%}"
            )
    if "smoothness" in results:
        for mode in ("lerp", "slerp"):
            r = results["smoothness"][mode]
            lines.append(f"{mode:5s} walks: mean step {r['mean']:.4f}, max {r['max']:.4f}, max/mean {r['max_over_mean']:.2f}, "
                         f"|z|/shell mean {r['z_norm_mean']:.3f} (min {r['z_norm_min']:.3f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        what = parse_what(args.what)
        parse_ks(args.ks)
        encoder_training_from(args)
        if args.real_images < 0:
            raise ValueError("--real-images must be >= 0")
    except ValueError as exc:
        parser.error(str(exc))
    for name in ("fid_samples", "draws", "labels_per_class", "trials", "neighbors_samples", "walks", "direction_seeds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.fid_samples < 2:
        parser.error("--fid-samples must be >= 2")
    if not 0 <= args.direction_seed_offset <= MAX_SEED - MAX_SEEDS_SCANNED:
        parser.error(f"--direction-seed-offset must be in [0, {MAX_SEED - MAX_SEEDS_SCANNED}]")
    if args.clean_net and not (Path(args.clean_net) / EVALNET_META).is_file():
        parser.error(f"--clean-net {args.clean_net}: not an eval net folder (no {EVALNET_META})")
    started = time.perf_counter()
    say = lambda message: print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)  # noqa: E731
    try:
        snapshot, meta = read_meta(args.checkpoint)
        checkpoint = load_checkpoint(args.checkpoint)
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if checkpoint.discriminator is None and {"probe", "arithmetic", "directions", "neighbors"} & set(what):
        print("error: this checkpoint has no discriminator; probe, arithmetic, directions and neighbors read its features", file=sys.stderr)
        return 2
    args.dataset = args.dataset or (meta.get("dataset") or {}).get("spec")
    if not args.dataset:
        print("error: meta.json names no dataset; pass --dataset SPEC", file=sys.stderr)
        return 2
    config = checkpoint.config

    net = None
    args.feature_net_name = None
    if {"fid", "arithmetic", "directions"} & set(what):
        if args.eval_net == "inception":
            if {"arithmetic", "directions"} & set(what):
                print("error: arithmetic and directions need the eval net's attribute heads; --eval-net inception only serves FID", file=sys.stderr)
                return 2
            net, args.feature_net_name = "inception", "inception-v3 pool3 (2048-d)"
        else:
            folder = Path(args.eval_net) if args.eval_net else find_eval_net(args.dataset, config.image_size, config.channels)
            if folder is None:
                print(
                    f"error: no eval net for {args.dataset} at {config.image_size} px, {config.channels} channel(s). Train one with\n"
                    f"  python -m training.eval_net --dataset {args.dataset} --image-size {config.image_size}\n"
                    "or pass --eval-net DIR (or --eval-net inception for FID online).", file=sys.stderr,
                )
                return 2
            try:
                net, info = load_eval_net(folder)
            except CheckpointError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if (net.config.image_size, net.config.channels) != (config.image_size, config.channels):
                print(f"error: eval net {folder} reads {net.config.channels}x{net.config.image_size} px images; "
                      f"the checkpoint makes {config.channels}x{config.image_size}", file=sys.stderr)
                return 2
            args.feature_net_name = f"eval net {folder.name}"
            args.eval_net_accuracy = {k: round(v, 4) for k, v in info.accuracy.items()}
    try:
        say(f"loading {args.dataset} at {config.image_size} px")
        train = load_dataset(args.dataset, image_size=config.image_size, channels=config.channels, split="train")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    figures = None if args.no_write else snapshot / EVALUATION_DIR
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    results: dict = {}
    for item in what:
        t0 = time.perf_counter()
        if item == "fid":
            results[item] = run_fid(args, checkpoint, train, net, say)
        elif item == "probe":
            results[item] = run_probe(args, checkpoint, train, say)
        elif item == "arithmetic":
            results[item] = run_arithmetic(args, checkpoint, train, net, figures, say)
        elif item == "directions":
            results[item] = run_directions(args, checkpoint, train, net, say)
        elif item == "neighbors":
            results[item] = run_neighbors(args, checkpoint, train, figures, say)
        elif item == "smoothness":
            results[item] = run_smoothness(args, checkpoint, say)
        results[item]["seconds"] = round(time.perf_counter() - t0, 1)
        say(f"{item} done in {results[item]['seconds']} s")

    print("\n".join(["", *summary_lines(results)]))
    record = {"evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seed": args.seed,
              "dataset": args.dataset, "generator": checkpoint.generator_kind, **results}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    if not args.no_write:
        # Merge: evaluating only `fid` keeps an earlier `probe` result.
        _, fresh = read_meta(snapshot)
        evaluation = dict(fresh.get("evaluation") or {})
        evaluation.update(record)
        fresh["evaluation"] = evaluation
        atomic_write_json(snapshot / "meta.json", fresh)
        print(f"\nwrote the results into {snapshot / 'meta.json'} (\"evaluation\") and figures into {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
