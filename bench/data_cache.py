"""Start-up time with the decoded-data cache: the first `training.run` start decodes, the second maps.

    python -m bench.data_cache [--data /work/bench-data] [--celeba 20000] [--folder 50000] [--json out.json] [--keep]

Makes (once, under --data, outside the repo) two image sets of CelebA's size and file size:

* `celeba<N>/`: the official aligned-CelebA layout, N 178x218 JPEGs (quality 90, ~10 KB: smooth
  random colour fields with ellipses and grain, so they compress like photos, not like noise or
  flat colour) and a list_attr_celeba.txt of random -1/1 attributes; read by the CelebA reader
  (108 px centre crop -> 64 px);
* `folder<M>/`: M such JPEGs in one folder, read by the folder reader (square centre crop, JPEG
  draft decoding at 1/2 scale -> 64 px).

Then, for each set, three 1-step `python -m training.run` processes (64 px, batch 128, CPU), each
timed from spawn: `uncached` (LATENT_LAB_DATA_CACHE=off: every start decodes, as before the
cache), `first` (an empty cache folder: decodes and writes the entry) and `second` (the entry is
there: memory-mapped). Reported per start: when load_dataset was called and how long it took,
seconds to the first step's start (`on_start`, right before the loop), to the end of the first
step, and the process's whole wall time (incl. the final checkpoint). The cache folder and run folders are deleted afterwards; the image sets are kept for
reruns unless --delete-data.

The timings come from a `child` mode of this file (`python -m bench.data_cache child STAMPS --
TRAINING ARGS`) that adds a timing callback to training.run's callbacks and runs its main(); the
production code has no benchmark switches.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from training.precision import host_info

REPO = Path(__file__).resolve().parent.parent
ATTRIBUTES = 40
WIDTH, HEIGHT = 178, 218  # aligned CelebA


# ------------------------------------------------------------------------------------------- image sets


def photo_like(seed: int) -> bytes:
    """One 178x218 JPEG of smooth random colour with a few ellipses and grain (~10 KB at quality 90)."""
    from io import BytesIO

    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (7, 6, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, WIDTH), rng.integers(0, HEIGHT)
        w, h = rng.integers(10, 70, 2)
        draw.ellipse((x - w, y - h, x + w, y + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    grain = rng.normal(0, 3, (HEIGHT, WIDTH, 3))
    image = Image.fromarray(np.clip(np.asarray(image, np.float32) + grain, 0, 255).astype(np.uint8))
    out = BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _write_images(folder: str, start: int, stop: int) -> int:
    for k in range(start, stop):
        Path(folder, f"{k + 1:06d}.jpg").write_bytes(photo_like(k))
    return stop - start


def write_jpegs(folder: Path, n: int, workers: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [(str(folder), a, min(a + 1000, n)) for a in range(0, n, 1000)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_images, *zip(*chunks)))


def make_celeba_like(root: Path, n: int) -> Path:
    """The official aligned-CelebA layout with n photo-like JPEGs and random attributes (made once)."""
    if (root / "list_attr_celeba.txt").is_file():
        return root
    write_jpegs(root / "img_align_celeba", n)
    rng = np.random.default_rng(0)
    values = np.where(rng.random((n, ATTRIBUTES)) < 0.3, 1, -1)
    names = " ".join(f"Attribute_{i}" for i in range(ATTRIBUTES))
    lines = [str(n), names] + [f"{k + 1:06d}.jpg " + " ".join(f"{v:>2}" for v in row) for k, row in enumerate(values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    return root


def make_folder(root: Path, n: int, workers: int = 2) -> Path:
    marker = root / ".complete"
    if not marker.is_file():
        write_jpegs(root, n, workers)
        marker.write_text("")
    return root


# ---------------------------------------------------------------------------------------------- timing


def child(stamps: str, training_args: list[str]) -> int:
    """training.run's main with a callback that writes when the loop starts and the first step ends,
    and when load_dataset was entered and returned."""
    import training.callbacks
    import training.run

    loads = {}
    load_dataset = training.run.load_dataset

    def timed_load(*args, **kwargs):
        loads["load_begin"] = time.time()
        dataset = load_dataset(*args, **kwargs)
        loads["load_end"] = time.time()
        return dataset

    training.run.load_dataset = timed_load

    class Stamps(training.callbacks.Callback):
        def on_start(self, state) -> None:
            self.times = {"on_start": time.time(), **loads}

        def on_step(self, state) -> None:
            if "first_step" not in self.times:
                self.times["first_step"] = time.time()
                Path(stamps).write_text(json.dumps(self.times))

    default = training.callbacks.default_callbacks
    training.callbacks.default_callbacks = lambda **kwargs: [*default(**kwargs), Stamps()]
    return training.run.main(training_args)


def timed_start(dataset: str, out: Path, cache: str, device: str = "cpu", extra: tuple[str, ...] = ()) -> dict:
    stamps = out.with_suffix(".stamps.json")
    stamps.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    args = ["--dataset", dataset, "--out", str(out), "--max-steps", "1", "--batch-size", "128", "--image-size", "64",
            "--device", device, "--no-progress", "--no-tensorboard", *extra]
    env = {**os.environ, "LATENT_LAB_DATA_CACHE": cache}
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "bench.data_cache", "child", str(stamps), "--", *args],
                          cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise RuntimeError(f"training.run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    times = json.loads(stamps.read_text())
    stamps.unlink()
    shutil.rmtree(out, ignore_errors=True)
    line = next((line for line in done.stdout.splitlines() if line.startswith("dataset ")), "")
    return {"to_first_step_s": times["on_start"] - start, "first_step_done_s": times["first_step"] - start,
            "wall_s": wall, "to_load_s": times["load_begin"] - start, "load_s": times["load_end"] - times["load_begin"],
            "dataset_line": line}


def measure(name: str, dataset: str, work: Path, starts: list[str]) -> dict:
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    result = {}
    for label, cache_setting in (("uncached", "off"), ("first", str(cache)), ("second", str(cache))):
        if label not in starts:
            continue
        row = timed_start(dataset, work / f"run-{name}-{label}", cache_setting)
        result[label] = row
        print(f"{name:>8} {label:>8}: load_dataset {row['to_load_s']:5.1f} s -> {row['to_load_s'] + row['load_s']:6.1f} s, "
              f"first step starts at {row['to_first_step_s']:6.1f} s, done at "
              f"{row['first_step_done_s']:6.1f} s, process {row['wall_s']:6.1f} s   [{row['dataset_line'][:90]}]", flush=True)
    if "first" in result and "second" in result:
        result["second_over_first_wall"] = result["second"]["wall_s"] / result["first"]["wall_s"]
    result["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    shutil.rmtree(cache, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(argv[1], argv[argv.index("--") + 1 :])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("/work/bench-data"), help="where the image sets are made (not the repo)")
    p.add_argument("--celeba", type=int, default=20000, help="CelebA-layout images (0: skip)")
    p.add_argument("--folder", type=int, default=50000, help="images of the plain folder (0: skip)")
    p.add_argument("--starts", default="uncached,first,second", help="which starts to time (second needs first)")
    p.add_argument("--delete-data", action="store_true", help="delete the image sets afterwards")
    p.add_argument("--json")
    args = p.parse_args(argv)
    sets = {}
    if args.celeba:
        sets["celeba"] = f"celeba:{make_celeba_like(args.data / f'celeba{args.celeba}', args.celeba)}"
    if args.folder:
        sets["folder"] = f"folder:{make_folder(args.data / f'folder{args.folder}', args.folder)}"
    load = os.getloadavg()
    results = {name: measure(name, spec, args.data, args.starts.split(",")) for name, spec in sets.items()}
    for name, r in results.items():
        if "second_over_first_wall" not in r:
            continue
        print(f"{name}: second start {r['second']['wall_s']:.1f} s = {r['second_over_first_wall']:.2f}x the first "
              f"({r['first']['wall_s']:.1f} s); reaches its first step at {r['second']['to_first_step_s']:.1f} s; "
              f"cache {r['cache_bytes'] / 1e9:.2f} GB")
    if args.json:
        Path(args.json).write_text(json.dumps({"host": host_info(), "load_before": load, "load_after": os.getloadavg(),
                                               "python": platform.python_version(), "results": results}, indent=2))
    if args.delete_data:
        for spec in sets.values():
            shutil.rmtree(spec.split(":", 1)[1], ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
