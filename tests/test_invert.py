"""Inversion (explorer.invert, explorer.encoder): z round trip, the encoder cache, input handling, z tokens and the CLI.

The models are tiny (32 px, z_dim 8, width 8) with conv weights drawn wider than the paper's
N(0, 0.02), so that an untrained G still maps different z to clearly different images and its z
is identifiable from its output.
"""
import base64
import io
import json
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from explorer import encoder as encoder_module
from explorer.checkpoint import load_checkpoint, write_checkpoint_dir
from explorer.datasets import ImageDataset
from explorer.datasets.decode import decode_image_file
from explorer.encoder import EncoderTraining, cached_encoder, load_encoder, load_or_train_encoder, train_encoder
from explorer.invert import (
    InputImageError,
    InversionSettings,
    invert,
    invert_images,
    invert_picture,
    load_image_for,
    main,
)
from explorer.latent import latent_norm_stats
from explorer.model import DCGANConfig, Discriminator, Generator
from explorer.precompute import main as precompute
from explorer.real_exemplars import fill_bins_from_dataset, matching_indices
from explorer.urlstate import decode_latent_state, encode_latent_state
from explorer.ztoken import z_from_token, z_to_token

CONFIG = DCGANConfig(image_size=32, channels=3, z_dim=8, g_width=8, d_width=8)
TRAINING = EncoderTraining(pairs=2048, epochs=4)  # an encoder good enough to start from; width etc. as by default
CLI_ENCODER = ["--encoder-pairs", str(TRAINING.pairs), "--encoder-epochs", str(TRAINING.epochs)]
QUICK = EncoderTraining(pairs=256, epochs=1)  # for the tests of caching, where quality does not matter
CLI_QUICK = ["--encoder-pairs", str(QUICK.pairs), "--encoder-epochs", str(QUICK.epochs)]
QUICK_FILE = "encoder-w32-pairs256-epochs1-seed0.safetensors"


def tiny_models(seed: int = 0, channels: int = 3) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    config = DCGANConfig(**{**CONFIG.to_dict(), "channels": channels})
    G, D = Generator(config), Discriminator(config)
    with torch.no_grad():
        for module in G.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.normal_(0.0, 0.15)
    return G.eval(), D.eval()


pytestmark = pytest.mark.usefixtures("one_thread")  # these nets are tiny: see conftest


@pytest.fixture(scope="module")
def models():
    G, D = tiny_models()
    encoder, stats = train_encoder(G, TRAINING, progress_bar=False)
    return G, D, encoder, stats


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "user-cache"))
    G, D = tiny_models()
    meta = {"model": CONFIG.to_dict(), "step": 1, "dataset": {"spec": None}}
    write_checkpoint_dir(tmp_path / "ckpt", meta, {"generator": G, "discriminator": D})
    return load_checkpoint(tmp_path / "ckpt")


def shell_latents(n: int, seed: int) -> torch.Tensor:
    """n latents of the prior's typical norm (inside the band inversion keeps z in)."""
    z = torch.randn(n, CONFIG.z_dim, generator=torch.Generator().manual_seed(seed))
    return z / z.norm(dim=1, keepdim=True) * latent_norm_stats(CONFIG.z_dim).mean


def test_inversion_recovers_the_latent_of_Gs_own_samples(models):
    G, D, encoder, stats = models
    z_true = shell_latents(6, seed=5)
    with torch.no_grad():
        targets = G(z_true)
        start = encoder(targets)
    result = invert(G, D, targets, start, InversionSettings(steps=100, batch_size=4))
    error = np.linalg.norm(result.z - z_true.numpy(), axis=1) / np.linalg.norm(z_true.numpy(), axis=1)
    assert error.max() < 5e-3, error
    assert result.rms.max() < 1e-3 and (result.rms < result.start_rms / 10).all()
    assert result.perceptual.max() < 1e-3
    # the curves start at the encoder's guess and end at the result
    np.testing.assert_allclose(np.sqrt(result.losses["pixel"][:, 0]) / 2, result.start_rms, rtol=1e-5)
    assert (result.losses["total"][:, -1] <= result.losses["total"][:, 0]).all()
    assert result.reconstruction.shape == (6, 32, 32, 3) and result.reconstruction.dtype == np.uint8
    assert result.steps == 100 and result.seconds.shape == (6,) and (result.seconds > 0).all()


