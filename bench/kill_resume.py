"""Kill -9 a training run again and again; every time, a loadable checkpoint and an exact --resume.

    python -m bench.kill_resume [--kills 20] [--max-steps 1500] [--checkpoint-every 5] [--seed 0] [--json out.json]

One tiny run (32 px, widths 8, z 16, batch 8, synthetic faces) is SIGKILLed `--kills` times and
resumed after each kill; then it finishes. Beside it, the same run trains uninterrupted and keeps
every snapshot. The kills are a mix of

* random moments: SIGKILL from this process a random time after the training process started
  (during start-up, training, sample grids or a snapshot write, wherever it lands);
* moments inside a checkpoint write, from within the training process (it SIGKILLs itself, a real
  kill -9, from a hook around explorer.checkpoint's writers): half-way through a weight file,
  half-way through resume.pt, half-way through a snapshot's meta.json or the run's latest.json,
  or right after a complete snapshot directory is renamed into place but before latest.json moves.

After each kill: the run directory must hold a loadable checkpoint (`load_checkpoint` and its
resume state); its weights, optimizer state and RNG state must equal the uninterrupted run's
snapshot of the same step; and the next process must report that it resumed from exactly that
step. At the end the finished run must equal the uninterrupted one (weights, optimizer state,
RNG) and its history must list every step once.

The hooks live in this file's `child` mode (`python -m bench.kill_resume child [--kill-at EVENT:N]
-- TRAINING ARGS`), which patches the writers and then runs `training.run.main`; production code
has no test switches. tests/test_reliability.py runs the same loop with a few kills.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Tiny nets: a step takes milliseconds; the run is dominated by process start-up and snapshot writes.
TINY = ["--dataset", "synthetic-faces:64", "--image-size", "32", "--g-width", "8", "--d-width", "8", "--z-dim", "16",
        "--batch-size", "8", "--log-every", "1", "--no-progress", "--no-tensorboard"]
# (event, which occurrence in the process) for kills inside a checkpoint write; see install_hooks.
WRITE_EVENTS = ("weights", "resume", "meta", "snapshot-rename", "pointer")
RESUMED = "RESUMED step="


# ----------------------------------------------------------------------------------------------- the child


def _truncate_half(path) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_hooks(kill_at: str | None) -> None:
    """Patch explorer.checkpoint's writers to SIGKILL this process at the N-th EVENT, and report resumes.

    A kill "half-way through" a file leaves what a kill inside write() would: the first half of the
    bytes in the file being written (always a temp file or a file inside a temp directory).
    """
    import torch

    import explorer.checkpoint as ckpt
    import explorer.fsio as fsio
    import training.loop as loop
    from explorer.rundir import LATEST_FILE, SNAPSHOT_DIR

    event, _, nth = (kill_at or "").partition(":")
    if kill_at and (event not in WRITE_EVENTS or not nth.isdigit()):
        raise SystemExit(f"--kill-at must be EVENT:N with EVENT one of {WRITE_EVENTS}, got {kill_at!r}")
    counts: Counter = Counter()

    def hit(name: str) -> bool:
        counts[name] += 1
        return name == event and counts[name] == int(nth)

    save_file = ckpt.save_file

    def save_file_hook(tensors, filename, metadata=None):
        save_file(tensors, filename, metadata=metadata)
        if hit("weights"):
            _truncate_half(filename)
            _die()

    torch_save = torch.save

    def torch_save_hook(obj, f, *args, **kwargs):
        torch_save(obj, f, *args, **kwargs)
        if str(f).endswith(ckpt.RESUME_FILE) and hit("resume"):
            _truncate_half(f)
            _die()

    atomic_write_bytes = fsio.atomic_write_bytes

    def atomic_write_bytes_hook(path, data):
        kind = {ckpt.META_FILE: "meta", LATEST_FILE: "pointer"}.get(Path(path).name)
        if kind is not None and hit(kind):
            # the temp file atomic_write_bytes writes first, cut off half-way
            fsio.temp_path(Path(path)).write_bytes(data[: len(data) // 2])
            _die()
        atomic_write_bytes(path, data)

    fsync_dir = ckpt.fsync_dir

    def fsync_dir_hook(path):
        fsync_dir(path)
        # write_checkpoint_dir syncs the snapshots/ folder right after renaming the new snapshot into it
        if Path(path).name == SNAPSHOT_DIR and hit("snapshot-rename"):
            _die()

    restore = loop._restore

    def restore_hook(state, *args, **kwargs):
        restore(state, *args, **kwargs)
        print(f"{RESUMED}{state.step}", flush=True)

    ckpt.save_file = save_file_hook
    torch.save = torch_save_hook
    fsio.atomic_write_bytes = atomic_write_bytes_hook
    ckpt.fsync_dir = fsync_dir_hook
    loop._restore = restore_hook


def child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kill_resume child")
    parser.add_argument("--kill-at", help=f"EVENT:N, EVENT one of {', '.join(WRITE_EVENTS)}")
    parser.add_argument("training_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.training_args[1:] if args.training_args[:1] == ["--"] else args.training_args
    install_hooks(args.kill_at)
    from training.run import main

    return main(rest)


# ----------------------------------------------------------------------------------------------- the driver


def child_env() -> dict:
    # One thread per process: bitwise-reproducible steps whatever else runs, and no oversubscription
    # of a small machine (the uninterrupted run trains at the same time as the killed one).
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def child_cmd(out: Path, train_args: list[str] | None, kill_at: str | None = None) -> list[str]:
    """The training command; train_args None means `--resume` (options from the run's config.json)."""
    cmd = [sys.executable, "-m", "bench.kill_resume", "child"] + (["--kill-at", kill_at] if kill_at else []) + ["--"]
    if train_args is None:
        return cmd + ["--out", str(out), "--resume", "--no-progress", "--no-tensorboard"]
    return cmd + ["--out", str(out), *train_args]


def snapshot_differences(a: Path, b: Path) -> list[str]:
    """What differs between two snapshots: weights, optimizer state, RNG state, step ([] if identical)."""
    import torch
    from safetensors.torch import load_file

    diffs = []
    for name in ("generator.safetensors", "discriminator.safetensors"):
        wa, wb = load_file(str(a / name)), load_file(str(b / name))
        if wa.keys() != wb.keys() or not all(torch.equal(wa[k], wb[k]) for k in wa):
            diffs.append(name)
    ra = torch.load(a / "resume.pt", map_location="cpu", weights_only=True)
    rb = torch.load(b / "resume.pt", map_location="cpu", weights_only=True)
    if ra["step"] != rb["step"]:
        diffs.append(f"step {ra['step']} != {rb['step']}")
    if not torch.equal(ra["torch_rng"], rb["torch_rng"]):
        diffs.append("torch RNG state")
    for opt in ("opt_g", "opt_d"):
        sa, sb = ra[opt]["state"], rb[opt]["state"]
        same = sa.keys() == sb.keys() and all(
            sa[i].keys() == sb[i].keys() and all(torch.equal(sa[i][k], sb[i][k]) for k in sa[i]) for i in sa
        )
        if not same:
            diffs.append(f"{opt} state")
    return diffs


def _step_on_disk(run: Path) -> int | None:
    from explorer.checkpoint import read_meta

    return int(read_meta(run)[1]["step"]) if (run / "latest.json").exists() else None


def _temps(run: Path) -> list[Path]:
    """What killed writers left: temp files and folders in the run, snapshots/ and samples/."""
    return [*(run / "snapshots").glob(".tmp-*"), *(run / "snapshots").glob(".old-*"), *run.glob(".*.tmp-*"), *(run / "samples").glob(".*.tmp-*")]


def _describe(kill) -> str:
    if isinstance(kill, str):
        return kill
    where, seconds = kill
    return f"random {seconds:.2f} s after " + {"launch": "launch", "training": "training started"}[where]


def kill_loop(work: Path, plan: list, max_steps: int, checkpoint_every: int, log=print) -> dict:
    """Run the kill/resume loop in `work`; `plan` items are "EVENT:N" (inside a write) or timed kills:
    ("launch", s), s seconds after the process started (mostly during start-up), or ("training", s),
    s seconds after it resumed (for the fresh first process: after its first snapshot).

    Returns {"rows": [...], "final": {...}, "ok": bool}; never raises on a failed check (it is
    recorded), only on infrastructure errors.
    """
    from explorer.checkpoint import load_checkpoint, load_resume_state
    from explorer.rundir import latest_snapshot

    straight, killed, kept = work / "straight", work / "killed", work / "kept"
    kept.mkdir(parents=True, exist_ok=True)
    args = [*TINY, "--max-steps", str(max_steps), "--checkpoint-every", str(checkpoint_every)]
    env = child_env()
    straight_proc = subprocess.Popen(
        child_cmd(straight, args + ["--keep-snapshots", str(10**6)]), cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    rows: list[dict] = []
    t_start = time.monotonic()
    for cycle, kill in enumerate(plan, start=1):
        disk_before = _step_on_disk(killed)
        fresh = disk_before is None
        proc = subprocess.Popen(
            child_cmd(killed, args if fresh else None, kill if isinstance(kill, str) else None),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        launched = time.monotonic()
        lines: list[str] = []
        training = threading.Event()

        def read_stdout(proc=proc, lines=lines, training=training) -> None:
            for line in proc.stdout:
                lines.append(line)
                if line.startswith(RESUMED):
                    training.set()

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        if not isinstance(kill, str):
            where, delay = kill
            if where == "training":
                while proc.poll() is None and not training.is_set() and not (fresh and (killed / "latest.json").exists()):
                    time.sleep(0.01)
            else:
                delay -= time.monotonic() - launched
            time.sleep(max(0.0, delay))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=600)
        reader.join(timeout=60)
        err = proc.stderr.read()
        seconds = time.monotonic() - launched
        resumed = [int(line[len(RESUMED):]) for line in lines if line.startswith(RESUMED)]
        row = {
            "cycle": cycle,
            "kill": _describe(kill),
            "killed_after_s": round(seconds, 2),
            "exit": proc.returncode,
            "step_before": disk_before,
            "resumed_from": resumed[0] if resumed else None,  # None: killed in start-up, before resuming
        }
        problems = []
        if proc.returncode == 0:
            problems.append("the run finished before the kill (raise --max-steps)")
        elif proc.returncode != -signal.SIGKILL:
            problems.append(f"exit code {proc.returncode}: {err.strip()[-300:]}")
        if not fresh and resumed and row["resumed_from"] != disk_before:
            problems.append(f"resumed from {row['resumed_from']}, the checkpoint on disk was at {disk_before}")
        try:
            snapshot = latest_snapshot(killed)
            checkpoint = load_checkpoint(killed)
            load_resume_state(checkpoint.path, checkpoint.step)
            row["step_on_disk"] = checkpoint.step
            row["snapshot"] = snapshot.name
            shutil.copytree(snapshot, kept / f"cycle-{cycle:02d}-{snapshot.name}")
        except Exception as exc:  # noqa: BLE001 - a failed guarantee is a result to report
            row["step_on_disk"] = None
            problems.append(f"no loadable checkpoint: {type(exc).__name__}: {exc}")
        row["leftover_temp"] = len(_temps(killed))
        row["problems"] = problems
        rows.append(row)
        log(format_row(row))
        if proc.returncode == 0:
            break

    # Finish the run without kills.
    final_disk = _step_on_disk(killed)
    proc = subprocess.run(child_cmd(killed, None), cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    resumed = [int(line[len(RESUMED):]) for line in proc.stdout.splitlines() if line.startswith(RESUMED)]
    straight_err = straight_proc.communicate(timeout=1800)[1]
    final = {"exit": proc.returncode, "resumed_from": resumed[0] if resumed else None, "step_before": final_disk}
    problems = []
    if proc.returncode != 0:
        problems.append(f"final resume exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    if straight_proc.returncode != 0:
        problems.append(f"uninterrupted run exited {straight_proc.returncode}: {straight_err.strip()[-300:]}")
    if final["resumed_from"] != final_disk:
        problems.append(f"final resume started at {final['resumed_from']}, the checkpoint on disk was at {final_disk}")
    if not problems:
        a, b = latest_snapshot(straight), latest_snapshot(killed)
        final["step"] = int(b.name.split("-")[1])
        if a.name != b.name or b.name != f"step-{max_steps:08d}":
            problems.append(f"final snapshots {a.name} (uninterrupted) vs {b.name} (killed)")
        else:
            problems += [f"final {d}" for d in snapshot_differences(a, b)]
        history = [json.loads(line)["step"] for line in (killed / "history.jsonl").read_text().splitlines() if line.strip()]
        final["history_ok"] = history == list(range(1, max_steps + 1))
        if not final["history_ok"]:
            problems.append("history.jsonl has duplicated or skipped steps")
        # Killed writers' temp files are removed by the next write or resume, so none outlive the run.
        final["leftover_temp"] = [p.name for p in _temps(killed)]
        if final["leftover_temp"]:
            problems.append(f"temp files of killed writers remain: {final['leftover_temp']}")
        # Every checkpoint found after a kill equals the uninterrupted run's snapshot of that step.
        for row in rows:
            if row.get("snapshot"):
                diffs = snapshot_differences(straight / "snapshots" / row["snapshot"], kept / f"cycle-{row['cycle']:02d}-{row['snapshot']}")
                row["equals_uninterrupted"] = not diffs
                if diffs:
                    row["problems"].append("differs from the uninterrupted run: " + ", ".join(diffs))
    final["problems"] = problems
    final["seconds"] = round(time.monotonic() - t_start, 1)
    ok = not problems and all(not row["problems"] for row in rows)
    return {"rows": rows, "final": final, "ok": ok, "max_steps": max_steps, "checkpoint_every": checkpoint_every}


def format_row(row: dict) -> str:
    started = "fresh" if row["step_before"] is None else "-" if row["resumed_from"] is None else row["resumed_from"]
    return (
        f"{row['cycle']:>3}  {row['kill']:<38} {row['killed_after_s']:>7.2f} s  "
        f"on disk before {str(row['step_before']):>5}  resumed from {str(started):>5}  "
        f"step on disk {str(row.get('step_on_disk')):>5}  temp left {row['leftover_temp']}"
        + (f"  PROBLEMS: {'; '.join(row['problems'])}" if row["problems"] else "")
    )


def make_plan(kills: int, rng: random.Random) -> list:
    """The first kill at a random moment just after the fresh run's first snapshot; of the rest, half inside
    checkpoint writes (each event in turn, at its 1st-3rd occurrence in the process), a third of the rest
    at a random moment of start-up (0.5-4 s after launch) and the others at a random moment of training
    (0-3 s after the resume), shuffled."""
    rest = kills - 1
    in_writes = [f"{WRITE_EVENTS[i % len(WRITE_EVENTS)]}:{rng.randint(1, 3)}" for i in range(rest // 2 + rest % 2)]
    n_timed = rest - len(in_writes)
    timed = [("launch", round(rng.uniform(0.5, 4.0), 2)) for _ in range(n_timed // 3)]
    timed += [("training", round(rng.uniform(0.0, 3.0), 2)) for _ in range(n_timed - len(timed))]
    plan = in_writes + timed
    rng.shuffle(plan)
    return [("training", round(rng.uniform(0.0, 1.0), 2)), *plan]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=1500)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill plan (the training seed is fixed)")
    parser.add_argument("--work", help="working folder (default: a fresh temp folder, removed at the end)")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    import tempfile

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="kill-resume-"))
    plan = make_plan(args.kills, random.Random(args.seed))
    print(f"plan: {plan}")
    print("  #  kill                                     killed after  checkpoint step before / resumed from / on disk after")
    try:
        result = kill_loop(work, plan, args.max_steps, args.checkpoint_every)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    for row in result["rows"]:
        if "equals_uninterrupted" in row:
            row_state = "equal" if row["equals_uninterrupted"] else "DIFFERENT"
            print(f"  cycle {row['cycle']}: snapshot {row['snapshot']} vs uninterrupted run: {row_state}")
    final = result["final"]
    print(
        f"final: resumed from {final['resumed_from']}, finished at step {final.get('step')}, "
        f"history steps 1..{args.max_steps} once each: {final.get('history_ok')}, "
        f"equal to the uninterrupted run: {not final['problems']}, temp files left: {len(final.get('leftover_temp', []))}; "
        f"total {final['seconds']} s"
    )
    for problem in final["problems"]:
        print(f"  PROBLEM: {problem}")
    print("RESULT:", "all guarantees held" if result["ok"] else "FAILED")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"plan": plan, **result}, indent=2, default=str) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
