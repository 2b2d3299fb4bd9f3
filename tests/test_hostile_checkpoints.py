"""Issue 12: crafted meta.json values, links out of a checkpoint and special files are refused by the one loader,
and the listing never raises, whatever the files hold."""
from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
import torch

from explorer.checkpoint import CheckpointError, load_checkpoint, read_meta, save_snapshot
from explorer.fsio import UnsafeFileError, read_regular_bytes
from explorer.model import DCGANConfig, Discriminator, Generator
from explorer.registry import list_checkpoints
from explorer.rundir import latest_snapshot

CONFIG = DCGANConfig(image_size=32, channels=3, g_width=8, d_width=8, z_dim=16)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A valid tiny snapshot (with resume state) that tests copy and then tamper with."""
    run = tmp_path_factory.mktemp("hostile") / "run"
    torch.manual_seed(0)
    meta = {"model": CONFIG.to_dict(), "step": 3, "dataset": {"spec": "test", "class_names": ["a", "b"]}, "metrics": {"loss_d": 0.5}}
    resume = {"step": 3, "opt_g": {}, "opt_d": {}, "torch_rng": torch.get_rng_state()}
    return save_snapshot(run, meta, {"generator": Generator(CONFIG), "discriminator": Discriminator(CONFIG)}, resume)


def _copy(good: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    for file in good.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


def _with_meta(good: Path, folder: Path, edit=None, text: str | None = None) -> Path:
    checkpoint = _copy(good, folder)
    if text is None:
        meta = json.loads((good / "meta.json").read_text())
        edit(meta)
        text = json.dumps(meta)
    (checkpoint / "meta.json").write_text(text)
    return checkpoint


def _set(path: str, value):
    """An edit that sets meta[a][b]... = value for path "a.b"."""

    def edit(meta):
        *parents, last = path.split(".")
        target = meta
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


CRAFTED = [
    ("step-infinity", None, '"step": Infinity', "step must be a whole number, got Infinity"),
    ("step-huge", _set("step", 10**300), None, "step must be between 0 and 1000000000000, got 1.00e300 (301 digits)"),
    ("step-bool", _set("step", True), None, "step must be a whole number, got true"),
    ("step-negative", _set("step", -1), None, "step must be between 0"),
    ("z-infinity", None, '"z_dim": Infinity', "model.z_dim must be a whole number, got Infinity"),
    ("z-1e30", _set("model.z_dim", 1e30), None, "model.z_dim must be a whole number, got 1e+30"),
    ("g-width-2-61", _set("model.g_width", 2**61), None, "model.g_width must be between 1 and 1048576, got 2.31e18 (19 digits)"),
    ("model-list", _set("model", []), None, "model must be an object, got a list of 0 items"),
    ("model-unknown-key", _set("model.depth", 3), None, "model has unknown keys 'depth'"),
    ("image-size-float", _set("model.image_size", 64.0), None, "model.image_size must be one of 32, 64, 128, got 64.0"),
    ("format-version-0", _set("format_version", 0), None, "format_version must be between 1"),
    ("format-version-new", _set("format_version", 7), None, "written by a newer latent-lab"),
    ("metrics-text", _set("metrics.loss_d", "low"), None, "metrics.loss_d must be a number, got 'low'"),
    ("metrics-nan", None, '"loss_d": NaN', "metrics.loss_d must be a finite number, got NaN"),
    ("class-names-numbers", _set("dataset.class_names", [1, 2]), None, "dataset.class_names[0] must be a string, got 1"),
    ("dataset-list", _set("dataset", ["x"]), None, "dataset must be an object"),
    ("sha-not-hex", _set("files.generator.sha256", "x" * 64), None, "files.generator.sha256 must be 64 hex digits or null"),
    ("files-missing", _set("files", {}), None, "must list at least the generator weights"),
    ("exported-kind", _set("exported_from", {"generator": "best"}), None, "exported_from.generator must be one of ema, raw"),
    ("deep-nesting", None, "DEEP", "nested too deeply"),
    ("evaluation-list", _set("evaluation", []), None, "evaluation must be an object, got a list of 0 items"),
    ("nested-40-levels", _set("evaluation", json.loads('{"a":' * 40 + "1" + "}" * 40)), None, "nested 41 levels deep"),
    ("long-digits", None, '"step": ' + "9" * 5000, "not valid JSON"),
    ("not-utf8", None, b"\xff\xfe{}", "not UTF-8 text"),
    ("top-list", None, "[]", "not a latent-lab checkpoint"),
]


def _crafted(good: Path, folder: Path, edit, replacement) -> Path:
    if replacement is None:
        return _with_meta(good, folder, edit)
    text = (good / "meta.json").read_text()
    if replacement == "DEEP":
        text = '{"format": "latent-lab-dcgan", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    elif isinstance(replacement, bytes):
        checkpoint = _copy(good, folder)
        (checkpoint / "meta.json").write_bytes(replacement)
        return checkpoint
    elif replacement == "[]":
        text = "[]"
    else:
        key = replacement.split(":")[0]
        start = text.index(key)
        end = min(i for i in (text.find(",", start), text.find("\n", start), text.find("}", start)) if i > 0)
        text = text[:start] + replacement + text[end:]
    return _with_meta(good, folder, text=text)


@pytest.mark.parametrize("name, edit, replacement, message", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_meta_values_are_refused_with_a_short_message(good, tmp_path, name, edit, replacement, message):
    checkpoint = _crafted(good, tmp_path / name, edit, replacement)
    start = time.perf_counter()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(checkpoint)
    assert message in str(info.value), str(info.value)
    assert len(str(info.value)) < 400 and time.perf_counter() - start < 5


def test_the_listing_never_raises_and_says_why_each_one_is_broken(good, tmp_path):
    root = tmp_path / "checkpoints"
    for name, edit, replacement, _ in CRAFTED:
        _crafted(good, root / name, edit, replacement)
    _copy(good, root / "fine")
    listed = {info.name: info for info in list_checkpoints(root)}
    assert set(listed) == {c[0] for c in CRAFTED} | {"fine"}
    assert listed["fine"].error is None and listed["fine"].step == 3
    for name, _, _, message in CRAFTED:
        assert listed[name].step is None and message in listed[name].error, (name, listed[name].error)


# A seeded fuzz over the whole document: any value replaced by any hostile one.
HOSTILE_VALUES = [None, True, -1, 0, 2**61, 10**400, 1e308, float("inf"), float("nan"), "", "x" * 10_000, [], {}, [[[[]]]],
                  {"a": {"b": {}}}, [1, "a", None], "64", 64.0, -0.0]


def _leaves(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _leaves(child, (*path, i))


def test_fuzzed_meta_files_are_loaded_or_refused_never_crash(good, tmp_path):
    base = json.loads((good / "meta.json").read_text())
    paths = [p for p in _leaves(base) if p]
    rng = random.Random(0)
    root = tmp_path / "checkpoints"
    checkpoint = _copy(good, root / "fuzzed")
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(400):
        meta = json.loads(json.dumps(base))
        for path in rng.sample(paths, rng.randint(1, 3)):
            target = meta
            try:
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = rng.choice(HOSTILE_VALUES)
            except (KeyError, IndexError, TypeError):  # an earlier replacement removed this path
                continue
        (checkpoint / "meta.json").write_text(json.dumps(meta, allow_nan=True))
        try:
            read_meta(checkpoint)
            outcomes["loaded"] += 1
        except CheckpointError:
            outcomes["refused"] += 1
        info = list_checkpoints(root)[0]  # never raises
        assert (info.error is None) == (info.step is not None)
    assert outcomes["refused"] > 300 and outcomes["loaded"] > 0, outcomes  # harmless fields (e.g. saved_at) may take any text


# ----------------------------------------------------------------------------------------------- links and special files


@pytest.mark.parametrize("name", ["meta.json", "generator.safetensors", "resume.pt"])
def test_a_link_out_of_the_checkpoint_is_refused(good, tmp_path, name):
    from explorer.checkpoint import load_resume_state

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / name).write_bytes((good / name).read_bytes())  # a valid file, but not the checkpoint's
    checkpoint = _copy(good, tmp_path / "ckpt")
    (checkpoint / name).unlink()
    (checkpoint / name).symlink_to(outside / name)
    with pytest.raises(CheckpointError, match="outside the checkpoint: refused"):
        load_checkpoint(checkpoint)
        load_resume_state(checkpoint, 3)
    (checkpoint / name).unlink()
    (checkpoint / name).symlink_to(name + ".real")  # a link that stays inside is fine
    (checkpoint / (name + ".real")).write_bytes((good / name).read_bytes())
    load_checkpoint(checkpoint)
    assert load_resume_state(checkpoint, 3)["step"] == 3


def _within(seconds: float, fn):
    result = {}

    def work():
        try:
            result["value"] = fn()
        except Exception as exc:  # noqa: BLE001 - the exception is the result
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert result, "blocked on a special file"
    return result.get("error")


@pytest.mark.parametrize("name", ["meta.json", "generator.safetensors", "latest.json"])
def test_fifos_and_devices_are_never_read(good, tmp_path, name):
    run = tmp_path / "run"
    if name == "latest.json":
        run.mkdir()
        os.mkfifo(run / "latest.json")
        target = run
    else:
        target = _copy(good, run)
        (target / name).unlink()
        os.mkfifo(target / name)
    error = _within(30, lambda: load_checkpoint(target))
    assert isinstance(error, CheckpointError) and "FIFO" in str(error), error
    (target / name).unlink()
    (target / name).symlink_to("/dev/zero")  # a read of it never ends
    error = _within(30, lambda: load_checkpoint(target))
    assert isinstance(error, CheckpointError), error
    assert _within(30, lambda: list_checkpoints(tmp_path)) is None


def test_proc_and_device_files_are_refused_by_the_reader():
    for path in ("/proc/self/status", "/dev/zero", "/dev/null"):
        if os.path.exists(path):
            with pytest.raises(UnsafeFileError, match="never read|not a regular file"):
                read_regular_bytes(path, 1 << 20)


def test_listing_flags_a_link_out_of_the_checkpoints_folder(good, tmp_path):
    root, outside = tmp_path / "checkpoints", tmp_path / "outside"
    _copy(good, outside)
    root.mkdir()
    (root / "escape").symlink_to(outside)
    (info,) = list_checkpoints(root)
    assert info.name == "escape" and info.step is None and "outside the checkpoints folder" in info.error


def test_a_pointer_file_that_is_huge_or_not_an_object_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for content in ("[]", '{"snapshot": 5}', '{"snapshot": "' + "a" * 5000 + '"}', "{" * 100_000):
        (run / "latest.json").write_text(content)
        with pytest.raises(CheckpointError, match="not a valid pointer file"):
            load_checkpoint(run)
    assert latest_snapshot(tmp_path / "nothing-here") is None
