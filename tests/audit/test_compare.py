"""``aeq compare`` (``aeq_onnx.audit.compare``): the agreement metrics on hand-made maps with
known answers (Spearman against scipy), a model against itself (perfect agreement), against a
perturbed copy (lower), B explained for A's classes, output that does not depend on the
order the photos were given in, and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from PIL import Image
from scipy import stats

from aeq_onnx.audit.compare import compare
from aeq_onnx.audit.compare.agreement import agreement, iou, summarise, top_fraction, top_k
from aeq_onnx.cli import main
from tests.helpers_models import small_cnn

SIZE = 16


def model16(seed: int = 0, classes: int = 6) -> onnx.ModelProto:
    """``small_cnn`` on 16x16 photos (its global pool takes any size)."""
    model = small_cnn(classes=classes, seed=seed)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = SIZE, SIZE
    return model


def perturbed(model: onnx.ModelProto, scale: float, seed: int = 1) -> onnx.ModelProto:
    """A copy with every weight moved by ``scale`` x its std of seeded noise."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    rng = np.random.default_rng(seed)
    for init in copy.graph.initializer:
        w = numpy_helper.to_array(init)
        noisy = w + scale * w.std() * rng.standard_normal(w.shape)
        init.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), init.name))
    return copy


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    base = model16()
    onnx.save(base, root / "a.onnx")
    onnx.save(perturbed(base, 0.6), root / "b.onnx")
    onnx.save(model16(classes=4), root / "four.onnx")
    (root / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
            root / "photos" / f"p{i}.png")
    return root


# ------------------------------------------------------------------------------ the metrics


def test_top_k_and_overlap() -> None:
    a = np.array([0.1, 0.9, 0.3, 0.8, 0.5, 0.0, 0.7])
    b = np.array([0.9, 0.1, 0.3, 0.8, 0.5, 0.6, 0.7])
    assert top_k(a, 5) == [1, 3, 6, 4, 2]
    assert top_k(np.zeros(4), 2) == [0, 1]  # ties: lower index first
    got = agreement(a, b, np.eye(8), np.eye(8))
    assert got["top1_a"] == 1 and got["top1_b"] == 0 and got["top1_agree"] == 0
    assert got["top5_overlap"] == pytest.approx(3 / 5)  # {3, 6, 4} shared


def test_top_fraction_iou_by_hand() -> None:
    heat = np.arange(20.0).reshape(4, 5)
    mask = top_fraction(heat, 0.1)  # ceil(2.0) = 2 pixels: 19 and 18
    assert sorted(np.flatnonzero(mask)) == [18, 19]
    other = np.zeros((4, 5))
    other.flat[[19, 0]] = [5.0, 4.0]
    assert iou(mask, top_fraction(other, 0.1)) == pytest.approx(1 / 3)
    assert iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_spearman_matches_scipy_and_identical_maps_agree_fully() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((12, 12))
    b = a + 0.8 * rng.standard_normal((12, 12))
    b[0, :4] = b[0, 0]  # ties
    got = agreement(np.arange(6.0), np.arange(6.0), a, b)
    assert got["spearman"] == pytest.approx(stats.spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)
    same = agreement(np.arange(6.0), np.arange(6.0), a, a)
    assert same["spearman"] == pytest.approx(1.0) and same["ssim"] == pytest.approx(1.0)
    assert same["iou_top"] == 1.0 and same["top5_overlap"] == 1.0 and same["top1_agree"] == 1
    flipped = agreement(np.arange(6.0), np.arange(6.0), a, -a)
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["iou_top"] == 0.0


def test_undefined_metrics_are_none_and_counted() -> None:
    """A constant heatmap has no ranks (Spearman undefined); a 5x5 map is under SSIM's 7x7
    window: both None, left out of the means, counted."""
    logits = np.arange(6.0)
    flat = agreement(logits, logits, np.ones((8, 8)), np.eye(8))
    small = agreement(logits, logits, np.eye(5), np.eye(5))
    assert flat["spearman"] is None and small["ssim"] is None
    rows = [{"image": "b", **flat}, {"image": "a", **small}]
    summary = summarise(rows)
    assert summary["images"] == 2
    assert summary["spearman"] == {"mean": pytest.approx(small["spearman"]),
                                   "min": pytest.approx(small["spearman"]), "undefined": 1}
    assert summary["ssim"]["undefined"] == 1
    assert summary["top1_agree"] == {"mean": 1.0, "min": 1.0, "undefined": 0}


