"""Import of pytorch/examples dcgan checkpoints (training.import_checkpoint): same outputs, clear refusals.

`ExamplesGenerator`/`ExamplesDiscriminator` re-declare pytorch/examples' dcgan/main.py networks
(one nn.Sequential called `main`, the same layer order and indices, so `state_dict()` has the same
keys: main.0.weight, main.1.weight/bias/running_mean/running_var/num_batches_tracked, ...), small
(ngf = ndf = 8, nz = 16) so the test is fast. The checkpoints are written as main.py writes them,
`torch.save(net.state_dict(), "netG_epoch_N.pth")`.
"""
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from explorer.checkpoint import load_checkpoint, write_checkpoint_dir
from explorer.model import DCGANConfig, Generator
from explorer.fsio import sha256_file
from explorer.precompute import main as precompute
from explorer.real_exemplars import unknown_data_message
from training.import_checkpoint import main

NZ, NGF, NDF = 16, 8, 8


class ExamplesGenerator(nn.Module):
    def __init__(self, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
            nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF), nn.ReLU(True),
            nn.ConvTranspose2d(NGF, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x)


class ExamplesDiscriminator(nn.Module):
    def __init__(self, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x):
        return self.main(x).view(-1, 1).squeeze(1)


def trained_looking(net: nn.Module, seed: int) -> nn.Module:
    """Weights as after training: convs wider than main.py's N(0, 0.02) init (so G's outputs span Tanh's range),
    BN scales, shifts and running statistics away from their defaults, so that a wrong mapping of any of them
    changes the outputs."""
    torch.manual_seed(seed)
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(module.weight, 0.0, 0.1)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.normal_(module.weight, 1.0, 0.2)
            nn.init.normal_(module.bias, 0.0, 0.2)
            module.running_mean.normal_(0.0, 0.05)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(1234)
    return net.eval()


@pytest.fixture
def examples(tmp_path):
    """pytorch/examples-style netG_epoch_3.pth and netD_epoch_3.pth, and the networks that wrote them."""
    G, D = trained_looking(ExamplesGenerator(), 0), trained_looking(ExamplesDiscriminator(), 1)
    torch.save(G.state_dict(), tmp_path / "netG_epoch_3.pth")
    torch.save(D.state_dict(), tmp_path / "netD_epoch_3.pth")
    return tmp_path / "netG_epoch_3.pth", tmp_path / "netD_epoch_3.pth", G, D


def assert_same_networks(out: Path, G: nn.Module, D: nn.Module | None) -> None:
    checkpoint = load_checkpoint(out)
    assert checkpoint.config == DCGANConfig(image_size=64, channels=3, z_dim=NZ, g_width=NGF, d_width=NDF if D is not None else 64)
    z = torch.randn(16, NZ, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        theirs, ours = G(z.view(-1, NZ, 1, 1)), checkpoint.generator(z)
        assert theirs.abs().max() > 0.3  # outputs spread over Tanh's range, not a degenerate net
        assert (theirs - ours).abs().max() <= 1e-5
        if D is not None:
            images = theirs + 0.1 * torch.randn(theirs.shape, generator=torch.Generator().manual_seed(8))
            logits = D.main[:-1](images).flatten()  # theirs before the Sigmoid
            assert logits.std() > 1e-3
            assert (checkpoint.discriminator(images) - logits).abs().max() <= 1e-5
            assert (torch.sigmoid(checkpoint.discriminator(images)) - D(images)).abs().max() <= 1e-6
        else:
            assert checkpoint.discriminator is None


def test_pytorch_examples_checkpoints_import_with_identical_outputs(examples, tmp_path, capsys):
    netg, netd, G, D = examples
    out = tmp_path / "checkpoints" / "imported"
    assert main([str(netg), "--netD", str(netd), "--out", str(out)]) == 0
    assert "pytorch/examples dcgan" in capsys.readouterr().out
    assert_same_networks(out, G, D)
    meta = json.loads((out / "meta.json").read_text())
    source = meta["imported_from"]
    assert source["generator"]["sha256"] == sha256_file(netg) and source["generator"]["path"] == str(netg.resolve())
    assert source["discriminator"]["sha256"] == sha256_file(netd)
    assert meta["dataset"]["spec"] is None and meta["dataset"]["known"] is False and "unknown" in meta["dataset"]["note"]
    assert meta["epoch"] == 3 and meta["step"] == 0
    # what needs the training pictures says so plainly
    message = unknown_data_message(load_checkpoint(out))
    assert f"imported from {netg.resolve()}" in message and "training data is unknown" in message and "--dataset SPEC" in message
    assert precompute([str(out), "--n-fake", "16", "--method", "pca", "--no-encoder"]) == 0
    assert f"warning: {message}" in capsys.readouterr().err


def test_safetensors_and_this_projects_layout_import_too(examples, tmp_path):
    netg, netd, G, D = examples
    as_safetensors = tmp_path / "g.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(as_safetensors))
    assert main([str(as_safetensors), "--out", str(tmp_path / "from-safetensors")]) == 0
    assert_same_networks(tmp_path / "from-safetensors", G, None)
    # a plain state dict of explorer.model's own layout (blocks.*), e.g. from another tool's export
    ours = Generator(DCGANConfig(z_dim=NZ, g_width=NGF))
    ours.load_state_dict(load_checkpoint(tmp_path / "from-safetensors").generator.state_dict())
    torch.save(ours.state_dict(), tmp_path / "plain.pt")
    assert main([str(tmp_path / "plain.pt"), "--netD", str(netd), "--out", str(tmp_path / "from-plain")]) == 0
    assert_same_networks(tmp_path / "from-plain", G, D)


def test_a_grayscale_net_of_another_size_has_its_shapes_inferred(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "cache"))  # --dataset renders a face to read its names
    # pytorch/examples' layout with one block fewer (32 px) and one output channel (its --dataset mnist)
    G = trained_looking(ExamplesGenerator(nc=1), 2)
    G.main = nn.Sequential(*list(G.main)[3:])  # drop the first block: starts at ngf*4 from a 1x1 z of NGF*8 channels
    first = G.main[0]
    G.main[0] = nn.ConvTranspose2d(NZ, first.out_channels, 4, 1, 0, bias=False)
    trained_looking(G, 3)
    torch.save(G.state_dict(), tmp_path / "netG.pth")
    assert main([str(tmp_path / "netG.pth"), "--out", str(tmp_path / "out"), "--dataset", "synthetic-faces:4"]) == 0
    checkpoint = load_checkpoint(tmp_path / "out")
    assert checkpoint.config == DCGANConfig(image_size=32, channels=1, z_dim=NZ, g_width=NGF)
    z = torch.randn(4, NZ)
    with torch.no_grad():
        assert (G(z.view(-1, NZ, 1, 1)) - checkpoint.generator(z)).abs().max() <= 1e-5
    assert checkpoint.dataset["spec"] == "synthetic-faces:4" and "Smiling" in checkpoint.attribute_names


