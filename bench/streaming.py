"""Training from a decoded set larger than the memory budget: peak RSS and img/s against the in-memory path.

    python -m bench.streaming [--data /work/bench-data/stream] [--gb 10] [--steps 20] [--warmup 3] [--rounds 2] [--json out.json] [--keep]

1. Writes a `--gb` GB images.npy of uint8 (N, 3, 64, 64) (N = 813,802 at 10 GB), the layout of a
   decoded-data cache entry, outside the repo, then drops its pages from the page cache
   (posix_fadvise DONTNEED), so the streamed run starts from the disk. Image content does not
   change the cost of a step, so it holds repeated random blocks.
2. Runs, interleaved `--rounds` times, each in its own process (so each has its own peak RSS):
   * `memory`: training.loop.train on a 1 GB slice of the same images preloaded in memory (the
     in-RAM path: where it fits, the set's size does not change the step);
   * `streamed`: training.loop.train on the whole file with --max-ram-gb 2, so batches are read
     from the file one step ahead (training.batches.StreamedBatches).
   64 px, batch 128, the paper's net, CPU, FP32; img/s = 128 / median step time after the warmup.
   Peak RSS is the child's own VmHWM; the file's pages are dropped from the page cache before
   each run.
3. Deletes the file unless --keep.

Targets (issue 16): the streamed run's peak RSS <= 2 GB, its img/s >= 90 % of the in-memory img/s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHAPE = (3, 64, 64)
ROW_BYTES = int(np.prod(SHAPE))


def write_images(path: Path, gb: float) -> int:
    """A uint8 (N, 3, 64, 64) .npy of about `gb` GB, its pages then dropped from the page cache; N."""
    n = int(gb * 1e9) // ROW_BYTES
    if path.is_file() and np.load(path, mmap_mode="r").shape == (n, *SHAPE):
        rows = n
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *SHAPE))
        block = np.random.default_rng(0).integers(0, 256, (8192, *SHAPE), dtype=np.uint8)  # 100 MB
        for start in range(0, n, len(block)):
            rows = min(len(block), n - start)
            out[start : start + rows] = block[:rows]
        out.flush()
        del out
        rows = n
    drop_page_cache(path)
    return rows


def drop_page_cache(path: Path) -> None:
    """Write the file's dirty pages and drop its cached ones (this file only, not the whole page cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def child(mode: str, path: str, steps: int, warmup: int, out: str, result: str) -> int:
    import torch

    from bench.train_throughput import StepTimer
    from explorer.datasets import ImageDataset
    from training.config import TrainConfig
    from training.loop import train

    mapped = np.load(path, mmap_mode="c")
    if mode == "memory":  # read, not through the mapping, so the RSS holds one copy
        rows = np.fromfile(path, dtype=np.uint8, count=int(1e9) // ROW_BYTES * ROW_BYTES, offset=mapped.offset)
        dataset = ImageDataset(images=torch.from_numpy(rows.reshape(-1, *SHAPE)), spec="bench-memory")
        budget = None
    else:
        dataset = ImageDataset(images=torch.from_numpy(mapped), spec="bench-streamed", images_file=Path(path))
        budget = 2.0
    config = TrainConfig(dataset=dataset.spec, out=out, image_size=64, batch_size=128, epochs=None, max_steps=steps + warmup + 1,
                         device="cpu", max_ram_gb=budget, log_every=10_000, checkpoint_every=10_000)
    timer = StepTimer(torch.device("cpu"))
    train(config, dataset, callbacks=[timer])
    times = [b - a for a, b in zip(timer.stamps[warmup:-2], timer.stamps[warmup + 1 : -1])]
    # VmHWM: this process's own peak resident set. (os.wait4's ru_maxrss would not do: a child
    # spawned with vfork inherits its parent's high-water mark, here the 10 GB file it wrote.)
    peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    Path(result).write_text(json.dumps({"img_per_s": 128 / statistics.median(times), "steps_timed": len(times),
                                        "peak_rss_gb": peak_kb * 1024 / 1e9}))
    return 0


def run_child(mode: str, path: Path, steps: int, warmup: int, work: Path) -> dict:
    result = work / f"{mode}.json"
    out = work / f"run-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    drop_page_cache(path)  # every run starts from the disk
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "bench.streaming", "child", mode, str(path), str(steps), str(warmup), str(out), str(result)],
                          cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} run failed ({done.returncode})")
    row = json.loads(result.read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {**row, "wall_s": time.time() - start}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        mode, path, steps, warmup, out, result = argv[1:7]
        return child(mode, path, int(steps), int(warmup), out, result)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("/work/bench-data/stream"))
    p.add_argument("--gb", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep the images file for a rerun")
    p.add_argument("--json")
    args = p.parse_args(argv)
    from training.precision import host_info

    path = args.data / "images.npy"
    began = time.time()
    rows = write_images(path, args.gb)
    print(f"{path}: {rows} images, {path.stat().st_size / 1e9:.2f} GB, written in {time.time() - began:.0f} s; page cache dropped", flush=True)
    rounds = {"memory": [], "streamed": []}
    try:
        for index in range(args.rounds):
            for mode in rounds:
                row = run_child(mode, path, args.steps, args.warmup, args.data)
                rounds[mode].append(row)
                print(f"[round {index + 1}/{args.rounds}] {mode:>8}: {row['img_per_s']:6.1f} img/s, peak RSS {row['peak_rss_gb']:.2f} GB, "
                      f"wall {row['wall_s']:.0f} s", flush=True)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    ratios = [s["img_per_s"] / m["img_per_s"] for m, s in zip(rounds["memory"], rounds["streamed"])]
    summary = {"streamed_over_memory": statistics.median(ratios), "per_round": ratios,
               "streamed_peak_rss_gb": max(r["peak_rss_gb"] for r in rounds["streamed"]),
               "memory_peak_rss_gb": max(r["peak_rss_gb"] for r in rounds["memory"])}
    print(f"streamed: {summary['streamed_over_memory']:.0%} of the in-memory img/s (per round: {', '.join(f'{r:.0%}' for r in ratios)}), "
          f"peak RSS {summary['streamed_peak_rss_gb']:.2f} GB (in-memory run: {summary['memory_peak_rss_gb']:.2f} GB)")
    if args.json:
        Path(args.json).write_text(json.dumps({"host": host_info(), "images": rows, "file_gb": rows * ROW_BYTES / 1e9,
                                               "rounds": rounds, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