# ------------------------------------------------------------------------------ the models


def test_a_model_against_itself_agrees_perfectly(work: Path) -> None:
    result = compare(work / "a.onnx", work / "a.onnx", [work / "photos"], device="cpu")
    assert [Path(r["image"]).name for r in result.rows] == [f"p{i}.png" for i in range(5)]
    for name in ("top1_agree", "top5_overlap", "spearman", "ssim", "iou_top"):
        assert result.summary[name]["mean"] == pytest.approx(1.0), name
        assert result.summary[name]["undefined"] == 0
    assert all(r["prob_a"] == r["prob_b"] for r in result.rows)


def test_a_perturbed_copy_agrees_less(work: Path, tmp_path: Path) -> None:
    """B explains A's top-1 for every image, whatever B predicts; its maps differ, less for a
    small perturbation (measured: Spearman 0.999 at 0.05, 0.861 at 0.6)."""
    result = compare(work / "a.onnx", work / "b.onnx", [work / "photos"], device="cpu")
    assert all(r["target"] == r["top1_a"] for r in result.rows)
    for name in ("spearman", "ssim", "iou_top"):
        assert result.summary[name]["mean"] < 0.95, name
    onnx.save(perturbed(model16(), 0.05), tmp_path / "close.onnx")
    close = compare(work / "a.onnx", tmp_path / "close.onnx", [work / "photos"], device="cpu")
    for name in ("spearman", "ssim", "iou_top"):
        assert result.summary[name]["mean"] < close.summary[name]["mean"] < 1.0, name


def test_a_given_target_is_explained_by_both(work: Path) -> None:
    result = compare(work / "a.onnx", work / "b.onnx", [work / "photos"], target=2,
                     device="cpu")
    assert {r["target"] for r in result.rows} == {2}
    assert result.info["target"] == 2


def test_output_does_not_depend_on_the_order_of_the_photos(work: Path, tmp_path: Path) -> None:
    """Photos given in two orders and batch sizes: the same files, byte for byte."""
    photos = sorted((work / "photos").glob("*.png"))
    outs = []
    for order, batch, name in ((photos, 2, "one"), (photos[::-1], 3, "two")):
        compare(work / "a.onnx", work / "b.onnx", order, out=tmp_path / name, batch_size=batch,
                device="cpu")
        outs.append(tmp_path / name)
    files = sorted(str(p.relative_to(outs[0])) for p in outs[0].rglob("*") if p.is_file())
    assert {"compare.json", "compare.md", "index.html"} <= set(files)
    assert len([f for f in files if f.startswith("images/")]) == len(photos)
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name


def nhwc(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network taking NHWC photos (a Transpose in front, as tf2onnx writes)."""
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    graph = copy.graph
    for node in graph.node:
        node.input[:] = ["nchw" if name == "input" else name for name in node.input]
    graph.node.insert(0, onnx.helper.make_node("Transpose", ["input"], ["nchw"],
                                               perm=[0, 3, 1, 2]))
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[3].dim_value = SIZE, 3
    return copy


def test_each_model_gets_its_own_layout(work: Path, tmp_path: Path) -> None:
    """An NHWC copy of A gets the photos in NHWC and agrees with A perfectly."""
    onnx.save(nhwc(model16()), tmp_path / "nhwc.onnx")
    result = compare(work / "a.onnx", tmp_path / "nhwc.onnx", [work / "photos"], device="cpu")
    assert (result.info["layout_a"], result.info["layout_b"]) == ("NCHW", "NHWC")
    for name in ("top1_agree", "spearman", "ssim", "iou_top"):
        assert result.summary[name]["mean"] == pytest.approx(1.0, abs=1e-6), name


def test_models_of_different_classes_are_refused(work: Path) -> None:
    from aeq_onnx.errors import InputError

    with pytest.raises(InputError, match="model A has 6 classes and model B 4"):
        compare(work / "a.onnx", work / "four.onnx", [work / "photos"], device="cpu")


def test_cli_compare(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["compare", str(work / "a.onnx"), str(work / "b.onnx"), "--images",
                 str(work / "photos"), "-o", str(out), "--device", "cpu"])
    printed, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "| SSIM |" in printed and "5 image(s)" in printed
    data = (out / "compare.json").read_text()
    assert '"top1_agree"' in data and "NaN" not in data
    assert "photo as the models see it" in (out / "index.html").read_text()
