"""Checkpoints: atomic snapshots, the validating loader, hostile and broken files, export."""
import errno
import json
import pickle
import subprocess
import sys

import pytest
import torch

import explorer.checkpoint as ckpt
import explorer.fsio as fsio
from explorer.checkpoint import CheckpointError, export_checkpoint, load_checkpoint, save_snapshot
from explorer.model import DCGANConfig, Discriminator, Generator
from explorer.rundir import latest_snapshot

CONFIG = DCGANConfig(image_size=32, channels=3, g_width=8, d_width=8, z_dim=16)


def _save(run_dir, step, G=None, D=None, **kw):
    torch.manual_seed(step)
    G = G or Generator(CONFIG)
    D = D or Discriminator(CONFIG)
    meta = {"model": CONFIG.to_dict(), "step": step, "dataset": {"spec": "test", "attribute_names": ["Smiling"]}}
    return save_snapshot(run_dir, meta, {"generator": G, "discriminator": D}, {"step": step}, **kw), G, D


def test_round_trip_gives_identical_outputs(tmp_path):
    path, G, D = _save(tmp_path / "run", 7)
    G.eval(), D.eval()
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.step == 7 and loaded.config == CONFIG and loaded.attribute_names == ["Smiling"]
    assert not loaded.generator.training
    z = torch.randn(4, CONFIG.z_dim)
    with torch.no_grad():
        assert torch.equal(loaded.generator(z), G(z))
        x = G(z)
        assert torch.equal(loaded.discriminator(x), D(x))
    meta = json.loads((path / "meta.json").read_text())
    assert meta["versions"]["torch"] == torch.__version__
    assert set(meta["files"]) == {"generator", "discriminator"}


def test_latest_pointer_moves_and_old_snapshots_are_pruned(tmp_path):
    run = tmp_path / "run"
    for step in (1, 2, 3):
        _save(run, step, keep=2)
    assert latest_snapshot(run).name == "step-00000003"
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step-00000002", "step-00000003"]


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _save(run, 1)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_file", disk_full)
    with pytest.raises(OSError, match="previous checkpoint .*step-00000001 is intact") as info:
        _save(run, 2)
    assert info.value.errno == errno.ENOSPC
    assert latest_snapshot(run).name == "step-00000001"
    assert load_checkpoint(run).step == 1
    assert not list((run / "snapshots").glob(".tmp-*"))  # no half-written directory left behind


def test_truncated_weights_are_refused(tmp_path):
    path, _, _ = _save(tmp_path / "run", 1)
    weights = path / "generator.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "run")


def test_wrong_shapes_and_lying_meta_are_refused(tmp_path):
    path, _, _ = _save(tmp_path / "run", 1)
    meta = json.loads((path / "meta.json").read_text())
    meta["model"]["g_width"] = 16  # meta claims a wider generator than the weights hold
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path)


def test_wrong_dtype_is_refused(tmp_path):
    from safetensors.torch import save_file

    path, G, _ = _save(tmp_path / "run", 1)
    state = {k: (v.to(torch.int32) if v.is_floating_point() else v) for k, v in G.state_dict().items()}
    save_file(state, str(path / "generator.safetensors"))
    meta = json.loads((path / "meta.json").read_text())
    meta["files"]["generator"]["sha256"] = ckpt._sha256(path / "generator.safetensors")
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(path)


class _Boom:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_pickles_are_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="never loaded"):
        load_checkpoint(evil)
    # A hostile resume.pt inside a real checkpoint: torch.load(weights_only=True) refuses it.
    path, _, _ = _save(tmp_path / "run", 1)
    (path / "resume.pt").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="resume state"):
        ckpt.load_resume_state(path, 1)
    # A weight file that is really a pickle: not a safetensors file.
    (path / "generator.safetensors").write_bytes(pickle.dumps(_Boom()))
    meta = json.loads((path / "meta.json").read_text())
    meta["files"]["generator"]["sha256"] = None
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format": "something-else"}), "not a latent-lab checkpoint"),
        (json.dumps({"format": "latent-lab-dcgan", "format_version": 99}), "newer latent-lab"),
        (json.dumps({"format": "latent-lab-dcgan", "format_version": 1, "model": {"image_size": 48}, "step": 1}), "model.image_size must be one of 32, 64, 128, got 48"),
    ],
)
def test_bad_meta_is_refused(tmp_path, content, message):
    (tmp_path / "meta.json").write_text(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def test_pointer_outside_run_and_missing_paths(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.json").write_text(json.dumps({"snapshot": "../../etc"}))
    with pytest.raises(CheckpointError, match="outside"):
        load_checkpoint(run)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_export_is_flat_fp16_and_equivalent(tmp_path):
    _, G, _ = _save(tmp_path / "run", 5)
    out = export_checkpoint(tmp_path / "run", tmp_path / "shipped", torch.float16)
    assert (out / "meta.json").is_file() and not (out / "resume.pt").exists()
    full, half = load_checkpoint(tmp_path / "run"), load_checkpoint(out)
    assert half.step == 5 and half.meta["exported_from"]["dtype"] == "torch.float16"
    z = torch.randn(8, CONFIG.z_dim)
    with torch.no_grad():
        diff = (full.generator(z) - half.generator(z)).abs().max().item()
    assert 0 < diff < 0.05  # fp16 rounding of the weights only
    size = lambda p: sum(f.stat().st_size for f in p.rglob("*.safetensors"))  # noqa: E731
    assert size(out) < 0.6 * size(tmp_path / "run" / "snapshots")



@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_resaving_a_step_replaces_it_without_a_gap(tmp_path, monkeypatch, exchange):
    if not exchange:  # a kernel or filesystem without RENAME_EXCHANGE
        monkeypatch.setattr(fsio, "exchange_dirs", lambda a, b: False)
    run = tmp_path / "run"
    _save(run, 5)
    path, G, _ = _save(run, 5)  # the final save right after a periodic one at the same step
    z = torch.randn(2, CONFIG.z_dim)
    G.eval()
    with torch.no_grad():
        assert torch.equal(load_checkpoint(run).generator(z), G(z))  # the second save's weights
    assert [p.name for p in path.parent.iterdir()] == ["step-00000005"]  # no .tmp-/.old- left behind


def test_a_kill_between_the_fallback_renames_leaves_a_loadable_copy(tmp_path):
    run = tmp_path / "run"
    path, G, _ = _save(run, 5)
    # _replace_dir's fallback killed after renaming the old copy aside, before moving the new one in
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # the killed writer: a process that no longer runs
    aside = path.with_name(f".old-{path.name}-{finished.pid}")
    path.rename(aside)
    loaded = load_checkpoint(run)  # latest.json -> the missing snapshot -> its aside copy
    assert loaded.step == 5 and loaded.path == aside
    assert load_checkpoint(path).path == aside  # also when the snapshot itself is named
    _save(run, 6, keep=1)  # the next write moves the aside copy back, then prunes it as an old snapshot
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == ["step-00000006"]
