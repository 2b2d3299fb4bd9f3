"""Seeds, interpolation, walks and the prior's shell (explorer.latent); batched inference (explorer.generate)."""
import math

import numpy as np
import pytest
import torch

from explorer.generate import MAX_GRID, generate, realism, seed_grid
from explorer.latent import (
    MAX_KEYPOINTS,
    MAX_SEED,
    MAX_SEED_TEXT,
    direction_walk,
    keypoint_seeds,
    latent_norm_stats,
    lerp,
    parse_seed,
    parse_seed_list,
    slerp,
    validate_seed,
    walk,
    z_from_seed,
    z_from_seeds,
)
from explorer.model import DCGANConfig, Discriminator, Generator

CONFIG = DCGANConfig(image_size=32, g_width=8, d_width=8, z_dim=16)
Z_DIM = 100


def _equal_norm_pair(seed_a=1, seed_b=2):
    a, b = z_from_seed(seed_a, Z_DIM), z_from_seed(seed_b, Z_DIM)
    return a, b * (a.norm() / b.norm())


# ------------------------------------------------------------------------------------------- seeds


def test_seed_determinism_and_independence_from_global_rng():
    state = torch.get_rng_state()
    z = z_from_seed(42, Z_DIM)
    assert torch.equal(torch.get_rng_state(), state)  # a private generator: global RNG untouched
    torch.manual_seed(123)
    assert torch.equal(z_from_seed(42, Z_DIM), z)
    assert z.shape == (Z_DIM,) and z.dtype == torch.float32
    assert not torch.equal(z_from_seed(43, Z_DIM), z)
    batch = z_from_seeds([42, 7, 42], Z_DIM)
    assert batch.shape == (3, Z_DIM) and torch.equal(batch[0], z) and torch.equal(batch[2], z)
    assert z_from_seeds([], Z_DIM).shape == (0, Z_DIM)
    assert torch.equal(z_from_seed(MAX_SEED, 4), z_from_seed(MAX_SEED, 4))


@pytest.mark.parametrize("seed", [0, 17, MAX_SEED, np.int64(5)])
def test_valid_seeds(seed):
    assert validate_seed(seed) == int(seed) and type(validate_seed(seed)) is int


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 1.0, "3", True, None])
def test_invalid_seeds_are_refused_with_a_clear_message(seed):
    with pytest.raises(ValueError, match="seed must be"):
        validate_seed(seed)
    with pytest.raises(ValueError):
        z_from_seed(seed, Z_DIM)


# ----------------------------------------------------------------------------------- interpolation


def test_lerp_known_values_and_shapes():
    a, b = torch.zeros(3), torch.tensor([2.0, 4.0, -6.0])
    assert torch.equal(lerp(a, b, 0.5), torch.tensor([1.0, 2.0, -3.0]))
    out = lerp(a, b, torch.tensor([0.0, 0.25, 1.0]))
    assert out.shape == (3, 3) and torch.equal(out[0], a) and torch.equal(out[2], b)
    assert torch.allclose(out[1], b / 4)
    assert lerp(torch.zeros(5, 3), torch.ones(5, 3), [0.0, 0.5]).shape == (2, 5, 3)


def test_slerp_hits_endpoints_and_keeps_equal_norms():
    a, b = _equal_norm_pair()
    t = torch.linspace(0, 1, 21)
    path = slerp(a, b, t)
    assert path.shape == (21, Z_DIM)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert torch.allclose(path.norm(dim=1), a.norm().expand(21), rtol=1e-5)
    # Equal angular steps: the midpoint bisects the angle.
    mid = slerp(a, b, 0.5)
    assert mid.shape == (Z_DIM,)
    cos = torch.nn.functional.cosine_similarity
    assert torch.allclose(cos(mid, a, dim=0), cos(mid, b, dim=0), atol=1e-6)
    # lerp, by contrast, dips inside the shell.
    assert lerp(a, b, 0.5).norm() < 0.8 * a.norm()


def test_slerp_batched_rows_are_independent():
    a = z_from_seeds([1, 2, 3], Z_DIM)
    b = z_from_seeds([4, 5, 6], Z_DIM)
    t = torch.tensor([0.0, 0.3, 1.0])
    out = slerp(a, b, t)
    assert out.shape == (3, 3, Z_DIM)
    for row in range(3):
        assert torch.allclose(out[:, row], slerp(a[row], b[row], t), atol=1e-6)


def test_slerp_parallel_guard_falls_back_to_lerp():
    a = z_from_seed(1, Z_DIM)
    t = torch.linspace(0, 1, 11)
    for b in (a.clone(), 2.5 * a, a + 1e-4 * z_from_seed(2, Z_DIM)):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        assert torch.allclose(out, lerp(a, b, t), atol=1e-5)
    zero = slerp(torch.zeros(Z_DIM), a, t)  # no direction to rotate from: lerp, not NaN
    assert torch.isfinite(zero).all() and torch.allclose(zero, lerp(torch.zeros(Z_DIM), a, t))


