"""GIF/MP4 export (explorer.video), the checkpoint list and path confinement (explorer.registry), shareable URLs (explorer.urlstate)."""
import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from explorer.checkpoint import export_checkpoint, save_snapshot
from explorer.model import DCGANConfig, Discriminator, Generator
from explorer.registry import (
    CHECKPOINTS_ROOT,
    DEFAULT_CHECKPOINT,
    list_checkpoints,
    resolve_user_path,
)
from explorer.urlstate import (
    MAX_DIRECTIONS,
    MAX_OFFSET,
    decode_arithmetic,
    decode_checkpoint,
    decode_state,
    encode_arithmetic,
    encode_checkpoint,
    encode_state,
)
from explorer.video import frames_to_gif, frames_to_mp4

CONFIG = DCGANConfig(image_size=32, g_width=8, d_width=8, z_dim=16)

# ------------------------------------------------------------------------------------------- video


def _colour_frames(count: int, size: int) -> np.ndarray:
    """(count, size, size, 3) uint8 frames, each a different flat colour, so decoded frames are identifiable."""
    colours = np.stack([np.linspace(20, 230, count), np.linspace(230, 20, count), np.full(count, 128)], axis=1)
    return np.broadcast_to(colours.astype(np.uint8)[:, None, None, :], (count, size, size, 3)).copy()


def test_gif_decodes_to_the_same_frames_enlarged():
    frames = _colour_frames(10, 32)
    data = frames_to_gif(frames, fps=10)
    assert data[:6] == b"GIF89a"
    decoded = iio.imread(data, extension=".gif", index=None)
    assert decoded.shape == (10, 256, 256, 3)  # 32 px x8: the shorter side reaches 256 px
    assert np.array_equal(decoded[:, ::8, ::8], frames)  # nearest-neighbour, and few colours survive the palette exactly
    assert iio.immeta(data, extension=".gif", index=0)["duration"] == 100  # ms per frame at 10 fps
    assert iio.imread(frames_to_gif(frames, scale=1), extension=".gif", index=None).shape == (10, 32, 32, 3)


def test_mp4_decodes_to_the_right_frame_count_and_size():
    frames = _colour_frames(12, 64)
    data = frames_to_mp4(frames, fps=24)
    assert data[4:8] == b"ftyp"
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: the index comes first
    decoded = iio.imread(data, extension=".mp4", plugin="FFMPEG")
    assert decoded.shape == (12, 256, 256, 3)
    assert np.abs(decoded[:, 128, 128].astype(int) - frames[:, 32, 32]).max() < 12  # lossy, but the right colours


def test_grayscale_and_odd_sizes_become_even_rgb():
    gray = np.random.default_rng(0).integers(0, 256, (5, 33, 47), dtype=np.uint8)
    mp4 = iio.imread(frames_to_mp4(gray, scale=1), extension=".mp4", plugin="FFMPEG")
    assert mp4.shape == (5, 34, 48, 3)  # padded by one edge row and column for 4:2:0 chroma
    gif = iio.imread(frames_to_gif(gray[..., None], scale=2), extension=".gif", index=None)
    assert gif.shape == (5, 66, 94, 3)


