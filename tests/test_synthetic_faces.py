"""The procedural face renderer: shapes, determinism, what each attribute draws, base rates,
variety, anti-aliasing and the .npz cache. Small batches only: the whole file runs in seconds."""
from __future__ import annotations

import os

import numpy as np
import pytest

from explorer.datasets import face_drawing
from explorer.datasets import synthetic_faces as sf

# Pixel boxes (rows, cols) of a 64 px face posed by _posed(): head centred, scale 1, no yaw/roll.
# Canvas y = 1.2 * head-local y there, so row = (1.2 y + 1) * 32 - 0.5.
MOUTH = (slice(38, 56), slice(18, 46))  # lip line at y 0.27..0.36, open mouth down to 0.55
LIPS = (slice(40, 50), slice(20, 44))  # upper lip and teeth only: below the nose, inside every face
EYES = (slice(21, 38), slice(0, 64))  # lenses y -0.21..0.06, temples reach the ears
TOP = (slice(0, 27), slice(0, 64))  # hat: y < -0.19
FOREHEAD = (slice(12, 26), slice(10, 54))  # between the hairline (-0.46) and the brows (-0.2)
UNDER_NOSE = (slice(38, 48), slice(18, 46))  # mustache: y 0.22..0.35


def _posed(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """n random faces with every attribute off and a fixed frontal pose, so pixel boxes are known."""
    p = sf.sample_parameters(n, seed)
    for name in sf.ATTRIBUTE_NAMES:
        p[name][:] = 0
    pose = {"yaw": 0.0, "roll": 0.0, "head_x": 0.0, "head_y": 0.0, "head_scale": 1.0, "face_width": 1.0}
    for name, value in pose.items():
        p[name][:] = value
    return p


def _with(p: dict[str, np.ndarray], **values) -> dict[str, np.ndarray]:
    q = {k: v.copy() for k, v in p.items()}
    for name, value in values.items():
        q[name][:] = value
    return q


def _change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per-pixel change, summed over RGB: (N, H, W) float."""
    return np.abs(before.astype(np.float32) - after.astype(np.float32)).sum(axis=-1)


def _share_inside(change: np.ndarray, box: tuple[slice, slice]) -> float:
    return float(change[:, box[0], box[1]].sum() / change.sum())


# --- shapes, dtypes, determinism -----------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_shapes_dtypes_and_labels(size):
    faces = sf.generate(10, seed=0, size=size)
    assert faces.images.shape == (10, size, size, 3) and faces.images.dtype == np.uint8
    assert faces.attributes.shape == (10, len(sf.ATTRIBUTE_NAMES)) and faces.attributes.dtype == np.uint8
    assert faces.factors.shape == (10, len(sf.FACTOR_NAMES)) and faces.factors.dtype == np.float32
    assert set(np.unique(faces.attributes)) <= {0, 1}
    params = sf.sample_parameters(10, 0)
    for j, name in enumerate(sf.ATTRIBUTE_NAMES):
        np.testing.assert_array_equal(faces.attributes[:, j], params[name])
    for j, (name, (lo, hi)) in enumerate(sf.FACTOR_RANGES.items()):
        assert sf.FACTOR_NAMES[j] == name
        assert np.all((faces.factors[:, j] >= lo) & (faces.factors[:, j] <= hi)), name


def test_public_names():
    assert sf.ATTRIBUTE_NAMES == ("Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Bangs", "Black_Hair",
                                  "Blond_Hair", "Mustache", "Pale_Skin", "Mouth_Slightly_Open")
    assert sf.FACTOR_NAMES[:6] == ("yaw", "skin_tone", "hair_hue", "hair_lightness", "background_hue", "lighting")
    assert isinstance(sf.RENDERER_VERSION, int)


def test_empty_batch():
    faces = sf.generate(0)
    assert faces.images.shape == (0, 64, 64, 3)
    assert faces.attributes.shape == (0, len(sf.ATTRIBUTE_NAMES))


def test_same_seed_identical_other_seed_differs():
    a, b, c = sf.generate(20, seed=3), sf.generate(20, seed=3), sf.generate(20, seed=4)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.attributes.tobytes() == b.attributes.tobytes() and a.factors.tobytes() == b.factors.tobytes()
    assert not np.array_equal(a.images, c.images)


def test_face_depends_only_on_seed_and_index():
    # 1100 crosses a parameter block (1024) and 70 a render chunk (64).
    small, large = sf.sample_parameters(5, 7), sf.sample_parameters(1100, 7)
    for key in small:
        np.testing.assert_array_equal(small[key], large[key][:5])
    np.testing.assert_array_equal(sf.generate(5, seed=7).images, sf.generate(70, seed=7).images[:5])
    np.testing.assert_array_equal(sf.generate(70, seed=7).images[66:68], sf.render(
        {k: v[66:68] for k, v in sf.sample_parameters(70, 7).items()}))


def test_row_bands_and_face_subsets_change_no_pixel(monkeypatch):
    # Layers are evaluated only on the rows they can reach; drawing every row must agree exactly.
    params = sf.sample_parameters(130, 11)  # three render chunks, the last one partial
    for size in (32, 64):
        banded = sf.render(params, size)
        with monkeypatch.context() as m:
            m.setattr(face_drawing.Window, "rows", lambda self, y_lo, y_hi: slice(None))
            full = sf.render(params, size)
        np.testing.assert_array_equal(banded, full)


# --- what the attributes draw --------------------------------------------------------------


def test_smiling_changes_the_mouth_and_curves_it_up():
    p = _with(_posed(), lighting=0.0)  # unshaded skin, so "far from the cheek colour" means lips
    neutral, smiling = sf.render(p), sf.render(_with(p, Smiling=1))
    change = _change(neutral, smiling)
    assert _share_inside(change, MOUTH) == pytest.approx(1.0)
    assert np.all((change > 60).sum(axis=(1, 2)) >= 10)  # a visible change on every face

    # The lip line: in each mouth column, the mean row of pixels far from the cheek colour.
    rows, cols = LIPS
    for face in smiling.astype(np.float32):
        cheek = face[36, 22]
        lip = np.abs(face[rows, cols] - cheek).sum(axis=-1) > 60  # (rows, cols)
        ys = np.arange(rows.start, rows.stop)[:, None]
        line = (lip * ys).sum(axis=0) / np.maximum(lip.sum(axis=0), 1)
        has = lip.sum(axis=0) > 0
        middle = line[32 - cols.start - 2:32 - cols.start + 2].mean()  # columns 30..33
        corners = line[has][[0, 1, -2, -1]].mean()
        assert corners < middle - 1.5, (corners, middle)  # corners at least 1.5 px above the middle


def test_open_mouth_shows_teeth_and_a_gap():
    p = _with(_posed(), Smiling=1, lighting=0.0)  # unshaded, so the mouth's colours are exact
    closed, opened = sf.render(p), sf.render(_with(p, Mouth_Slightly_Open=1))
    change = _change(closed, opened)
    assert _share_inside(change, MOUTH) == pytest.approx(1.0)

    def count_near(images: np.ndarray, rgb: tuple[int, int, int], tolerance: int) -> np.ndarray:
        box = images[:, MOUTH[0], MOUTH[1]].astype(np.int16)
        return (np.abs(box - np.array(rgb)).sum(axis=-1) <= tolerance).sum(axis=(1, 2))

    teeth, interior = (242, 242, 242), (51, 10, 15)  # _grey(0.95) and the "mouth" colour, in levels
    assert np.all(count_near(closed, teeth, 30) == 0) and np.all(count_near(opened, teeth, 30) >= 3)
    # (A closed mouth's crease on some skin tones comes near the interior colour, hence the difference.)
    assert np.all(count_near(opened, interior, 20) >= count_near(closed, interior, 20) + 4)


def test_eyeglasses_frame_both_eyes():
    p = _posed()
    plain, glasses = sf.render(p), sf.render(_with(p, Eyeglasses=1))
    change = _change(plain, glasses)
    assert _share_inside(change, EYES) == pytest.approx(1.0)
    left = (change[:, EYES[0], :32] > 60).sum(axis=(1, 2))
    right = (change[:, EYES[0], 32:] > 60).sum(axis=(1, 2))
    assert np.all(left >= 40) and np.all(right >= 40), (left, right)


def test_hat_covers_the_top_of_the_head():
    p = _posed()
    bare, hat = sf.render(p), sf.render(_with(p, Wearing_Hat=1))
    change = _change(bare, hat)
    assert _share_inside(change, TOP) == pytest.approx(1.0)
    assert np.all((change > 60).sum(axis=(1, 2)) >= 150)  # a hat is a big patch, not a few pixels


def test_bangs_cover_the_forehead():
    p = _posed()
    change = _change(sf.render(p), sf.render(_with(p, Bangs=1)))
    assert _share_inside(change, FOREHEAD) > 0.95
    # At least the fringe's darker rim, even where hair and skin are alike (brown on dark skin).
    assert np.all((change[:, FOREHEAD[0], FOREHEAD[1]] > 60).sum(axis=(1, 2)) >= 20)


def test_mustache_sits_under_the_nose():
    p = _with(_posed(), Male=1)
    change = _change(sf.render(p), sf.render(_with(p, Mustache=1)))
    assert _share_inside(change, UNDER_NOSE) == pytest.approx(1.0)
    assert np.all((change > 60).sum(axis=(1, 2)) >= 20)


def test_male_changes_hair_and_jaw_not_the_background_corners():
    p = _posed()
    change = _change(sf.render(p), sf.render(_with(p, Male=1)))
    assert np.all((change > 60).sum(axis=(1, 2)) >= 100)
    assert change[:, :4, :4].sum() == 0  # corners are backdrop in both


def test_yaw_moves_the_features_toward_the_turn():
    # Light hair, light skin and backdrop so the only dark pixels in the eye band are eyes and lids.
    p = _with(_posed(), hair_lightness=0.7, skin_tone=0.2, background_lightness=0.8, lighting=0.0)
    rows = slice(26, 32)

    def dark_centroid(yaw: float) -> np.ndarray:
        band = sf.render(_with(p, yaw=yaw))[:, rows].astype(np.float32).mean(axis=-1)
        dark = band < 70
        return (dark * np.arange(64)).sum(axis=(1, 2)) / dark.sum(axis=(1, 2))

    assert np.all(dark_centroid(0.35) > dark_centroid(-0.35) + 4)


def test_lighting_brightens_the_lit_side():
    p = _with(_posed(), lighting=1.0)
    images = sf.render(p).astype(np.float32)
    flipped = sf.render(_with(p, lighting=-1.0)).astype(np.float32)
    face_rows = slice(26, 44)
    right_minus_left = images[:, face_rows, 36:44].mean() - images[:, face_rows, 20:28].mean()
    flipped_diff = flipped[:, face_rows, 36:44].mean() - flipped[:, face_rows, 20:28].mean()
    assert right_minus_left > flipped_diff + 20


# --- statistics, variety, anti-aliasing ----------------------------------------------------


def test_base_rates_and_dependencies():
    p = sf.sample_parameters(2000, 5)
    rate = {name: p[name].mean() for name in sf.ATTRIBUTE_NAMES}
    assert 0.44 < rate["Smiling"] < 0.56
    assert 0.39 < rate["Male"] < 0.51
    assert 0.11 < rate["Eyeglasses"] < 0.19
    assert 0.11 < rate["Wearing_Hat"] < 0.19
    assert 0.16 < rate["Bangs"] < 0.24
    assert 0.22 < rate["Black_Hair"] < 0.34
    assert 0.14 < rate["Blond_Hair"] < 0.22
    assert 0.08 < rate["Pale_Skin"] < 0.16
    male, smiling = p["Male"] == 1, p["Smiling"] == 1
    assert p["Mustache"][~male].sum() == 0
    assert 0.24 < p["Mustache"][male].mean() < 0.36
    assert 0.43 < p["Mouth_Slightly_Open"][smiling].mean() < 0.57
    assert 0.06 < p["Mouth_Slightly_Open"][~smiling].mean() < 0.14
    assert not np.any(p["Black_Hair"] & p["Blond_Hair"])
    np.testing.assert_array_equal(p["Pale_Skin"], p["skin_tone"] < sf.PALE_SKIN_MAX)
    # Attributes with no documented dependency are uncorrelated, so smiling and male are separate
    # directions (derived pairs like Mustache/Male and Mouth_Slightly_Open/Smiling are excluded).
    free = ["Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Bangs", "Pale_Skin"]
    corr = np.corrcoef(np.stack([p[name] for name in free]).astype(np.float64))
    off_diagonal = corr[~np.eye(len(free), dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.08


def test_faces_are_varied_and_colourful():
    images = sf.generate(64, seed=2).images.astype(np.float64)
    flat = images.reshape(64, -1)
    # RMS difference between every pair of faces, in 0..255 levels (via the Gram matrix).
    squared = (flat * flat).sum(axis=1)
    gram = squared[:, None] + squared[None, :] - 2.0 * flat @ flat.T
    rms = np.sqrt(np.maximum(gram, 0.0) / flat.shape[1])[~np.eye(64, dtype=bool)]
    assert rms.mean() > 50 and rms.min() > 15  # no near-duplicates
    quantised = (images // 32).astype(np.int32).reshape(-1, 3)  # 8 levels per channel
    codes = np.unique(quantised[:, 0] * 64 + quantised[:, 1] * 8 + quantised[:, 2])
    assert len(codes) > 150  # of 512 colour cells
    assert images.reshape(-1, 3).std(axis=0).min() > 40


def test_edges_are_anti_aliased():
    # A 64 px render matches a 128 px render box-downsampled 2x: the coverage ramp is a box filter.
    # A jagged (point-sampled) renderer would differ by several levels on average.
    params = sf.sample_parameters(16, 9)
    small = sf.render(params, 64).astype(np.float32)
    big = sf.render(params, 128).astype(np.float32).reshape(16, 64, 2, 64, 2, 3).mean(axis=(2, 4))
    point_sampled = sf.render(params, 128)[:, ::2, ::2].astype(np.float32)
    assert np.abs(small - big).mean() < 1.5
    assert np.abs(point_sampled - big).mean() > 2 * np.abs(small - big).mean()


def test_generating_256_faces_is_fast():
    import time

    sf.generate(64)  # warm up
    start = time.perf_counter()
    sf.generate(256)
    assert time.perf_counter() - start < 2.0  # ~0.15 s on the 2-core dev box; generous for CI noise


# --- cache -----------------------------------------------------------------------------------


def _cache_files(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_cache_round_trip(tmp_path, monkeypatch):
    first = sf.load_cached(12, seed=1, size=32, cache_dir=tmp_path)
    fresh = sf.generate(12, seed=1, size=32)
    np.testing.assert_array_equal(first.images, fresh.images)
    np.testing.assert_array_equal(first.attributes, fresh.attributes)
    np.testing.assert_array_equal(first.factors, fresh.factors)
    files = _cache_files(tmp_path)
    assert len(files) == 1 and files[0].endswith(".npz") and f"v{sf.RENDERER_VERSION}" in files[0]

    def fail(*args, **kwargs):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(sf, "generate", fail)
    again = sf.load_cached(12, seed=1, size=32, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.images, fresh.images)
    np.testing.assert_array_equal(again.factors, fresh.factors)


def test_cache_key_separates_arguments(tmp_path):
    sf.load_cached(4, seed=0, size=32, cache_dir=tmp_path)
    sf.load_cached(4, seed=1, size=32, cache_dir=tmp_path)
    sf.load_cached(5, seed=0, size=32, cache_dir=tmp_path)
    other_size = sf.load_cached(4, seed=0, size=64, cache_dir=tmp_path)
    assert other_size.images.shape == (4, 64, 64, 3)
    assert len(_cache_files(tmp_path)) == 4


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_cache_is_regenerated(tmp_path, damage):
    sf.load_cached(6, seed=2, size=32, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not an npz" * 100, "truncated": data[: len(data) // 2], "empty": b""}[damage])

    faces = sf.load_cached(6, seed=2, size=32, cache_dir=tmp_path)
    np.testing.assert_array_equal(faces.images, sf.generate(6, seed=2, size=32).images)
    assert _cache_files(tmp_path) == [path.name]  # rewritten in place, no temp files left behind
    with np.load(path) as f:
        np.testing.assert_array_equal(f["images"], faces.images)


def test_cache_dir_defaults_to_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CACHE", str(tmp_path / "cache"))
    sf.load_cached(3, seed=0, size=32)
    assert len(_cache_files(tmp_path / "cache")) == 1