def test_slerp_antiparallel_takes_a_shell_path_without_nan():
    t = torch.linspace(0, 1, 11)
    a = z_from_seed(1, Z_DIM)
    for b in (-a, -a + 1e-4 * z_from_seed(2, Z_DIM)):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        assert torch.allclose(out[0], a, atol=1e-5) and torch.allclose(out[-1], b, atol=1e-4)
        assert torch.allclose(out.norm(dim=1), a.norm().expand(11), rtol=1e-4)  # never through the origin
    # Deterministic, and the halfway point is perpendicular to both ends.
    assert torch.equal(slerp(a, -a, 0.5), slerp(a, -a, 0.5))
    assert abs(float(torch.dot(slerp(a, -a, 0.5), a))) < 1e-3 * float(a.norm()) ** 2


def test_t_must_be_scalar_or_1d():
    a, b = _equal_norm_pair()
    with pytest.raises(ValueError, match="1-D"):
        slerp(a, b, torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------- walks


@pytest.mark.parametrize("mode", ["lerp", "slerp"])
def test_walk_frame_counts_and_no_duplicate_keypoints(mode):
    keypoints = z_from_seeds(range(9), Z_DIM)  # the paper's 9-point walk
    frames = walk(keypoints, 8, mode)
    assert frames.shape == ((9 - 1) * 8 + 1, Z_DIM)
    for i in range(9):
        assert torch.allclose(frames[i * 8], keypoints[i], atol=1e-5)
    assert ((frames[1:] - frames[:-1]).norm(dim=1) > 1e-3).all()  # no repeated frame anywhere

    looped = walk(keypoints, 8, mode, loop=True)
    assert looped.shape == (9 * 8, Z_DIM)
    assert torch.allclose(looped[:65], frames, atol=1e-5)
    # The last frame is one step short of keypoint 0, so repeating the sequence has no stutter.
    assert (looped[-1] - keypoints[0]).norm() > 1e-3
    assert walk(keypoints[:2], 1, mode).shape == (2, Z_DIM)


def test_walk_rejects_bad_arguments():
    keypoints = z_from_seeds(range(3), Z_DIM)
    with pytest.raises(ValueError, match="mode"):
        walk(keypoints, 4, "cubic")
    with pytest.raises(ValueError, match="K >= 2"):
        walk(keypoints[:1], 4)
    with pytest.raises(ValueError, match="frames_per_segment"):
        walk(keypoints, 0)


def test_direction_walk_spans_both_sides_of_z():
    z = z_from_seed(3, Z_DIM)
    direction = 5.0 * z_from_seed(4, Z_DIM)  # any length: it is normalised
    unit = direction / direction.norm()
    frames = direction_walk(z, direction, span=3.0, frames=7)
    assert frames.shape == (7, Z_DIM)
    assert torch.allclose(frames[0], z - 3.0 * unit, atol=1e-5)
    assert torch.allclose(frames[-1], z + 3.0 * unit, atol=1e-5)
    assert torch.allclose(frames[3], z, atol=1e-6)
    steps = (frames[1:] - frames[:-1]).norm(dim=1)
    assert torch.allclose(steps, torch.full((6,), 1.0), atol=1e-5)  # 6 equal steps over 2 * span
    with pytest.raises(ValueError, match="non-zero"):
        direction_walk(z, torch.zeros(Z_DIM), 1.0, 5)
    with pytest.raises(ValueError, match="frames"):
        direction_walk(z, direction, 1.0, 1)


def test_latent_norm_stats_match_the_chi_distribution():
    one = latent_norm_stats(1)  # |N(0, 1)|: mean sqrt(2 / pi), variance 1 - 2 / pi
    assert math.isclose(one.mean, math.sqrt(2 / math.pi), rel_tol=1e-12)
    assert math.isclose(one.std, math.sqrt(1 - 2 / math.pi), rel_tol=1e-9)
    stats = latent_norm_stats(100)
    assert abs(stats.mean - math.sqrt(99.5)) < 1e-3
    norms = torch.randn(20000, 100, generator=torch.Generator().manual_seed(0)).norm(dim=1)
    assert abs(stats.mean - norms.mean().item()) < 0.02 and abs(stats.std - norms.std().item()) < 0.02
    assert math.isfinite(latent_norm_stats(10**6).mean)


# -------------------------------------------------------------------------------------- generation


@pytest.fixture()
def models():
    torch.manual_seed(0)
    return Generator(CONFIG).eval(), Discriminator(CONFIG).eval()


def test_generate_is_chunked_cpu_float32_and_batch_independent(models):
    G, _ = models
    z = z_from_seeds(range(10), CONFIG.z_dim)
    images = generate(G, z)
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.float32 and images.device.type == "cpu"
    assert images.abs().max() <= 1.0
    assert torch.allclose(generate(G, z, batch_size=3), images, atol=1e-6)
    assert torch.allclose(generate(G, z[4:5])[0], images[4], atol=1e-6)  # eval-mode BN: own z only
    assert generate(G, z[:0]).shape == (0, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        generate(G, torch.zeros(2, 7))
    with pytest.raises(ValueError, match="NaN"):
        generate(G, torch.full((1, 16), float("nan")))


def test_generate_on_a_training_mode_model_leaves_it_as_it_was(models):
    G, _ = models
    z = z_from_seeds(range(4), CONFIG.z_dim)
    expected = generate(G, z)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    G.train()
    assert torch.equal(generate(G, z), expected)
    assert G.training
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no BN statistics updated


def test_realism_is_sigmoid_of_the_logit(models):
    G, D = models
    images = generate(G, z_from_seeds(range(5), CONFIG.z_dim))
    scores = realism(D, images, batch_size=2)
    assert scores.shape == (5,) and ((scores >= 0) & (scores <= 1)).all()
    with torch.no_grad():
        assert np.allclose(scores, torch.sigmoid(D(images)).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="no discriminator"):
        realism(None, images)


def test_seed_grid(models):
    G, _ = models
    images, seeds = seed_grid(G, 100, 6)
    assert seeds == [100, 101, 102, 103, 104, 105]
    assert torch.allclose(images, generate(G, z_from_seeds(seeds, CONFIG.z_dim)))
    for count in (0, MAX_GRID + 1, 2.0):
        with pytest.raises(ValueError, match="count"):
            seed_grid(G, 0, count)
    with pytest.raises(ValueError, match="past the largest seed"):
        seed_grid(G, MAX_SEED, 2)
    with pytest.raises(ValueError, match="seed"):
        seed_grid(G, -5, 2)


def test_apply_offsets_moves_raw_coordinates_and_unit_directions():
    from explorer.latent import apply_offsets

    z = torch.zeros(4)
    out = apply_offsets(z, {"z:1": 2.0, "d": 3.0, "unused": 0.0}, {"d": np.array([0.0, 0.0, 0.0, 5.0])})
    assert torch.equal(out, torch.tensor([0.0, 2.0, 0.0, 3.0]))  # the direction is normalised first
    assert torch.equal(z, torch.zeros(4)), "the input latent is not modified"


# ------------------------------------------------------------------------------------------- the one seed parser


@pytest.mark.parametrize("value, seed", [(7, 7), (np.int64(7), 7), (7.0, 7), ("7", 7), (" 42 ", 42), (str(MAX_SEED), MAX_SEED)])
def test_parse_seed_takes_what_widgets_and_links_carry(value, seed):
    assert parse_seed(value) == seed and type(parse_seed(value)) is int


@pytest.mark.parametrize("value", ["-1", "1.5", "1e3", "0x10", "²", "٣", "", "4294967296", "9" * 5000, 1.5, -1, MAX_SEED + 1, True, None, float("nan")])
def test_parse_seed_refuses_everything_else_naming_the_field(value):
    with pytest.raises(ValueError, match="^noise seed: ") as caught:
        parse_seed(value, "noise seed")
    assert "whole number" in str(caught.value) or "between 0 and 4294967295" in str(caught.value)
    assert len(str(caught.value)) < 200  # a huge text is shortened in the message


def test_parse_seed_list_keeps_the_good_parts_and_says_what_is_wrong():
    assert parse_seed_list("1, 2 3;4") == ([1, 2, 3, 4], [])
    assert parse_seed_list(None) == ([], [])
    seeds, errors = parse_seed_list("1, banana, 2, -3", "bin 'a'")
    assert seeds == [1, 2] and errors == [
        "bin 'a': 'banana' is not a whole number from 0 to 4294967295", "bin 'a': '-3' is not a whole number from 0 to 4294967295"]
    seeds, errors = parse_seed_list(",".join(map(str, range(100))), "bin 'a'", limit=64)
    assert seeds == list(range(64)) and errors == ["bin 'a' lists 100 seeds; at most 64 are allowed, so the first 64 are used"]
    assert parse_seed_list("1 " * 5000, "x") == ([], [f"x is 10,000 characters long; at most {MAX_SEED_TEXT:,} are read"])
    assert parse_seed_list(5, "x") == ([], ["x must be text listing seeds, e.g. '12, 40, 7'"])


def test_keypoint_seeds_for_walks():
    assert keypoint_seeds("0, 1, 2") == ([0, 1, 2], [])
    seeds, messages = keypoint_seeds("7, x")
    assert seeds == [7] and messages[0].startswith("keypoint seeds: 'x'") and messages[-1].startswith("a walk needs at least two")
    seeds, messages = keypoint_seeds(" ".join(map(str, range(20))))
    assert seeds == list(range(MAX_KEYPOINTS)) and messages == [f"keypoint seeds lists 20 seeds; at most {MAX_KEYPOINTS} are allowed, so the first {MAX_KEYPOINTS} are used"]