def test_the_encoder_starts_close_and_an_image_does_not_depend_on_its_batch(models):
    G, D, encoder, stats = models
    assert stats["pixel_rms_median"] < 0.05 and stats["z_mse"] < 0.2  # held-out pairs, [0, 1] pixel units
    z_true = shell_latents(3, seed=9)
    with torch.no_grad():
        targets = G(z_true)
        start = encoder(targets)
    together = invert(G, D, targets, start, InversionSettings(steps=30, batch_size=3))
    alone = invert(G, D, targets[1:2], start[1:2], InversionSettings(steps=30, batch_size=1))
    np.testing.assert_allclose(alone.z[0], together.z[1], atol=1e-4)


def test_z_stays_in_the_prior_shell_and_the_result_is_never_worse_than_the_start(models):
    G, D, encoder, _ = models
    noise = torch.rand(2, 3, 32, 32) * 2 - 1  # not in G's range: the optimiser would push |z| anywhere
    start = torch.randn(2, CONFIG.z_dim) * 5
    settings = InversionSettings(steps=20, lr=0.5, shell_band=1.0)
    result = invert(G, D, noise, start, settings)
    stats = latent_norm_stats(CONFIG.z_dim)
    norms = np.linalg.norm(result.z, axis=1)
    assert (norms >= stats.mean - stats.std - 1e-4).all() and (norms <= stats.mean + stats.std + 1e-4).all()
    best = result.losses["total"].min(axis=1)
    final_total = result.rms**2 * 4 + settings.perceptual_weight * result.perceptual
    np.testing.assert_allclose(final_total, best, rtol=1e-4)


def test_pixel_only_without_a_discriminator(models):
    G, _, encoder, _ = models
    z_true = shell_latents(2, seed=3)
    with torch.no_grad():
        targets = G(z_true)
    result = invert(G, None, targets, encoder(targets).detach(), InversionSettings(steps=60))
    assert np.isnan(result.perceptual).all() and result.rms.max() < 2e-3
    assert (result.losses["perceptual"] == 0).all()