class Payload:
    """A pickle that would write a file when unpickled (torch.load(weights_only=True) must refuse it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _mutated(examples, change):
    netg = examples[0]
    state = torch.load(netg, weights_only=True)
    change(state)
    torch.save(state, netg)
    return netg


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("main.1.running_var"), "missing ['running_var']"),
        (lambda s: s.__setitem__("main.4.running_mean", torch.zeros(7)), "main.4|blocks.1.1.running_mean has shape (7,)"),
        (lambda s: s.__setitem__("main.3.weight", torch.zeros(NGF * 8, NGF * 4, 4, 3)), "has shape (64, 32, 4, 3)"),
        (lambda s: s["main.6.weight"].view(-1)[5].fill_(float("nan")), "NaN"),
        (lambda s: s.__setitem__("main.0.bias", torch.zeros(NGF * 8)), "have no bias"),
        (lambda s: s.__setitem__("fc.weight", torch.zeros(3, 3)), "unknown key layout"),
        (lambda s: s.__setitem__("main.0.weight", torch.zeros(NZ, NGF * 8, 4, 4, dtype=torch.int64)), "expected floating point"),
    ],
)
def test_mismatched_state_dicts_are_refused_with_the_reason(examples, tmp_path, capsys, change, message):
    netg = _mutated(examples, change)
    out = tmp_path / "out"
    assert main([str(netg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert any(part in err for part in message.split("|")), err
    assert not out.exists()


def test_hostile_and_foreign_files_are_refused(examples, tmp_path, capsys):
    netg, netd, _, _ = examples
    marker = tmp_path / "marker.txt"
    hostile = tmp_path / "netG_hostile.pth"
    torch.save({"main.0.weight": Payload(marker)}, hostile)
    truncated = tmp_path / "netG_truncated.pth"
    truncated.write_bytes(netg.read_bytes()[: os.path.getsize(netg) // 2])
    whole_module = tmp_path / "netG_module.pth"
    torch.save(trained_looking(ExamplesGenerator(), 0), whole_module)  # the module object, not its state_dict
    not_tensors = tmp_path / "lists.pth"
    torch.save({"main.0.weight": [1.0, 2.0]}, not_tensors)
    raw_pickle = tmp_path / "plain.pkl"  # pickle.dump, not torch.save
    raw_pickle.write_bytes(pickle.dumps({"main.0.weight": [1.0, 2.0]}))
    cases = [
        ([str(hostile)], "(Unsupported global: GLOBAL getattr was not an allowed global by default); nothing was unpickled"),
        ([str(whole_module)], "pickled Python objects or code"),
        ([str(truncated)], "not a readable torch.save file"),
        ([str(not_tensors)], "not a state dict"),
        ([str(raw_pickle)], "refused, it holds pickled Python objects or code"),
        ([str(netd)], "not a DCGAN generator (pass the generator as SRC and this file as --netD)"),
        ([str(netg), "--netD", str(netg)], "not a DCGAN discriminator"),
        ([str(tmp_path / "missing.pth")], "no such file"),
        ([str(netg), "--dataset", "celeba"], "celeba needs the dataset folder"),
    ]
    for args, message in cases:
        assert main([*args, "--out", str(tmp_path / "out")]) == 2
        assert message in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_never_overwrites_a_folder_it_did_not_write(examples, tmp_path, capsys):
    netg, netd, G, D = examples
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main([str(netg), "--out", str(foreign), "--overwrite"]) == 2
    assert "was not written by training.import_checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    trained = tmp_path / "trained"  # a checkpoint of this project's own training is not replaced either
    config = DCGANConfig(z_dim=NZ, g_width=NGF)
    write_checkpoint_dir(trained, {"model": config.to_dict(), "step": 5}, {"generator": Generator(config)})
    assert main([str(netg), "--out", str(trained), "--overwrite"]) == 2
    assert load_checkpoint(trained).step == 5

    out = tmp_path / "imported"
    assert main([str(netg), "--out", str(out), "--dry-run"]) == 0 and not out.exists()
    assert main([str(netg), "--out", str(out)]) == 0
    assert main([str(netg), "--netD", str(netd), "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([str(netg), "--netD", str(netd), "--out", str(out), "--overwrite"]) == 0
    assert_same_networks(out, G, D)
