"""Evaluation metrics on tiny data with known answers, and the `training.evaluate` command end to end.

The representation table (the paper's SVM protocol) has its own file, test_representation.py.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from explorer.checkpoint import CheckpointError, load_checkpoint, read_meta
from explorer.datasets import ImageDataset
from explorer.evaluation import arithmetic_eval as ae
from explorer.evaluation.eval_net import (
    EvalNet,
    EvalNetConfig,
    EvalNetInfo,
    find_eval_net,
    load_eval_net,
    predict,
    save_eval_net,
)
from explorer.evaluation.fid import FID, disjoint_real_sets, generated_uint8
from training.eval_net import main as eval_net_main
from training.eval_net import train_eval_net
from training.evaluate import main as evaluate_main


def _net(image_size=8, channels=1, classes=("a", "b"), seed=0) -> EvalNet:
    torch.manual_seed(seed)
    return EvalNet(EvalNetConfig(image_size=image_size, channels=channels, width=4, feature_dim=16, class_names=classes)).eval()


def _blobs(n: int, bright: bool, seed: int, size: int = 8) -> torch.Tensor:
    """uint8 (n, 1, size, size): noise around grey 60 (dark) or 190 (bright)."""
    g = torch.Generator().manual_seed(seed)
    base = 190 if bright else 60
    return (base + 25 * torch.randn(n, 1, size, size, generator=g)).clamp(0, 255).to(torch.uint8)


class _Toy(nn.Module):
    """Base of the hand-made generators below: `generate` finds the device from a parameter."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))


# ----------------------------------------------------------------------------------------------- FID


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula, in float64 with scipy's sqrtm: the reference torchmetrics must match."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # dead ReLU features of an untrained net: singular covariance
def test_fid_of_a_set_with_itself_is_zero_and_matches_the_formula():
    net = _net()
    dark, bright = _blobs(300, False, 0), _blobs(300, True, 1)
    fid = FID(dark, net)
    assert abs(fid.score(dark)) < 1e-6
    with torch.no_grad():
        f_dark, f_bright = net(dark).double().numpy(), net(bright).double().numpy()
    assert fid.score(bright) == pytest.approx(_frechet(f_dark, f_bright), rel=1e-3)


def test_fid_ranks_distributions_and_reuses_real_statistics():
    net = _net()
    pool = torch.cat([_blobs(400, False, 2), _blobs(400, False, 3)])
    same_a, same_b = disjoint_real_sets(pool, 300, seed=0)
    assert len(set(map(tuple, same_a.flatten(1).tolist())) & set(map(tuple, same_b.flatten(1).tolist()))) == 0
    fid = FID(same_a, net)
    near, far = fid.score(same_b), fid.score(_blobs(300, True, 4))
    assert 0 <= near < far / 10  # same distribution, disjoint draws: near the floor
    assert fid.score(same_b) == pytest.approx(near)  # scoring again after another set: real stats kept, fakes reset


def test_fid_refuses_bad_inputs_and_explains_inception_offline():
    net = _net()
    with pytest.raises(ValueError, match="uint8"):
        FID(torch.zeros(4, 1, 8, 8), net)
    with pytest.raises(ValueError, match="at least 2"):
        FID(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), net)
    fid = FID(_blobs(10, False, 0), net)
    with pytest.raises(ValueError, match="uint8"):
        fid.score(torch.zeros(4, 1, 8, 8))
    try:
        import torch_fidelity  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(RuntimeError, match="torch-fidelity"):
            FID(_blobs(10, False, 0), "inception")


def test_generated_images_come_from_fixed_seeds():
    class Echo(_Toy):  # "generator" that paints each image with its z's first value
        config = SimpleNamespace(z_dim=4, channels=1, image_size=2)

        def forward(self, z):
            return torch.tanh(z[:, :1, None, None]).expand(-1, 1, 2, 2)

    a, b = generated_uint8(Echo(), 5), generated_uint8(Echo(), 7)
    assert a.dtype == torch.uint8 and a.shape == (5, 1, 2, 2)
    assert torch.equal(a, b[:5])  # a prefix: sample i depends on its seed only


# ----------------------------------------------------------------------------------------------- eval net