def test_a_bin_filled_from_the_dataset_by_label_holds_the_inverted_z_of_matching_pictures(models, checkpoint):
    G, _, encoder, _ = models
    z_true = shell_latents(12, seed=21)
    with torch.no_grad():
        pictures = ((G(z_true) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    smiling = torch.tensor([1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0], dtype=torch.uint8)
    dataset = ImageDataset(pictures, "faces-under-test", attribute_names=["Smiling", "Male"], attributes=torch.stack([smiling, 1 - smiling], 1))
    fill = fill_bins_from_dataset(checkpoint, dataset, [("smiling woman", 1.0)], k=3, encoder=encoder, settings=InversionSettings(steps=60))
    assert fill.problems == [] and fill.filled == ["'smiling woman': Smiling=1, Male=0 (#" + ", #".join(map(str, fill.bins[0].indices)) + ")"]
    filled = fill.bins[0]
    assert len(filled.indices) == 3 and smiling[filled.indices].tolist() == [1, 1, 1]
    assert filled.bin.seeds == [] and len(filled.bin.latents) == 3
    found, wanted = np.stack(filled.bin.latents), z_true[filled.indices].numpy()
    assert (np.linalg.norm(found - wanted, axis=1) / np.linalg.norm(wanted, axis=1)).max() < 0.02
    assert np.array_equal(matching_indices(dataset, {"Smiling": 1}, 3, seed=0), filled.indices)  # reproducible by seed
    with pytest.raises(ValueError, match="has no label Eyeglasses; it has: Smiling, Male"):
        matching_indices(dataset, {"Eyeglasses": 1}, 3)
    with pytest.raises(ValueError, match="no image of faces-under-test has Smiling=1, Male=1"):
        matching_indices(dataset, {"Smiling": 1, "Male": 1}, 3)


# ----------------------------------------------------------------------------------------------- encoder cache


def test_the_encoder_is_cached_beside_the_checkpoint_and_reused(checkpoint, monkeypatch):
    assert cached_encoder(checkpoint, QUICK) is None
    first, header = load_or_train_encoder(checkpoint, QUICK, progress_bar=False)
    assert header["trained_now"]
    files = sorted(p.name for p in (checkpoint.path / "analysis").iterdir())
    assert files == [QUICK_FILE]
    with open(checkpoint.path / "analysis" / files[0], "rb") as f:  # safetensors: a JSON header, then raw tensors
        assert f.read(9)[8:9] == b"{"

    def no_training(*args, **kwargs):
        raise AssertionError("the cached encoder should have been reused")

    monkeypatch.setattr(encoder_module, "train_encoder", no_training)
    again, header = load_or_train_encoder(checkpoint, QUICK, progress_bar=False)
    assert not header["trained_now"] and header["cache_key"]["generator_sha256"] == checkpoint.meta["files"]["generator"]["sha256"]
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(first(images), again(images))
    # other training parameters are another cache entry
    with pytest.raises(AssertionError, match="reused"):
        load_or_train_encoder(checkpoint, EncoderTraining(**{**QUICK.__dict__, "seed": 1}), progress_bar=False)


def test_a_damaged_or_foreign_encoder_file_is_not_used(checkpoint):
    load_or_train_encoder(checkpoint, QUICK, progress_bar=False)
    path = next((checkpoint.path / "analysis").iterdir())
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    assert cached_encoder(checkpoint, QUICK) is None
    with pytest.raises(ValueError):
        load_encoder(path)
    path.write_bytes(b"\x80\x04K\x01.")  # a pickle is never loaded
    assert cached_encoder(checkpoint, QUICK) is None
    _, header = load_or_train_encoder(checkpoint, QUICK, progress_bar=False)
    assert header["trained_now"] and cached_encoder(checkpoint, QUICK) is not None


def test_precompute_writes_the_encoder_that_inversion_then_reuses(checkpoint, monkeypatch, tmp_path, capsys):
    assert precompute([str(checkpoint.path), "--n-fake", "16", "--method", "pca", *CLI_QUICK]) == 0
    assert (checkpoint.path / "analysis" / QUICK_FILE).is_file()
    monkeypatch.setattr(encoder_module, "train_encoder", lambda *a, **k: pytest.fail("retrained"))
    Image.new("RGB", (40, 30), (200, 40, 90)).save(tmp_path / "face.png")
    assert main(["--checkpoint", str(checkpoint.path), "--out", str(tmp_path / "out"), str(tmp_path / "face.png"), "--steps", "5", "--no-progress", *CLI_QUICK]) == 0
    assert "encoder: cached at" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- input images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A few dozen bytes of PNG whose header claims width x height 1-bit pixels (it is refused before any decoding)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("mode", "size", "fmt", "channels"),
    [("RGBA", (50, 30), "PNG", 3), ("L", (30, 70), "JPEG", 3), ("RGB", (300, 200), "JPEG", 1), ("P", (33, 33), "GIF", 3), ("RGB", (32, 32), "PNG", 1)],
)
def test_images_of_any_size_and_mode_are_read_as_the_dataset_readers_read_them(tmp_path, mode, size, fmt, channels):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (size[1], size[0], len(mode) if mode in ("RGB", "RGBA") else 1), dtype=np.uint8)
    image = Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array, "L" if mode == "P" else mode)
    image = image.convert("P") if mode == "P" else image
    path = tmp_path / f"input.{fmt.lower()}"
    image.save(path, format=fmt)
    checkpoint = SimpleNamespace(config=DCGANConfig(image_size=32, channels=channels, z_dim=8))
    from_path = load_image_for(checkpoint, path)
    assert from_path.shape == (channels, 32, 32) and from_path.dtype == np.uint8
    np.testing.assert_array_equal(from_path, decode_image_file(path, 32, channels).numpy())
    np.testing.assert_array_equal(load_image_for(checkpoint, path.read_bytes()), from_path)  # an upload's bytes


