"""Real exemplars' core: filling bins from a dataset by its own labels, joining inverted pictures, and their tokens in links."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.arithmetic import MAX_BIN_SEEDS
from explorer.checkpoint import load_checkpoint
from explorer.datasets import ImageDataset
from explorer.invert import InversionSettings, invert_images
from explorer.real_exemplars import InvertedExemplar, fill_bins_from_dataset, join_exemplars, matching_indices
from explorer.urlstate import MAX_INVERTED_CHARS, decode_inverted, encode_inverted
from explorer.ztoken import parse_z_tokens, z_from_token, z_to_token
from tests.support.checkpoints import tiny_encoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: see conftest

Z_DIM = 100  # the tiny test checkpoint's


def tokens(n: int, seed: int = 0, z_dim: int = Z_DIM) -> list[str]:
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).numpy()
    return [z_to_token(v) for v in z]


def test_join_keeps_one_copy_of_a_picture_and_a_bins_limit():
    a, b, c = (InvertedExemplar(t, name) for t, name in zip(tokens(3), ("a.png", "b.png", "c.png")))
    joined, notes = join_exemplars([a], [b, InvertedExemplar(a.token, "a again.png"), c], seeds=0)
    assert joined == [a, b, c] and notes == ["a again.png is already in the bin"]
    joined, notes = join_exemplars([a], [b, c], seeds=MAX_BIN_SEEDS - 2)  # room for one more
    assert joined == [a, b] and notes == [f"c.png was left out: a bin holds at most {MAX_BIN_SEEDS} exemplars"]


def test_tokens_parse_from_a_text_box_with_reasons_for_bad_ones():
    t = tokens(3)
    found, problems = parse_z_tokens(f" {t[0]},{t[1]}\n{t[0]} ; {t[2]} ", Z_DIM, "A", 8)
    assert found == t and problems == []
    found, problems = parse_z_tokens(f"{t[0]}, AAAA, {tokens(1, z_dim=16)[0]}", Z_DIM, "group A", 8)
    assert found == [t[0]] and len(problems) == 2
    assert problems[0].startswith("group A: 'AAAA' cannot be used: not a z token for z_dim 100")
    found, problems = parse_z_tokens(", ".join(t), Z_DIM, "A", 2)
    assert found == t[:2] and problems == ["A lists 3 inverted pictures; only the first 2 were used"]
    assert parse_z_tokens(None, Z_DIM, "A", 2) == ([], [])


def test_inverted_pictures_round_trip_through_a_link_per_bin():
    t = tokens(3)
    params, left_out = encode_inverted([[t[0], t[1]], [], [t[2]]])
    assert params == {"inv": f"{t[0]},{t[1]};;{t[2]}"} and left_out == 0
    assert decode_inverted(params, ["a", "b", "c"], Z_DIM) == ([[t[0], t[1]], [], [t[2]]], [])
    assert encode_inverted([[], []]) == ({}, 0)
    assert decode_inverted({}, ["a"], Z_DIM) == ([[]], [])
    # a link that would be too long keeps the first tokens that fit and counts the rest
    many = tokens(80, seed=1)
    params, left_out = encode_inverted([many])
    kept = params["inv"].split(",")
    assert kept == many[: len(kept)] and left_out == 80 - len(kept) > 0 and len(params["inv"]) <= MAX_INVERTED_CHARS
    # damaged links: each repair is said, the rest is used
    real, errors = decode_inverted({"inv": f"{t[0]},xyz;{t[1]};{t[2]}"}, ["smiling", "neutral"], Z_DIM)
    assert real == [[t[0]], [t[1]]]
    assert "bin 'smiling': 'xyz' cannot be used" in errors[1] and "inverted pictures for 3 bins but 2 bins" in errors[0]
    real, errors = decode_inverted({"inv": "A" * (MAX_INVERTED_CHARS + 1)}, ["a"], Z_DIM)
    assert real == [[]] and "were ignored" in errors[0]


@pytest.fixture(scope="module")
def faces(tiny_checkpoints):
    """The tiny checkpoint with a quick encoder, and 16 of its own renders labelled Smiling/Male by hand (smiling women, neutral men)."""
    with tiny_encoder(tiny_checkpoints.tiny) as (checkpoint, encoder):
        z = torch.randn(16, checkpoint.config.z_dim, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            pictures = ((checkpoint.generator(z) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        smiling = torch.tensor([1, 0] * 8, dtype=torch.uint8)
        male = 1 - smiling  # no smiling man, no neutral woman
        dataset = ImageDataset(pictures, "faces-under-test", attribute_names=["Smiling", "Male"], attributes=torch.stack([smiling, male], 1))
        yield checkpoint, encoder, dataset


def test_bins_are_filled_by_their_names_labels_in_one_batch(faces):
    checkpoint, encoder, dataset = faces
    settings = InversionSettings(steps=5)
    bins = [("smiling woman", 1.0), ("blue sky", -1.0), ("neutral man", 1.0), ("smiling man", 1.0)]
    fill = fill_bins_from_dataset(checkpoint, dataset, bins, k=2, seed=3, settings=settings, encoder=encoder)
    assert fill.bins[1] is None and fill.bins[3] is None and fill.exemplars[1] is None
    assert fill.problems == [
        "'blue sky' names none of faces-under-test's labels (Smiling, Male), so it was left as it was",
        "'smiling man' was left as it was: no image of faces-under-test has Smiling=1, Male=1",
    ]
    smiling_woman, neutral_man = fill.bins[0], fill.bins[2]
    assert np.array_equal(smiling_woman.indices, matching_indices(dataset, {"Smiling": 1, "Male": 0}, 2, seed=3))
    assert np.array_equal(neutral_man.indices, matching_indices(dataset, {"Smiling": 0, "Male": 1}, 2, seed=3))
    assert dataset.attributes[smiling_woman.indices].tolist() == [[1, 0], [1, 0]] and len(fill.filled) == 2
    assert smiling_woman.bin.name == "smiling woman" and smiling_woman.bin.weight == 1.0 and smiling_woman.bin.seeds == []
    assert fill.filled[0] == f"'smiling woman': Smiling=1, Male=0 (#{smiling_woman.indices[0]}, #{smiling_woman.indices[1]})"
    # the batched inversion gives each picture what inverting it alone gives (results do not depend on batch-mates)
    alone = invert_images(checkpoint, dataset.images[neutral_man.indices], settings, encoder)
    assert np.allclose(np.stack(neutral_man.bin.latents), alone.z, atol=1e-5)
    assert np.array_equal(neutral_man.inversion.reconstruction, alone.reconstruction)
    assert [e.label for e in fill.exemplars[2]] == [f"faces-under-test #{i}" for i in neutral_man.indices]
    assert np.abs(np.stack([e.z(checkpoint.config.z_dim) for e in fill.exemplars[2]]) - alone.z).max() < 4e-3  # float16 tokens
    with pytest.raises(ValueError, match="pictures per bin must be a whole number from 1 to 8"):
        fill_bins_from_dataset(checkpoint, dataset, bins, k=9, encoder=encoder)
    unlabelled = ImageDataset(dataset.images, "plain-pictures")
    with pytest.raises(ValueError, match="plain-pictures has no labels"):
        fill_bins_from_dataset(checkpoint, unlabelled, bins, encoder=encoder)
    assert z_from_token(fill.exemplars[0][0].token, checkpoint.config.z_dim).shape == (checkpoint.config.z_dim,)
