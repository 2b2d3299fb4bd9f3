"""The CUDA path, checked in one prepared command: does training work on the GPU, and how fast is it.

    python -m bench.gpu_check [--json bench/output/gpu_check.json] [--steps 300] [--budget-s 450]
    python -m bench.gpu_check --device cpu --quick        # the same logic on CPU in seconds (the tests run it)

Parts, in this order (the JSON is rewritten after each, so a timeout keeps what ran; a part that
fails records its error and the others still run; exit 1 if any failed):

1. `host`: GPU name, compute capability, memory, torch/CUDA versions, and what `--amp auto` picks.
2. `throughput`: training.loop.train for `--steps` steps at 64 px, batch 128 (random uint8 images:
   the cost does not depend on content) in FP32, bf16 autocast and fp16 autocast with GradScaler,
   eager; img/s = batch / median step time after `--warmup` steps (a device sync per step), and
   whether the final losses are finite. A precision the device cannot run natively is skipped
   with training.precision's reason.
3. `reference`: the pytorch/examples-equivalent step (bench.train_throughput.reference) on the
   same data; `summary` gives every variant's img/s and its ratio to it.
4. `resume`: with deterministic algorithms, N steps straight twice (is the GPU deterministic at
   all?) and N/2 + --resume to N; bit-exact weights and optimizer state or not, and the largest
   difference.
5. `torchrun`: `torchrun --nproc_per_node=1 -m training.run` (python -m torch.distributed.run) on
   synthetic faces: exit code, wall time, the checkpoint's step.
6. `cached_folder`: a folder of CelebA-sized JPEGs (`--folder-images`, default 20,000), two 1-step
   `training.run` starts on the device (the first decodes into the decoded-data cache, the second
   maps it: seconds to the first step), then img/s preloaded vs streamed from the cache file
   (`--max-ram-gb` below the set's size: pinned-memory batches read one step ahead).
7. `compiled`: the throughput variants again with torch.compile (cold compiles, ~1 min each), last
   because they are the slowest; skipped when the remaining budget is too small.

`--budget-s` (default 450 s: the check must finish within 8 minutes on one GPU) skips a part when
too little time is left for it, and says so.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Exact-resume checks need deterministic cuBLAS; the variable must be set before cuBLAS starts.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from bench.data_cache import make_folder, timed_start  # noqa: E402
from bench.train_throughput import StepTimer, fast, reference  # noqa: E402
from explorer.checkpoint import load_checkpoint  # noqa: E402
from explorer.datasets import ImageDataset, load_dataset  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loop import train  # noqa: E402
from training.precision import PrecisionError, host_info, resolve_amp  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PRECISIONS = ("off", "bf16", "fp16")
# Seconds a part needs at least (full mode); a part is skipped when less than this is left.
PART_COST = {"throughput": 60, "reference": 20, "resume": 30, "torchrun": 45, "cached_folder": 120, "compiled": 90}


class Check:
    """Runs the parts, keeps the budget, and writes the JSON after each part."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.device = args, torch.device(args.device)
        self.start = time.perf_counter()
        self.report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "parts": {}, "failed": []}
        self.work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
        q = args.quick
        self.size, self.batch = (32, 8) if q else (64, 128)
        self.widths = {"g_width": 8, "d_width": 8, "z_dim": 16} if q else {}
        self.steps, self.warmup = (2, 1) if q else (args.steps, args.warmup)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def run(self, name: str, part) -> None:
        left = self.args.budget_s - self.elapsed()
        cost = PART_COST.get(name, 0)
        if left < cost and not self.args.quick:
            self.report["parts"][name] = {"skipped": f"time budget: {left:.0f} s left, the part needs ~{cost} s"}
        else:
            began = time.perf_counter()
            try:
                self.report["parts"][name] = {**part(), "seconds": round(time.perf_counter() - began, 1)}
            except Exception as error:  # noqa: BLE001 - record it and go on with the other parts
                self.report["parts"][name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]}
                self.report["failed"].append(name)
        print(f"[{self.elapsed():6.1f} s] {name}: {json.dumps(self.report['parts'][name], default=str)[:600]}", flush=True)
        self.write()

    def write(self) -> None:
        self.report["wall_s"] = round(self.elapsed(), 1)
        Path(self.args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(self.args.json).write_text(json.dumps(self.report, indent=2, default=str))

    def images(self, n: int | None = None) -> torch.Tensor:
        n = n or self.batch * 8
        return torch.randint(0, 256, (n, 3, self.size, self.size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    # --------------------------------------------------------------------------------------------- parts

    def host(self) -> dict:
        info = host_info()
        if self.device.type == "cuda":
            props = torch.cuda.get_device_properties(self.device)
            info.update(gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version())
        info["amp_auto"] = resolve_amp("auto", self.device.type).reason
        return info

    def throughput(self, compiled: bool) -> dict:
        rows = {}
        for amp in PRECISIONS:
            name = f"{'compiled' if compiled else 'eager'}-{'fp32' if amp == 'off' else amp}"
            try:
                resolve_amp(amp, self.device.type)
            except PrecisionError as why:
                rows[name] = {"skipped": str(why)}
                continue
            if compiled and self.args.budget_s - self.elapsed() < PART_COST["compiled"]:
                rows[name] = {"skipped": "time budget"}
                continue
            out = self.work / name
            times = fast(self.images(), self.batch, self.steps, self.warmup, self.device, amp, compiled, str(out), **self.widths)
            metrics = load_checkpoint(out).meta["metrics"]
            rows[name] = {"img_per_s": self.batch / statistics.median(times), "steps_timed": len(times),
                          "finite": all(math.isfinite(metrics[k]) for k in ("loss_d", "loss_g"))}
            shutil.rmtree(out, ignore_errors=True)
        return rows

    def reference(self) -> dict:
        times = reference(self.images(), self.batch, self.steps, self.warmup, self.device, **self.widths)
        ref = self.batch / statistics.median(times)
        return {"img_per_s": ref}

    def resume(self) -> dict:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        steps = 2 if self.args.quick else 20
        dataset = ImageDataset(images=self.images(), spec="random")
        base = dict(image_size=self.size, batch_size=self.batch, epochs=None, log_every=steps // 2, checkpoint_every=steps // 2,
                    device=self.device.type, **self.widths)
        try:
            for name, stop in (("straight_a", steps), ("straight_b", steps), ("resumed", steps // 2)):
                train(TrainConfig(out=str(self.work / name), max_steps=stop, **base), dataset)
            train(TrainConfig(out=str(self.work / "resumed"), max_steps=steps, **base), dataset, resume=True)
        finally:
            torch.use_deterministic_algorithms(False)
        a = _state(self.work / "straight_a")
        diff_b, diff_resumed = _max_diff(a, _state(self.work / "straight_b")), _max_diff(a, _state(self.work / "resumed"))
        return {"steps": steps, "deterministic": diff_b == 0.0, "resume_bit_exact": diff_resumed == 0.0,
                "max_abs_diff_repeat": diff_b, "max_abs_diff_resumed": diff_resumed}

    def torchrun(self) -> dict:
        out = self.work / "torchrun"
        args = ["--dataset", "synthetic-faces:64" if self.args.quick else "synthetic-faces:2048", "--image-size", str(self.size),
                "--batch-size", str(self.batch), "--max-steps", str(self.steps + 2), "--device", self.device.type,
                "--out", str(out), "--data-cache", str(self.work / "cache"), "--no-progress", "--no-tensorboard"]
        args += [f"--{k.replace('_', '-')}={v}" for k, v in self.widths.items()]
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "-m", "training.run", *args],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        result = {"returncode": done.returncode, "wall_s": time.perf_counter() - began, "tail": (done.stdout + done.stderr)[-1500:]}
        if done.returncode == 0:
            result["checkpoint_step"] = load_checkpoint(out).step
        else:
            raise RuntimeError(f"torchrun exited {done.returncode}: {result['tail']}")
        return result

    def cached_folder(self) -> dict:
        n = 32 if self.args.quick else self.args.folder_images
        folder = make_folder(self.work / "folder", n, workers=max(2, os.cpu_count() or 2))
        spec, cache = f"folder:{folder}", self.work / "folder-cache"
        extra = ("--image-size", str(self.size), "--batch-size", str(self.batch), *[f"--{k.replace('_', '-')}={v}" for k, v in self.widths.items()])
        starts = {label: timed_start(spec, self.work / f"start-{label}", str(cache), self.device.type, extra) for label in ("first", "second")}
        dataset = load_dataset(spec, image_size=self.size, cache=cache)
        rates = {}
        for label, budget_gb in (("preloaded", None), ("streamed", dataset.nbytes / 2e9)):
            out = self.work / f"folder-{label}"
            config = TrainConfig(out=str(out), image_size=self.size, batch_size=self.batch, epochs=None, max_steps=self.steps + self.warmup + 1,
                                 device=self.device.type, max_ram_gb=budget_gb, log_every=10_000, checkpoint_every=10_000, **self.widths)
            timer = StepTimer(self.device)
            train(config, dataset, callbacks=[timer])
            times = [b - a for a, b in zip(timer.stamps[self.warmup : -2], timer.stamps[self.warmup + 1 : -1])]
            rates[label] = self.batch / statistics.median(times)
        return {"images": len(dataset), "starts": {k: {x: v[x] for x in ("to_first_step_s", "wall_s")} for k, v in starts.items()},
                "img_per_s": rates, "streamed_over_preloaded": rates["streamed"] / rates["preloaded"]}


def summary(parts: dict) -> dict:
    """img/s of every variant that ran and its ratio to the reference-equivalent."""
    ref = parts.get("reference", {}).get("img_per_s")
    rows = {**parts.get("throughput", {}), **parts.get("compiled", {})}
    return {name: {"img_per_s": row["img_per_s"], "x_reference": row["img_per_s"] / ref if ref else None}
            for name, row in rows.items() if isinstance(row, dict) and "img_per_s" in row}


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(run_dir)
    state = {f"G.{k}": v for k, v in checkpoint.generator.state_dict().items()}
    state.update({f"D.{k}": v for k, v in checkpoint.discriminator.state_dict().items()})
    resume = torch.load(checkpoint.path / "resume.pt", weights_only=True)
    for opt in ("opt_g", "opt_d"):
        for index, moments in resume[opt]["state"].items():
            state.update({f"{opt}.{index}.{k}": v for k, v in moments.items() if isinstance(v, torch.Tensor)})
    return state


def _max_diff(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return math.inf
    return max(float((a[k].double() - b[k].double()).abs().max()) if a[k].numel() else 0.0 for k in a)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes and step counts, no torch.compile: checks the logic in seconds")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--folder-images", type=int, default=20000)
    p.add_argument("--budget-s", type=float, default=450.0, help="skip parts that would not finish within this many seconds")
    p.add_argument("--json", default="bench/output/gpu_check.json")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; run with --device cpu --quick to check the logic", file=sys.stderr)
        return 2
    check = Check(args)
    try:
        check.run("host", check.host)
        check.run("throughput", lambda: check.throughput(compiled=False))
        check.run("reference", check.reference)
        check.run("resume", check.resume)
        check.run("torchrun", check.torchrun)
        check.run("cached_folder", check.cached_folder)
        if args.quick:
            check.report["parts"]["compiled"] = {"skipped": "--quick: cold torch.compile takes 30-90 s per variant"}
        else:
            check.run("compiled", lambda: check.throughput(compiled=True))
        check.report["summary"] = summary(check.report["parts"])
    finally:
        check.write()
        shutil.rmtree(check.work, ignore_errors=True)
    print(f"gpu_check: {check.elapsed():.0f} s, failed parts: {check.report['failed'] or 'none'}; JSON in {args.json}")
    return 1 if check.report["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