def test_one_upload_is_inverted_by_one_call(checkpoint, models, tmp_path):
    _, _, encoder, _ = models
    z_true = shell_latents(1, seed=13)
    with torch.no_grad():
        pixels = ((checkpoint.generator(z_true) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    upload = io.BytesIO()
    Image.fromarray(pixels).save(upload, format="PNG")
    done = invert_picture(checkpoint, upload.getvalue(), "me.png", InversionSettings(steps=60), encoder)
    assert done.picture.shape == done.reconstruction.shape == (32, 32, 3) and np.array_equal(done.picture, pixels)
    assert np.linalg.norm(done.z - z_true[0].numpy()) / np.linalg.norm(z_true[0].numpy()) < 0.02
    assert done.pixel_rms < done.start_pixel_rms and np.allclose(z_from_token(done.token, 8), done.z, atol=4e-3)
    from_dataset = invert_picture(checkpoint, np.moveaxis(pixels, -1, 0), settings=InversionSettings(steps=60), encoder=encoder)
    np.testing.assert_array_equal(from_dataset.z, done.z)  # the same picture, the same result
    with pytest.raises(InputImageError, match="me.txt: not an image"):
        invert_picture(checkpoint, b"plain text, not a picture", "me.txt", encoder=encoder)


def test_bad_inputs_are_refused_with_the_reason(tmp_path):
    checkpoint = SimpleNamespace(config=CONFIG)
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, format="PNG")
    cases = {
        "not an image": b"hello, this is text\n" * 10,
        "truncated": png.getvalue()[: len(png.getvalue()) // 2],
        "decompression bomb": bomb_png(10_000, 6_000),  # 60 M pixels: over our limit, under PIL's own
        "the file is empty": b"",
    }
    for reason, data in cases.items():
        path = tmp_path / "input.png"
        path.write_bytes(data)
        with pytest.raises(InputImageError, match=reason):
            load_image_for(checkpoint, path)
        if data:
            with pytest.raises(InputImageError, match=reason):
                load_image_for(checkpoint, data, name="upload.png")
    with pytest.raises(InputImageError, match="decompression bomb"):
        load_image_for(checkpoint, bomb_png(20_000, 20_000))  # 400 M pixels: PIL's own error at open
    with pytest.raises(InputImageError, match="no such file"):
        load_image_for(checkpoint, tmp_path / "missing.png")
    with pytest.raises(InputImageError, match="not a file"):
        load_image_for(checkpoint, tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        invert_images(SimpleNamespace(config=CONFIG), np.zeros((1, 3, 16, 16), np.uint8))


# ----------------------------------------------------------------------------------------------- z tokens


def test_z_tokens_round_trip_and_refuse_anything_else():
    z = torch.randn(100, generator=torch.Generator().manual_seed(0)).numpy() * 1.5
    token = z_to_token(z)
    assert len(token) == 271 and token.replace("-", "").replace("_", "").isalnum()
    back = z_from_token(token, 100)
    assert back.dtype == np.float32 and np.abs(back - z).max() < 4e-3
    assert z_to_token(back) == token
    def raw_token(version: int, values: np.ndarray) -> str:
        raw = struct.pack("<BH", version, len(values)) + values.astype("<f2").tobytes()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    assert raw_token(1, z) == token
    bad = {
        "URL-safe base64": [token[:-1], token + "A", token[:-1] + "*", "", None],
        "version 2": [raw_token(2, z)],
        "holds 99 values": [raw_token(1, z[:99]) + "AAA"],  # right length for z_dim 100, wrong count inside
        "NaN": [raw_token(1, np.full(100, np.nan))],
    }
    for reason, candidates in bad.items():
        for candidate in candidates:
            with pytest.raises(ValueError, match=reason):
                z_from_token(candidate, 100)
    with pytest.raises(ValueError, match="z_dim 99"):
        z_from_token(token, 99)
    with pytest.raises(ValueError):
        z_to_token(np.array([np.nan], np.float32))


def test_an_inverted_latent_travels_in_a_link():
    z = torch.randn(100, generator=torch.Generator().manual_seed(3)).numpy()
    params = encode_latent_state(z, {"attr:Smiling": 1.5, "sefa:0": 0.0})
    assert set(params) == {"z", "d"} and params["d"] == "attr:Smiling:1.5"
    back, offsets, errors = decode_latent_state(params, 100, known_directions={"attr:Smiling"})
    assert errors == [] and offsets == {"attr:Smiling": 1.5} and np.abs(back - z).max() < 4e-3
    assert decode_latent_state({"seed": "4"}, 100) == (None, {}, [])  # a seed link: no latent, no complaint
    damaged, offsets, errors = decode_latent_state({"z": params["z"][:-3], "d": "attr:Smiling:2"}, 100)
    assert damaged is None and offsets == {"attr:Smiling": 2.0}
    assert len(errors) == 1 and "cannot be used: not a z token for z_dim 100" in errors[0]
    assert "not a z token for z_dim 64" in decode_latent_state(params, 64)[2][0]  # another checkpoint's latent


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_writes_a_reconstruction_and_a_record_per_input(checkpoint, tmp_path, capsys):
    G = checkpoint.generator
    z_true = shell_latents(2, seed=11)
    with torch.no_grad():
        pixels = ((G(z_true) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    Image.fromarray(pixels[0]).save(tmp_path / "a.png")
    Image.fromarray(np.kron(pixels[1], np.ones((3, 3, 1), np.uint8))).save(tmp_path / "b.png")  # 96 px: resized
    out = tmp_path / "out"
    args = ["--checkpoint", str(checkpoint.path), "--out", str(out), str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--no-progress", *CLI_ENCODER]
    assert main([*args, "--dry-run"]) == 0 and not out.exists()
    assert "would write" in capsys.readouterr().out
    assert main([*args, "--steps", "60", "--batch-size", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png", "b.json", "b.png"]
    record = json.loads((out / "a.json").read_text())
    assert record["format"] == "latent-lab-inversion" and record["steps"] == 60 and record["seconds"] > 0
    assert len(record["z"]) == 8 and len(record["losses"]["total"]) == 61
    assert np.linalg.norm(np.array(record["z"]) - z_true[0].numpy()) / np.linalg.norm(z_true[0].numpy()) < 0.02
    assert record["pixel_rms"] < 0.01 and record["perceptual_distance"] < 0.01
    np.testing.assert_allclose(z_from_token(record["z_token"], 8), record["z"], atol=4e-3)
    saved = np.asarray(Image.open(out / "a.png"))
    assert saved.shape == (32, 32, 3) and np.abs(saved.astype(int) - pixels[0]).max() <= 8
    # a rerun replaces what it wrote; a file it did not write is refused unless --overwrite
    assert main([*args, "--steps", "2"]) == 0
    (out / "b.png").write_bytes(b"someone else's picture")
    assert main([*args, "--steps", "2"]) == 2
    assert "b.png exists and was not written by explorer.invert" in capsys.readouterr().err
    assert (out / "b.png").read_bytes() == b"someone else's picture"
    assert main([*args, "--steps", "2", "--overwrite"]) == 0
    assert Image.open(out / "b.png").size == (32, 32)


def test_cli_refuses_bad_inputs_and_options_before_any_work(checkpoint, tmp_path, capsys):
    good, text = tmp_path / "good.png", tmp_path / "notes.png"
    Image.new("L", (20, 20), 128).save(good)
    text.write_text("not a picture")
    out = tmp_path / "out"
    base = ["--checkpoint", str(checkpoint.path), "--out", str(out), "--no-progress"]
    assert main([*base, str(good), str(text)]) == 2
    err = capsys.readouterr().err
    assert "notes.png: not an image" in err and "nothing was written" in err and not out.exists()
    assert main([*base, str(good), str(tmp_path / "sub" / "good.jpg")]) == 2
    assert "share the file stem 'good'" in capsys.readouterr().err
    assert main([*base, "--steps", "-1", str(good)]) == 2
    assert "steps must be" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "nothing"), "--out", str(out), str(good)]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (checkpoint.path / "analysis").exists()  # no encoder was trained for any of these