def test_eval_net_learns_separable_labels_and_round_trips(tmp_path):
    images = torch.cat([_blobs(200, False, 5), _blobs(200, True, 6)])
    labels = torch.cat([torch.zeros(200), torch.ones(200)]).long()
    train = ImageDataset(images=images, spec="blobs", class_names=["dark", "bright"], labels=labels)
    test = ImageDataset(images=torch.cat([_blobs(50, False, 7), _blobs(50, True, 8)]), spec="blobs test",
                        class_names=["dark", "bright"], labels=torch.cat([torch.zeros(50), torch.ones(50)]).long())
    net, info = train_eval_net(train, test, epochs=2, batch_size=32, width=4, progress=False)
    assert info.accuracy["classes"] > 0.95 and info.chance["classes"] == 0.5
    save_eval_net(tmp_path / "net", net, info)
    loaded, loaded_info = load_eval_net(tmp_path / "net")
    assert loaded_info.accuracy == info.accuracy
    np.testing.assert_array_equal(predict(net, test.images).features, predict(loaded, test.images).features)
    with pytest.raises(ValueError, match="expects"):
        loaded(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_eval_net_files_are_validated(tmp_path):
    net = _net()
    folder = save_eval_net(tmp_path / "net", net, EvalNetInfo(dataset="blobs"))
    weights = folder / "evalnet.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_eval_net(folder)
    (folder / "evalnet.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_eval_net(folder)
    with pytest.raises(CheckpointError, match="missing"):
        load_eval_net(tmp_path / "nowhere")
    assert find_eval_net("fashion-mnist", 32, 3, root=tmp_path) is None


def test_shipped_eval_nets_match_their_datasets():
    for spec, size, channels in (("fashion-mnist", 32, 1), ("synthetic-faces", 64, 3)):
        folder = find_eval_net(spec, size, channels)
        assert folder is not None, f"no shipped eval net for {spec}"
        net, info = load_eval_net(folder)
        assert (net.config.image_size, net.config.channels) == (size, channels)
        main_metric = info.accuracy["classes"] if spec == "fashion-mnist" else info.accuracy["Smiling"]
        assert main_metric > 0.85, info.accuracy  # a scorer worth trusting


def test_shipped_clean_face_checker_tells_renders_from_blends():
    from explorer.evaluation.clean_face import blends, is_clean
    from explorer.evaluation.eval_net import EVAL_NETS_ROOT
    from explorer.datasets import load_dataset

    net, info = load_eval_net(EVAL_NETS_ROOT / "synthetic-faces-64-clean")
    assert info.accuracy["Single_Clean_Face"] > 0.95
    renders = load_dataset("synthetic-faces:200", 64, split="test").images  # held-out renders, another seed
    assert is_clean(net, renders[:100]).mean() > 0.9
    assert is_clean(net, blends(renders, 100, seed=7)).mean() < 0.1
    with pytest.raises(ValueError, match="not a clean-face checker"):
        is_clean(load_eval_net(find_eval_net("synthetic-faces", 64, 3))[0], renders[:2])


# ----------------------------------------------------------------------------------------------- arithmetic


def test_wilson_interval_known_values():
    r = ae.rate_with_ci(np.array([True] * 8 + [False] * 2))
    assert r["rate"] == 0.8 and r["n"] == 10
    assert r["low"] == pytest.approx(0.4902, abs=1e-3) and r["high"] == pytest.approx(0.9433, abs=1e-3)
    assert ae.rate_with_ci(np.zeros(5, bool))["low"] == 0.0
    assert math.isnan(ae.rate_with_ci(np.zeros(0, bool))["rate"])


def test_success_needs_targets_and_kept_attributes():
    smile = ae.EXPRESSIONS[0]
    verdicts = {
        "Smiling": np.array([1, 1, 0, 1], bool),
        "Male": np.array([1, 1, 1, 0], bool),
        "Eyeglasses": np.array([0, 1, 0, 0], bool),
        "Wearing_Hat": np.array([0, 0, 0, 0], bool),
    }
    target, full = ae.success(verdicts, smile)
    np.testing.assert_array_equal(target, [True, True, False, False])
    np.testing.assert_array_equal(full, [True, False, False, False])  # glasses appeared on the second
    with pytest.raises(ValueError, match="does not judge"):
        ae.satisfies({"Smiling": np.ones(2, bool)}, {"Male": 1})
    # every exemplar of every concept holds the kept attributes at 0
    assert all(c.conditions["Eyeglasses"] == 0 and c.conditions["Wearing_Hat"] == 0 for c in smile.concepts)
    assert smile.text == "smiling woman - neutral woman + neutral man = smiling man"


def test_concept_scores_multiply_probabilities():
    p = np.array([[0.9, 0.2], [0.5, 0.5]])
    np.testing.assert_allclose(ae.concept_scores(p, ["Smiling", "Male"], {"Smiling": 1, "Male": 0}), [0.72, 0.25])
    with pytest.raises(ValueError, match="no column"):
        ae.concept_scores(p, ["Smiling", "Male"], {"Eyeglasses": 1})


class _ToyFaces(_Toy):
    """A generator whose attributes are linear in z: pixel 0 = Smiling (z0), 1 = Male (z1), 2 = yaw (z2).

    z arithmetic must work perfectly here: the known answer the protocol must reproduce.
    """

    config = SimpleNamespace(z_dim=8, channels=1, image_size=4)

    def forward(self, z):
        image = torch.zeros(z.shape[0], 1, 4, 4)
        image[:, 0, 0, :3] = torch.tanh(2 * z[:, :3])
        return image


def _toy_labeller(images):
    names = ["Smiling", "Male", "Eyeglasses", "Wearing_Hat", "Yaw_Left", "Yaw_Right"]
    x = images[:, 0, 0, :3].numpy()
    sig = lambda v: 1 / (1 + np.exp(-8 * v))  # noqa: E731
    never = np.full(len(x), 0.01)
    return names, np.stack([sig(x[:, 0]), sig(x[:, 1]), never, never, sig(-x[:, 2] - 0.3), sig(x[:, 2] - 0.3)], axis=1)


def _toy_judge(images):
    x = images[:, 0, 0, :3].numpy()
    off = np.zeros(len(x), bool)
    return {"Smiling": x[:, 0] > 0, "Male": x[:, 1] > 0, "Eyeglasses": off, "Wearing_Hat": off,
            "Yaw_Left": x[:, 2] < -0.1, "Yaw_Right": x[:, 2] > 0.1}


def test_arithmetic_protocol_on_a_toy_generator_with_a_known_answer():
    smile, turn = ae.EXPRESSIONS[0], ae.EXPRESSIONS[3]
    evaluation = ae.evaluate_arithmetic(
        _ToyFaces(), None, None, None, ks=(1, 10), trials=10, pool=400, expressions=(smile, turn),
        labeller=_toy_labeller, judge=_toy_judge,
    )
    results = evaluation.results
    for name in ("smile", "turn"):
        assert results[name]["by_selection"]["oracle"]["by_k"]["10"]["exemplars_match"] == 1.0  # picked by the judge itself
        one, ten = results[name]["by_selection"]["probe"]["by_k"]["1"], results[name]["by_selection"]["probe"]["by_k"]["10"]
        # Attributes are linear in z, so the mean of 10 exemplars always lands right; one exemplar's
        # other coordinates sometimes outweigh the difference (the paper's reason to average).
        assert ten["z"]["success"]["rate"] == 1.0, (name, ten)
        assert 0.5 < one["z"]["success"]["rate"] < 1.0, (name, one)
        assert one["exemplars_match"] == ten["exemplars_match"] == 1.0
        assert ten["z"]["success"]["n"] == ten["z_shell"]["success"]["n"] == 10 * 9 and ten["pixel"]["success"]["n"] == 10
        assert ten["z_shell"]["success"]["rate"] == 1.0  # rescaling Y keeps its direction: signs, hence attributes, unchanged
    assert 0.15 < results["smile"]["chance"]["success"] < 0.35  # P(smiling and male) = 1/4 under the prior
    assert results["_summary"]["probe"]["z"]["10"] == 1.0 > results["_summary"]["probe"]["z"]["1"]
    assert evaluation.figures[("smile", "probe", 1)]["z"].shape == (9, 1, 4, 4)
    assert "| smiling woman - neutral woman + neutral man = smiling man | probe | 10 | 100%" in ae.format_table(results)
    assert results["_protocol"]["clean_check"] is False
    assert ten["z"]["success"] == ten["z"]["success_unchecked"] and ten["z"]["clean"]["rate"] == 1.0  # no checker: all count
    with pytest.raises(ValueError, match="selections"):
        ae.evaluate_arithmetic(_ToyFaces(), None, None, None, selections=("magic",), labeller=_toy_labeller, judge=_toy_judge)


def test_real_pictures_as_exemplars_are_picked_by_their_own_labels_and_inverted_once():
    toy = _ToyFaces()
    z_real = torch.randn(300, 8, generator=torch.Generator().manual_seed(42))
    with torch.no_grad():
        pictures = ((toy(z_real) + 1) * 127.5).round().to(torch.uint8)  # "photos": uint8, as a dataset holds them
    truth = _toy_judge(pictures.float() / 127.5 - 1)
    inverted: list[int] = []

    def invert(images):  # the toy's exact inverse on the coordinates it renders; the others are unknowable: 0
        inverted.append(len(images))
        z = torch.zeros(len(images), 8)
        z[:, :3] = torch.atanh((images[:, 0, 0, :3].float() / 127.5 - 1).clamp(-0.999, 0.999)) / 2
        return z

    real = ae.RealExemplars(pictures, truth, invert)
    smile, turn = ae.EXPRESSIONS[0], ae.EXPRESSIONS[3]
    results = ae.evaluate_arithmetic(
        toy, None, None, None, ks=(1, 10), trials=6, pool=400, expressions=(smile, turn),
        labeller=_toy_labeller, judge=_toy_judge, real=real,
    ).results
    for name in ("smile", "turn"):
        row = results[name]["by_selection"]["real"]
        assert all(v == 1.0 for v in row["candidates_match"].values())  # the pictures' own labels match the concept
        # uint8 pictures saturate tanh beyond |z| ~ 1.5, so the inverted z are shrunk there: nearly, not always, right
        assert row["by_k"]["10"]["z"]["success"]["rate"] >= 0.9 and row["by_k"]["10"]["exemplars_match"] == 1.0
    # each picture is inverted once: "neutral man"/"woman" etc. share nothing across these two expressions,
    # so 6 concepts x at most 30 candidates, in one call per expression
    assert len(inverted) == 2 and 0 < sum(inverted) <= 6 * ae.CANDIDATES
    assert results["_summary"]["real"]["z"]["10"] >= 0.9
    assert "| smiling woman - neutral woman + neutral man = smiling man | real | 10 |" in ae.format_table(results)
    without = ae.evaluate_arithmetic(
        toy, None, None, None, ks=(1,), trials=2, pool=400, expressions=(smile,), labeller=_toy_labeller, judge=_toy_judge,
    ).results
    assert without["smile"]["by_selection"]["real"] == {"skipped": "no real pictures given"}


class _MarkedFaces(_ToyFaces):
    """_ToyFaces plus a consistency mark a real face has and a pixel blend breaks: pixel (1, 1) = pixel (1, 2) squared."""

    def forward(self, z):
        image = super().forward(z)
        image[:, 0, 1, 2] = torch.tanh(z[:, 4])
        image[:, 0, 1, 1] = torch.tanh(z[:, 4]) ** 2
        return image


def _marked_clean(images):
    return np.abs(images[:, 0, 1, 1].numpy() - images[:, 0, 1, 2].numpy() ** 2) < 1e-4


def test_pixel_blends_must_pass_the_clean_face_check():
    results = ae.evaluate_arithmetic(
        _MarkedFaces(), None, None, None, ks=(3,), trials=10, pool=400, expressions=(ae.EXPRESSIONS[0],),
        labeller=_toy_labeller, judge=_toy_judge, clean=_marked_clean, selections=("probe",),
    ).results
    row = results["smile"]["by_selection"]["probe"]["by_k"]["3"]
    assert results["_protocol"]["clean_check"] is True and results["smile"]["chance"]["clean"] == 1.0
    assert row["z"]["clean"]["rate"] == 1.0 and row["z"]["success"] == row["z"]["success_unchecked"]
    # z results are counted whatever the checker says of them (it judges G's quality, not the arithmetic)
    dirty = ae.evaluate_arithmetic(
        _MarkedFaces(), None, None, None, ks=(3,), trials=4, pool=400, expressions=(ae.EXPRESSIONS[0],),
        labeller=_toy_labeller, judge=_toy_judge, clean=lambda images: np.zeros(len(images), bool), selections=("probe",),
    ).results["smile"]["by_selection"]["probe"]["by_k"]["3"]
    assert dirty["z"]["clean"]["rate"] == 0.0 and dirty["z"]["success"] == dirty["z"]["success_unchecked"]
    assert dirty["pixel"]["success"]["rate"] == 0.0
    # the blends get the attributes right (the toy is linear) but are not one clean face
    assert row["pixel"]["success_unchecked"]["rate"] >= 0.5
    assert row["pixel"]["clean"]["rate"] == 0.0 and row["pixel"]["success"]["rate"] == 0.0
    assert row["neighbourhood_variation"] > 1.0  # the jittered neighbours differ from G(Y) by > 1 level of 255


def test_blends_of_real_images_look_like_the_baseline():
    from explorer.evaluation.clean_face import CLEAN_ATTRIBUTE, blends, clean_face_dataset
    from explorer.datasets import ImageDataset

    faces = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8)
    mixed = blends(faces, 20, seed=3)
    assert mixed.shape == (20, 3, 8, 8) and mixed.dtype == torch.uint8
    assert not any(torch.equal(m, f) for m in mixed for f in faces)  # every blend differs from every face
    assert torch.equal(mixed, blends(faces, 20, seed=3))  # deterministic in the seed
    data = clean_face_dataset(ImageDataset(images=faces, spec="toy"), n_blends=12)
    assert data.attribute_names == [CLEAN_ATTRIBUTE] and data.attributes[:, 0].tolist() == [1] * 12 + [0] * 12
    with pytest.raises(ValueError, match="at least 9"):
        blends(faces[:4], 2)


def test_oracle_selection_reports_concepts_nobody_matches():
    never_smiling = lambda images: {**_toy_judge(images), "Smiling": np.zeros(len(images), bool)}  # noqa: E731
    results = ae.evaluate_arithmetic(
        _ToyFaces(), None, None, None, ks=(1,), trials=2, pool=400, expressions=(ae.EXPRESSIONS[0],),
        labeller=_toy_labeller, judge=never_smiling,
    ).results
    assert "smiling woman" in results["smile"]["by_selection"]["oracle"]["skipped"]
    assert "by_k" in results["smile"]["by_selection"]["probe"]
    assert "skipped: no generated sample" in ae.format_table(results)
    with pytest.raises(ValueError, match="k must be"):
        ae.evaluate_arithmetic(_ToyFaces(), None, None, None, ks=(0,), labeller=_toy_labeller, judge=_toy_judge)


def test_yaw_labels_are_derived_from_the_factor():
    ds = ImageDataset(
        images=torch.zeros(3, 3, 4, 4, dtype=torch.uint8), spec="faces", attribute_names=["Smiling"],
        attributes=torch.zeros(3, 1, dtype=torch.uint8), factor_names=["yaw"], factors=torch.tensor([[-0.3], [0.0], [0.3]]),
    )
    labelled = ae.with_yaw_labels(ds)
    assert labelled.attribute_names == ["Smiling", "Yaw_Left", "Yaw_Right"]
    assert labelled.attributes[:, 1:].tolist() == [[1, 0], [0, 0], [0, 1]]
    with pytest.raises(ValueError, match="yaw"):
        ae.with_yaw_labels(ImageDataset(images=ds.images, spec="x", class_names=["a"], labels=torch.zeros(3).long()))


# ----------------------------------------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def tiny_eval_net(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evalnet") / "net"
    code = eval_net_main(["--dataset", "synthetic-faces:256", "--image-size", "32", "--epochs", "1", "--width", "4",
                          "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_evaluate_writes_results_into_meta_and_figures(tiny_checkpoints, tiny_eval_net, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoints.bare, run)
    code = evaluate_main([
        "--checkpoint", str(run), "--what", "fid,arithmetic,neighbors,smoothness,directions", "--dataset", "synthetic-faces:256",
        "--eval-net", str(tiny_eval_net), "--fid-samples", "64", "--snapshots", "--trials", "2", "--ks", "1,3",
        "--neighbors-samples", "32", "--walks", "2", "--json", str(tmp_path / "out.json"),
        "--real-images", "48", "--encoder-pairs", "256", "--encoder-epochs", "1", "--direction-seeds", "8",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    snapshot, meta = read_meta(run)
    evaluation = meta["evaluation"]
    assert set(evaluation) >= {"fid", "arithmetic", "neighbors", "smoothness", "evaluated_at"}
    assert evaluation["fid"]["fid"] > evaluation["fid"]["real_vs_real"] >= 0
    assert [row["step"] for row in evaluation["fid"]["by_step"]] == [4, 8]
    # the curve uses the evaluated checkpoint's kind of generator (EMA or raw) at every step
    assert evaluation["fid"]["by_step_generator"] == evaluation["generator"]
    assert all(row["ema"] == (evaluation["generator"] == "ema") for row in evaluation["fid"]["by_step"])
    assert set(evaluation["arithmetic"]["smile"]["by_selection"]["probe"]["by_k"]) == {"1", "3"}
    real = evaluation["arithmetic"]["smile"]["by_selection"]["real"]  # 48 held-out renders, inverted
    assert set(real["by_k"]) == {"1", "3"} and all(v == 1.0 for v in real["candidates_match"].values()), real
    assert "inverting" in out and list((snapshot / "analysis").glob("encoder-*.safetensors"))  # its encoder, cached beside it
    assert (snapshot / "evaluation" / "arithmetic-smile-grid-probe-k3.png").is_file()
    assert (snapshot / "evaluation" / "arithmetic-smile.png").is_file()
    assert (snapshot / "evaluation" / "neighbors.png").is_file()
    assert json.loads((tmp_path / "out.json").read_text())["smoothness"]["slerp"]["mean"] >= 0
    # synthetic faces can be re-rendered with one attribute switched: each measured slider gets that floor beside it
    # (beside a slider the tiny probe could not find, too: the floor does not depend on G)
    directions = evaluation["directions"]
    for attribute in ("Smiling", "Male", "Eyeglasses", "Wearing_Hat"):
        floor = directions[attribute]["renderer_edit"]
        assert floor["seed"] == 7
        row = f"| {attribute} | the renderer's own edit (a perfect slider) |"
        if "skipped" in floor:  # this 1-epoch judge may read the attribute on every face
            assert row not in directions["table"]
        else:
            assert floor["faces"] > 0 and 0.0 <= floor["max_other_flip"] <= 1.0
            assert f"{row} {floor['flip_rate']:.2f} |" in directions["table"]
    assert "FID (eval net net" in out and "slerp walks" in out
    load_checkpoint(run)  # still a valid checkpoint: the weights' hashes are untouched

    # a second, partial evaluation keeps the first one's other results
    assert evaluate_main(["--checkpoint", str(run), "--what", "smoothness", "--walks", "1"]) == 0
    assert set(read_meta(run)[1]["evaluation"]) >= {"fid", "arithmetic", "smoothness"}


def test_evaluate_refuses_bad_options_clearly(tiny_checkpoints, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main(["--checkpoint", str(tiny_checkpoints.tiny), "--what", "fid,beauty"])
    assert exit_info.value.code == 2 and "subset of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_main(["--checkpoint", str(tiny_checkpoints.tiny), "--ks", "0"])
    assert evaluate_main(["--checkpoint", str(tiny_checkpoints.garbage_file)]) == 2
    assert "error:" in capsys.readouterr().err
    # no eval net for a 32 px synthetic-faces checkpoint ships: the message says how to train one
    assert evaluate_main(["--checkpoint", str(tiny_checkpoints.tiny), "--what", "fid"]) == 2
    assert "python -m training.eval_net --dataset synthetic-faces" in capsys.readouterr().err
    assert evaluate_main(["--checkpoint", str(tiny_checkpoints.tiny), "--what", "arithmetic", "--eval-net", "inception"]) == 2


def test_generator_kind_trusts_the_export_record():
    from explorer.checkpoint import Checkpoint

    def kind(meta, uses_ema):
        return Checkpoint(path=Path("."), meta=meta, config=None, generator=None, discriminator=None, uses_ema=uses_ema).generator_kind

    # an export holds one generator file, so the loader sees "raw" even when it came from the EMA
    assert kind({"exported_from": {"generator": "ema"}}, False) == "ema"
    assert kind({"exported_from": {"generator": "raw"}}, False) == "raw"
    assert kind({}, True) == "ema" and kind({}, False) == "raw"
