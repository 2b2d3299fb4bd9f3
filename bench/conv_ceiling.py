"""The training step's convolution ceiling on this host: how fast a step could be if only its convs cost time.

    python -m bench.conv_ceiling [--image-size 64] [--batch-size 128] [--amp off|bf16] [--repeats 5] [--json out.json]

The ceiling (what BENCHMARKS.md's ">= 85 % of the conv ceiling" target means):

    ceiling img/s = batch / (summed isolated time of every convolution the training step runs,
                             each timed alone at its training shape and with the gradients the step needs)

One step of training.loop runs each conv of D three times and each conv of G once:

* D on the real batch and D on the fake batch: forward + backward with weight gradients (and input
  gradients, except for D's first layer, whose input is an image);
* the G step: D forward + backward with input gradients only (D's weights are frozen), then G's
  backward: every G conv forward + backward with weight gradients (and input gradients except for
  G's first layer, whose input is z).

Each of these (layer, gradient set) units is timed alone, forward + backward, channels_last, median
of `repeats`; the sum is a lower bound on any step that keeps the math, since batch norm,
activations, losses and Adam all come on top. A step at 85 % of this ceiling spends <= 15 % of its
time outside the convolutions. (The earlier ceiling, "every FLOP at the best layer's GFLOP/s", is
still printed as `flop_bound_img_per_s` for comparison: no step reaches it, because the 3-channel
and 1x1 layers run at a fraction of the big layers' rate.)

Also reported: the step's FLOPs (torch.utils.flop_counter), each unit's GFLOP/s, and the bare step
(channels_last, fused Adam, D frozen in the G step, no data path) for the step/ceiling ratio.
The JSON records the host (CPU model and flags, cores, torch) with the figures.
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
from training.precision import host_info


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


def step_units(layers: list[tuple[str, nn.Module, tuple]]) -> list[tuple[str, nn.Module, tuple, bool, bool, int]]:
    """(name, module, input shape, input grad?, weight grad?, times per step) of every conv in one training step."""
    units = []
    for index, (name, module, shape) in enumerate(layers):
        first = index == 0 or name.split(".")[0] != layers[index - 1][0].split(".")[0]  # z or the image
        if name.startswith("G."):
            units.append((name, module, shape, not first, True, 1))
        else:
            units.append((name, module, shape, not first, True, 2))  # D on real, D on fake
            units.append((name, module, shape, True, False, 1))  # the G step through the frozen D
    return units


def seconds(fn, repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_units(layers, dtype: torch.dtype, repeats: int, verbose: bool = False) -> list[dict]:
    """Each step unit alone: forward + backward at its shape, channels_last; ms, GFLOP and GFLOP/s."""
    fmt = torch.channels_last
    rows = []
    for name, module, shape, input_grad, weight_grad, count in step_units(layers):
        layer = type(module)(module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding, bias=False)
        layer = layer.to(memory_format=fmt, dtype=dtype).requires_grad_(weight_grad)
        x = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt).requires_grad_(input_grad)  # G's z as (N, 100, 1, 1)
        grad = torch.randn_like(layer(x))

        def forward_backward(layer=layer, x=x, grad=grad):
            layer(x).backward(grad)

        with FlopCounterMode(display=False) as counter:
            forward_backward()
        flops = counter.get_total_flops()
        s = seconds(forward_backward, repeats)
        grads = "+".join(g for g, on in (("dx", input_grad), ("dw", weight_grad)) if on)
        rows.append({"layer": name, "type": type(module).__name__, "input": list(shape), "grads": grads, "per_step": count,
                     "gflop": flops / 1e9, "ms": s * 1e3, "gflops": flops / s / 1e9})
        if verbose:
            print(f"{name:16s} {grads:6s} x{count} in {str(list(shape)):20s} {flops / 1e9:6.1f} GFLOP  {s * 1e3:7.1f} ms  "
                  f"{flops / s / 1e9:6.0f} GFLOP/s", flush=True)
    return rows


def conv_ceiling(image_size: int = 64, batch: int = 128, amp: str = "off", repeats: int = 5, verbose: bool = False) -> dict:
    """The ceiling (img/s) and its units; see the module docstring."""
    torch.manual_seed(0)
    config = DCGANConfig(image_size=image_size)
    G, D = Generator(config), Discriminator(config)
    units = time_units(conv_layers(G, D, batch, config.z_dim, image_size), torch.bfloat16 if amp == "bf16" else torch.float32,
                       repeats, verbose)
    conv_s = sum(u["ms"] * u["per_step"] for u in units) / 1e3
    return {"conv_seconds_per_step": conv_s, "ceiling_img_per_s": batch / conv_s, "units": units}


def bare_step(image_size: int, batch: int, amp: str):
    """training.loop's step without the data path and logging: (step function, its FLOPs)."""
    torch.manual_seed(0)
    fmt = torch.channels_last
    config = DCGANConfig(image_size=image_size)
    G = Generator(config).to(memory_format=fmt)
    D = Discriminator(config).to(memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999), fused=True)
    real = torch.rand(batch, config.channels, image_size, image_size).mul(2).sub(1).contiguous(memory_format=fmt)
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp == "bf16" else nullcontext

    def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float().view(-1), target)

    def step():
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
    return step, counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--amp", choices=("off", "bf16"), default="off")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json")
    args = p.parse_args(argv)
    batch = args.batch_size
    ceiling = conv_ceiling(args.image_size, batch, args.amp, args.repeats, verbose=True)
    step, step_flops = bare_step(args.image_size, batch, args.amp)
    step_s = seconds(step, args.repeats)
    best = max(ceiling["units"], key=lambda r: r["gflops"])
    result = {
        "host": host_info(), "amp": args.amp, "image_size": args.image_size, "batch_size": batch, **ceiling,
        "step_gflop": step_flops / 1e9, "gflop_per_image": step_flops / batch / 1e9,
        "step_img_per_s": batch / step_s, "step_gflops": step_flops / step_s / 1e9,
        "step_over_ceiling": (batch / step_s) / ceiling["ceiling_img_per_s"],
        "best_unit": best["layer"], "best_unit_gflops": best["gflops"],
        "flop_bound_img_per_s": best["gflops"] * 1e9 / (step_flops / batch),
    }
    print(f"step: {result['step_gflop']:.1f} GFLOP, {result['step_img_per_s']:.1f} img/s ({result['step_gflops']:.0f} GFLOP/s); "
          f"conv ceiling {result['ceiling_img_per_s']:.1f} img/s (convs alone {ceiling['conv_seconds_per_step']:.2f} s/step) -> "
          f"{result['step_over_ceiling']:.0%} of the ceiling; every FLOP at the best unit's {best['gflops']:.0f} GFLOP/s would be "
          f"{result['flop_bound_img_per_s']:.1f} img/s [{result['host']['cpu_model']}, {result['host']['host_kind']}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
