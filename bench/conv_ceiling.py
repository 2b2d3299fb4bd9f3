"""How close the training step is to this machine's convolution throughput (the ceiling behind issue 3's targets).

    python -m bench.conv_ceiling [--image-size 64] [--batch-size 128] [--amp off|bf16] [--repeats 5] [--json out.json]

1. Counts the FLOPs of one training step of the paper's net (torch.utils.flop_counter: the D step
   on a real and a fake batch, the G step through the frozen D), the same step `training.loop`
   runs.
2. Times every conv / transposed conv of G and D alone, forward + backward at its training shape
   (channels_last, batch 128), and reports its GFLOP/s: the best of these is what the conv library
   delivers on this CPU for these shapes, and nothing that keeps the math can beat it.
3. Times the bare training step (channels_last, fused Adam, D frozen in the G step) and reports
   its GFLOP/s and the img/s ceiling = best layer GFLOP/s / FLOPs per image.

Convolutions are >95 % of the step's time here (see BENCHMARKS.md), so step GFLOP/s close to the
best layer's rate means the step is conv-bound and the remaining speedups must change the math
(lower precision) or the hardware.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from explorer.model import DCGANConfig, Discriminator, Generator


def conv_layers(G: nn.Module, D: nn.Module, batch: int, z_dim: int, image_size: int) -> list[tuple[str, nn.Module, tuple]]:
    """(name, conv module, input shape) for every Conv2d/ConvTranspose2d, shapes from one forward pass."""
    found: list[tuple[str, nn.Module, tuple]] = []
    hooks = []
    for prefix, net in (("G", G), ("D", D)):
        for name, module in net.named_modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                hooks.append(module.register_forward_hook(
                    lambda m, inputs, _out, label=f"{prefix}.{name}": found.append((label, m, tuple(inputs[0].shape)))))
    with torch.no_grad():
        G(torch.zeros(batch, z_dim))
        D(torch.zeros(batch, G.config.channels, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return found


def seconds(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--amp", choices=("off", "bf16"), default="off")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    batch, fmt = args.batch_size, torch.channels_last
    dtype = torch.bfloat16 if args.amp == "bf16" else torch.float32
    config = DCGANConfig(image_size=args.image_size)
    G = Generator(config).to(memory_format=fmt)
    D = Discriminator(config).to(memory_format=fmt)

    rows = []
    for name, module, shape in conv_layers(G, D, batch, config.z_dim, args.image_size):
        layer = type(module)(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding, bias=False)
        layer = layer.to(memory_format=fmt, dtype=dtype)
        # The first D layer's input is an image (no gradient needed); every other input needs one.
        x = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt)  # every conv input is 4-d, G's z as (N, 100, 1, 1)
        x.requires_grad_(name != "D.blocks.0.0")
        grad = torch.randn_like(layer(x))

        def forward_backward(layer=layer, x=x, grad=grad):
            layer(x).backward(grad)

        with FlopCounterMode(display=False) as counter:
            forward_backward()
        flops = counter.get_total_flops()
        s = seconds(forward_backward, args.repeats)
        rows.append({"layer": name, "type": type(module).__name__, "input": list(shape), "gflop": flops / 1e9, "ms": s * 1e3, "gflops": flops / s / 1e9})
        print(f"{name:16s} {type(module).__name__:16s} in {str(list(shape)):20s} {flops / 1e9:6.1f} GFLOP  {s * 1e3:7.1f} ms  {flops / s / 1e9:6.0f} GFLOP/s", flush=True)

    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    real = torch.rand(batch, config.channels, args.image_size, args.image_size).mul(2).sub(1).contiguous(memory_format=fmt)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.amp == "bf16" else nullcontext

    def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float().view(-1), target)

    def step():  # training.loop's step without the data path and logging
        with autocast():
            fake = G(torch.randn(batch, config.z_dim))
        opt_d.zero_grad(set_to_none=True)
        with autocast():
            loss_real = bce(D(real), ones)
        loss_real.backward()
        with autocast():
            loss_fake = bce(D(fake.detach()), zeros)
        loss_fake.backward()
        opt_d.step()
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with autocast():
            loss_g = bce(D(fake), ones)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)

    with FlopCounterMode(display=False) as counter:
        step()
    step_flops = counter.get_total_flops()
    step_s = seconds(step, args.repeats)
    best = max(rows, key=lambda r: r["gflops"])
    result = {
        "amp": args.amp, "image_size": args.image_size, "batch_size": batch, "threads": torch.get_num_threads(),
        "layers": rows, "best_layer": best["layer"], "best_layer_gflops": best["gflops"],
        "step_gflop": step_flops / 1e9, "gflop_per_image": step_flops / batch / 1e9,
        "step_img_per_s": batch / step_s, "step_gflops": step_flops / step_s / 1e9,
        "ceiling_img_per_s": best["gflops"] * 1e9 / (step_flops / batch),
    }
    print(f"step: {result['step_gflop']:.1f} GFLOP ({result['gflop_per_image']:.2f} per image), {result['step_img_per_s']:.1f} img/s = "
          f"{result['step_gflops']:.0f} GFLOP/s; best layer {best['layer']} {best['gflops']:.0f} GFLOP/s -> "
          f"ceiling {result['ceiling_img_per_s']:.1f} img/s ({result['step_img_per_s'] / result['ceiling_img_per_s']:.0%} reached)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
