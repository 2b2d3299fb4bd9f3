"""Training-step throughput (img/s) at 64x64, batch 128: reference-equivalent vs the project's fast path.

    python -m bench.train_throughput [--steps 20] [--warmup 5] [--variants reference,fast-fp32,ceiling] [--rounds 1] [--json out.json]

* `reference`: the plain eager step of the paper recipe as pytorch/examples/dcgan writes it:
  float32, contiguous NCHW, a DataLoader over float images, default (foreach) Adam, D's weight
  gradients computed during the G step, a `.item()` host sync every step (it prints every step).
* `fast-*`: the project's real training loop (`training.loop.train`), timed by a callback:
  preloaded uint8 data on the device, channels_last, fused Adam, D frozen during the G step,
  torch.compile, host syncs only every `log_every` steps; `fast-bf16` adds bf16 autocast.
  `fast-eager-*` are the same without torch.compile (cold compile costs 25-40 s per process).

* `ceiling`: not a training run but bench.conv_ceiling's conv ceiling measured in the same round:
  batch / the summed isolated time of every convolution of one step (see that module), the
  img/s a step would reach if nothing but its convolutions cost time.

The default variants are the FP32 ones plus the ceiling, and the bf16 ones only on hosts with
native bf16 (training.precision): elsewhere bf16 autocast is emulated and ~25x slower, and a
bf16 round would take most of an hour.

Image content does not change the cost, so all variants train on the same random uint8 images.
The first `warmup` steps (allocation, compile) are excluded; img/s = timed steps x 128 / seconds.
`--rounds R` runs the whole variant list R times, interleaved, and reports each variant's median
over its rounds' medians: on a shared or throttling host the speed drifts by tens of percent over
minutes, and interleaving keeps that drift out of the ratios. The JSON records the host (CPU
model and flags, cores, torch, load average) with the figures, and the targets' ratios per round:
fast-fp32 / reference and fast-fp32 / ceiling.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from explorer.datasets import ImageDataset
from explorer.model import DCGANConfig, Discriminator, Generator
from bench.conv_ceiling import conv_ceiling
from training.config import TrainConfig
from training.callbacks import Callback
from training.loop import train
from training.precision import host_info

BATCH, SIZE = 128, 64


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference(images_uint8: torch.Tensor, batch: int, steps: int, warmup: int, device: torch.device, **model) -> list[float]:
    """Seconds per step of the pytorch/examples-style step; `model`: other DCGANConfig fields (e.g. widths)."""
    size = images_uint8.shape[-1]
    config = DCGANConfig(image_size=size, **model)
    G, D = Generator(config).to(device), Discriminator(config).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    data = TensorDataset(images_uint8.float().div(127.5).sub(1.0))
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    times, done = [], 0
    while done < steps + warmup:
        for (real,) in loader:
            start = time.perf_counter()
            real = real.to(device)
            ones = torch.ones(batch, device=device)
            zeros = torch.zeros(batch, device=device)
            D.zero_grad()
            err_real = F.binary_cross_entropy_with_logits(D(real), ones)
            err_real.backward()
            fake = G(torch.randn(batch, config.z_dim, device=device))
            err_fake = F.binary_cross_entropy_with_logits(D(fake.detach()), zeros)
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            err_g = F.binary_cross_entropy_with_logits(D(fake), ones)
            err_g.backward()
            opt_g.step()
            _ = (err_real + err_fake).item(), err_g.item()  # pytorch/examples prints every step
            _sync(device)
            if done >= warmup:
                times.append(time.perf_counter() - start)
            done += 1
            if done >= steps + warmup:
                break
    return times


class StepTimer(Callback):
    def __init__(self, device: torch.device):
        self.device, self.stamps = device, []

    def on_step(self, state) -> None:
        _sync(self.device)
        self.stamps.append(time.perf_counter())


def fast(images_uint8: torch.Tensor, batch: int, steps: int, warmup: int, device: torch.device, amp: str, compile_: bool, out: str,
         **config) -> list[float]:
    """Seconds per step of training.loop.train (list of timed steps); `config`: other TrainConfig fields (e.g. widths)."""
    dataset = ImageDataset(images=images_uint8, spec="bench-random")
    config = TrainConfig(
        dataset="bench-random",
        out=out,
        image_size=images_uint8.shape[-1],
        batch_size=batch,
        epochs=None,
        max_steps=steps + warmup + 1,
        device=device.type,
        amp=amp,
        compile=compile_,
        channels_last=True,
        log_every=10_000,  # no log window inside the timed steps
        checkpoint_every=10_000,
        **config,
    )
    timer = StepTimer(device)
    train(config, dataset, callbacks=[timer])
    stamps = timer.stamps[warmup:]  # stamp i is the end of step i; the final step also checkpoints
    return [b - a for a, b in zip(stamps[:-2], stamps[1:-1])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--variants", help="comma-separated (default: reference, fast-eager-fp32, fast-fp32, ceiling, and the "
                   "bf16 ones where bf16 is native)")
    p.add_argument("--rounds", type=int, default=1, help="run the variant list this many times, interleaved")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=BATCH, help="small values only to check the script quickly")
    p.add_argument("--image-size", type=int, default=SIZE, choices=(32, 64, 128))
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    device = torch.device("cuda" if (args.device == "auto" and torch.cuda.is_available()) else (args.device if args.device != "auto" else "cpu"))
    batch, size = args.batch_size, args.image_size
    images = torch.randint(0, 256, (batch * 24, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out_root = os.path.join("bench", "output", "throughput")
    host = host_info()
    variants = (args.variants or "reference,fast-eager-fp32,fast-fp32,ceiling"
                + (",fast-eager-bf16,fast-bf16" if host["native_bf16"] else "")).split(",")
    per_round: dict[str, list[dict]] = {v: [] for v in variants}
    for round_index in range(args.rounds):
        for variant in variants:
            start = time.perf_counter()
            if variant == "ceiling":
                seconds = conv_ceiling(size, batch, "off", repeats=3)["conv_seconds_per_step"]
                times = [seconds]
            elif variant == "reference":
                times = reference(images, batch, args.steps, args.warmup, device)
            else:
                amp = "bf16" if variant.endswith("bf16") else "off"
                times = fast(images, batch, args.steps, args.warmup, device, amp, compile_="eager" not in variant, out=os.path.join(out_root, variant))
            median = statistics.median(times)
            row = {"img_per_s": batch / median, "img_per_s_mean": batch * len(times) / sum(times), "steps_timed": len(times),
                   "wall_s": time.perf_counter() - start}
            per_round[variant].append(row)
            print(f"[round {round_index + 1}/{args.rounds}] {variant:>18}: {row['img_per_s']:7.1f} img/s (median of {len(times)} steps; "
                  f"mean {row['img_per_s_mean']:.1f}); wall {row['wall_s']:.0f} s", flush=True)
    results = {}
    for variant, rows in per_round.items():
        results[variant] = {
            "img_per_s": statistics.median(r["img_per_s"] for r in rows),
            "img_per_s_rounds": [r["img_per_s"] for r in rows],
            "steps_timed": sum(r["steps_timed"] for r in rows),
            "wall_s": sum(r["wall_s"] for r in rows),
        }
    if "reference" in results:
        for variant, r in results.items():
            r["speedup_vs_reference"] = r["img_per_s"] / results["reference"]["img_per_s"]
            # per round, against that round's reference: the spread shows how much the host drifted
            r["speedup_rounds"] = [a["img_per_s"] / b["img_per_s"] for a, b in zip(per_round[variant], per_round["reference"])]
            spread = ", ".join(f"{x:.2f}" for x in r["speedup_rounds"])
            print(f"{variant:>18}: {r['img_per_s']:7.1f} img/s  x{r['speedup_vs_reference']:.2f} vs reference (per round: {spread})")
    if "ceiling" in results:
        for variant, r in results.items():
            r["of_ceiling_rounds"] = [a["img_per_s"] / b["img_per_s"] for a, b in zip(per_round[variant], per_round["ceiling"])]
            r["of_ceiling"] = statistics.median(r["of_ceiling_rounds"])
            if variant.startswith("fast") and variant.endswith("fp32"):
                spread = ", ".join(f"{x:.0%}" for x in r["of_ceiling_rounds"])
                print(f"{variant:>18}: {r['of_ceiling']:.0%} of the conv ceiling (per round: {spread})")
    env = {"device": str(device), "host": host, "load_after": list(os.getloadavg())}
    print(f"host: {host['cpu_model']} ({host['host_kind']}, {host['cores']} cores), torch {host['torch']}, "
          f"load average before {host['load_average']}, after {env['load_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "batch": batch, "image_size": size, "rounds": args.rounds, "variants": variants,
                       "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