def test_video_rejects_bad_input():
    frames = _colour_frames(3, 16)
    with pytest.raises(ValueError, match="uint8"):
        frames_to_mp4(frames.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        frames_to_gif(frames[..., :2])
    with pytest.raises(ValueError, match="fps"):
        frames_to_gif(frames, fps=0)
    with pytest.raises(ValueError, match="fps"):
        frames_to_gif(frames, fps=100)  # GIF delays under 2 cs are slowed down by browsers
    with pytest.raises(ValueError, match="scale"):
        frames_to_mp4(frames, scale=0)


# ---------------------------------------------------------------------------------------- registry


def _save_run(run_dir, step=1, spec="synthetic-faces"):
    torch.manual_seed(step)
    meta = {"model": CONFIG.to_dict(), "step": step, "dataset": {"spec": spec}, "metrics": {"loss_d": 0.7}}
    return save_snapshot(run_dir, meta, {"generator": Generator(CONFIG), "discriminator": Discriminator(CONFIG)})


def test_list_checkpoints_lists_good_and_broken_ones_in_order(tmp_path):
    root = tmp_path / "checkpoints"
    _save_run(root / "aaa-run", step=3)
    _save_run(root / "synthetic-faces-64", step=5)
    export_checkpoint(root / "aaa-run", root / "fashion-mnist-32")  # flat layout: meta.json directly inside
    _save_run(root / "experiments" / "run-2", step=2, spec="fashion-mnist")
    (root / "broken").mkdir()
    (root / "broken" / "meta.json").write_text("{not json")
    (root / "experiments" / "dangling").mkdir(parents=True)
    (root / "experiments" / "dangling" / "latest.json").write_text(json.dumps({"snapshot": "snapshots/step-00000009"}))
    (root / "notes").mkdir()  # neither file: not a checkpoint
    (root / ".tmp-half-written").mkdir()
    (root / ".tmp-half-written" / "meta.json").write_text("{}")
    (root / "README.md").write_text("shipped checkpoints")

    infos = list_checkpoints(root)
    names = [info.name for info in infos]
    assert names == ["synthetic-faces-64", "fashion-mnist-32", "aaa-run", "broken", "experiments/dangling", "experiments/run-2"]
    by_name = {info.name: info for info in infos}

    good = by_name["aaa-run"]
    assert (good.step, good.dataset_spec, good.image_size, good.channels, good.error) == (3, "synthetic-faces", 32, 3, None)
    assert good.metrics == {"loss_d": 0.7} and good.path == root / "aaa-run"
    assert by_name["fashion-mnist-32"].step == 3 and by_name["fashion-mnist-32"].error is None
    assert by_name["experiments/run-2"].dataset_spec == "fashion-mnist"
    for name in ("broken", "experiments/dangling"):
        info = by_name[name]
        assert info.error and info.step is None and info.metrics == {}
    assert "not valid JSON" in by_name["broken"].error
    assert "step-00000009" in by_name["experiments/dangling"].error


def test_list_checkpoints_of_a_missing_root_is_empty(tmp_path):
    assert list_checkpoints(tmp_path / "nowhere") == []
    assert CHECKPOINTS_ROOT.name == "checkpoints" and DEFAULT_CHECKPOINT == "synthetic-faces-64"


def test_resolve_user_path_confines_paths_to_the_checkpoints_folder(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "run" / "snapshots").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    allowed = (root,)
    assert resolve_user_path("run", allowed) == (root / "run").resolve()
    assert resolve_user_path(f"  {root / 'run'}  ", allowed) == (root / "run").resolve()
    assert resolve_user_path("run/snapshots/../", allowed) == (root / "run").resolve()
    assert resolve_user_path("not-yet-trained", allowed) == (root / "not-yet-trained").resolve()
    assert resolve_user_path(str(root), allowed) == root.resolve()

    (root / "inside-link").symlink_to(root / "run")
    assert resolve_user_path("inside-link", allowed) == (root / "run").resolve()
    (root / "escape").symlink_to(tmp_path / "elsewhere")
    (root / "run" / "escape-deep").symlink_to("../../elsewhere")
    refused = ["../..", "..", "run/../../elsewhere", str(tmp_path / "elsewhere"), "/etc", "~", "escape", "escape/x", "run/escape-deep"]
    for text in refused:
        with pytest.raises(ValueError, match="outside the checkpoints folder"):
            resolve_user_path(text, allowed)
    # A sibling whose name merely starts with the root's name is outside too.
    (tmp_path / "checkpoints-evil").mkdir()
    with pytest.raises(ValueError, match="outside"):
        resolve_user_path(str(tmp_path / "checkpoints-evil"), allowed)
    for text, message in [("", "empty"), ("   ", "empty"), ("run\x00/x", "NUL")]:
        with pytest.raises(ValueError, match=message):
            resolve_user_path(text, allowed)


# ---------------------------------------------------------------------------------------- urlstate


def test_url_state_round_trip():
    offsets = {"sefa:0": 1.5, "attr:Smiling": -2.0, "class:T-shirt/top": 0.25, "odd,name:with%chars": 3.0, "tiny": 1e-7}
    params = encode_state(42, {**offsets, "unused": 0.0})
    assert params == {"seed": "42", "d": "attr:Smiling:-2,class:T-shirt/top:0.25,odd%2Cname:with%25chars:3,sefa:0:1.5,tiny:1e-07"}
    seed, decoded, errors = decode_state(params)
    assert (seed, decoded, errors) == (42, offsets, [])
    assert encode_state(7, {}) == {"seed": "7"}
    assert decode_state(encode_state(7, {})) == (7, {}, [])
    # st.query_params.get_all / parse_qs style: lists, of which the last value counts.
    assert decode_state({"seed": ["1", "2"], "d": ["a:1"]}) == (2, {"a": 1.0}, [])


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "4294967296", "99999999999999999999", "", "0x10", "1e3", "٣"])
def test_malformed_seeds_fall_back_to_the_default(bad):
    seed, offsets, errors = decode_state({"seed": bad, "d": "a:1"}, default_seed=3)
    assert seed == 3 and offsets == {"a": 1.0}
    assert len(errors) == 1 and "seed" in errors[0] and "showing seed 3" in errors[0]


def test_malformed_offsets_are_repaired_with_messages():
    seed, offsets, errors = decode_state({"seed": " 12 ", "d": "a:nan,b:inf,c:-1e9,d:2.5,e:abc,f,:1,g:1:,sefa:3:2,,d:0.5"})
    assert seed == 12
    assert offsets == {"b": MAX_OFFSET, "c": -MAX_OFFSET, "sefa:3": 2.0, "d": 0.5}
    assert len(errors) == 8  # nan, inf, -1e9, "abc", "f", ":1", "g:1:" (no value), d twice
    assert any("NaN" in e for e in errors) and any("using -10" in e for e in errors)
    assert any("appears more than once" in e for e in errors)
    assert all(isinstance(e, str) and len(e) < 300 for e in errors)


def test_decode_never_raises_on_hostile_params():
    many = ",".join(f"x{i}:1" for i in range(100))
    for params in [{}, {"seed": None}, {"seed": []}, {"seed": 5}, {"d": "x:1," * 30_000}, {"d": many}, {"other": "page"}, {"d": "%ZZ:1"}]:
        seed, offsets, errors = decode_state(params)
        assert isinstance(seed, int) and all(math.isfinite(v) and abs(v) <= MAX_OFFSET for v in offsets.values())
    assert decode_state({"d": "x:1," * 30_000})[1] == {}  # longer than any link this app writes: reset
    offsets, errors = decode_state({"d": many})[1:]
    assert len(offsets) == MAX_DIRECTIONS and errors == [f"the link sets 100 directions; only the first {MAX_DIRECTIONS} were used"]
    assert decode_state({"seed": 5}) == (5, {}, [])


def test_unknown_directions_are_dropped_when_the_checkpoint_is_known():
    _, offsets, errors = decode_state({"seed": "1", "d": "sefa:0:1,attr:Bald:2"}, known_directions={"sefa:0"})
    assert offsets == {"sefa:0": 1.0}
    assert errors == ["this checkpoint has no direction 'attr:Bald'; its offset was ignored"]


def test_encode_is_strict():
    too_many = {f"x{i}": 1.0 for i in range(MAX_DIRECTIONS + 1)}
    too_long = {"x" * 3000 + str(i): 1.0 for i in range(2)}
    for seed, offsets in [(-1, {}), (1, {"a": math.nan}), (1, {"a": 11.0}), (1, {"": 1.0}), (1, too_many), (1, too_long)]:
        with pytest.raises(ValueError):
            encode_state(seed, offsets)


def test_checkpoint_in_the_link():
    assert encode_checkpoint("fashion-mnist-32") == {"ckpt": "fashion-mnist-32"}
    assert decode_checkpoint({"ckpt": " experiments/run-3 ", "seed": "1"}) == "experiments/run-3"
    assert decode_checkpoint({"ckpt": ["a", "b"]}) == "b"
    for params in ({}, {"ckpt": ""}, {"ckpt": "x" * 600}, {"ckpt": "a\x00b"}):
        assert decode_checkpoint(params) is None


def test_arithmetic_bins_round_trip_through_the_link():
    bins = [("smiling woman", 1.0, [0, 1, 2]), ("odd: name;with,commas%", -1.0, [3]), ("empty", 0.5, [])]
    params = encode_arithmetic(bins, 0.25, 7)
    assert params == {"bins": "smiling woman:1:0,1,2;odd%3A name%3Bwith%2Ccommas%25:-1:3;empty:0.5:", "jitter": "0.25", "noise": "7"}
    assert decode_arithmetic(params) == (bins, 0.25, 7, [])
    assert decode_arithmetic({"seed": "1"}) == (None, 0.25, 0, [])  # a Generate link: no bins
    for bad in ([], [("a", 5.0, [1])], [("a", 1.0, [-1])], [("a", 1.0, list(range(65)))], [("a", float("nan"), [])]):
        with pytest.raises(ValueError):
            encode_arithmetic(bad, 0.25, 0)


def test_a_mangled_arithmetic_link_is_repaired_with_messages():
    bins, jitter, noise, errors = decode_arithmetic({"bins": "a:x:1,2,q,2;b:-inf:;c;" + ";".join(f"n{i}:1:" for i in range(8)),
                                                     "jitter": "nan", "noise": "-1"})
    assert bins[:3] == [("a", 1.0, [1, 2]), ("b", -3.0, []), ("bin 3", 1.0, [])] and len(bins) == 6
    assert (jitter, noise) == (0.25, 0)
    assert errors == [
        "the link's jitter 'nan' is not a number from 0 to 2; using 0.25",
        "the link's noise seed: '-1' is not a whole number from 0 to 4294967295; using 0",
        "the link has 11 bins; only the first 6 were used",
        "bin 'a': weight 'x' is not a number; using 1",
        "bin 'a': 'q' is not a whole number from 0 to 4294967295",
        "bin 'b': weight '-inf' is outside +-3; using -3",
        "the link's bin 'c' is not of the form name:weight:seeds; it is left empty",
    ]
    assert decode_arithmetic({"bins": "a:1:" + "1," * 3000})[3] == ["the link's bin list is 6004 characters long (at most 4096); it was ignored"]
