"""``aeq build`` / ``aeq explain`` on deployed models (docs/deployed.md), at a small input size:
the small ResNet/MobileNet-V2 of ``fixtures/deployed.py`` in QDQ, QOperator and fp16 form, and
a model that takes uint8 photos (Cast, normalisation inside the graph): fed .npy batches in
its own dtype and photos as 0-255 integers, relevance float32 in the input's shape, one-line
errors for what does not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aeq_onnx.cli import main
from fixtures.deployed import cached
from tests.helpers import explain

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "fixtures" / "images" / "chelsea.jpg"
SIZE = 32


def run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("arch,variant", [
    ("resnet", "qdq"), ("resnet", "qoperator"), ("resnet", "fp16-io"),
    ("mobilenet", "qdq"), ("mobilenet", "qoperator"), ("mobilenet", "fp16-io")])
def test_build_and_explain_a_deployed_model(arch: str, variant: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``aeq build`` then ``aeq explain`` on an .npy batch: relevance written, float32, in the
    batch's shape, the same as the Python API's."""
    model = cached(arch, variant, SIZE)
    explainer = tmp_path / "explainer.onnx"
    code, out, err = run(["build", model, "-o", explainer], capsys)
    assert code == 0 and "wrote" in out, err
    batch = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(np.float32)
    np.save(tmp_path / "batch.npy", batch)
    code, _, err = run(["explain", explainer, tmp_path / "batch.npy", "-o",
                          tmp_path / "rel.npy"], capsys)
    assert code == 0, err
    relevance = np.load(tmp_path / "rel.npy")
    assert relevance.dtype == np.float32 and relevance.shape == batch.shape
    import onnx

    want = explain(onnx.load(str(explainer)), batch)["relevance"]
    np.testing.assert_array_equal(relevance, want)


def test_uint8_model_explains_an_npy_batch_in_its_own_dtype(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = cached("resnet", "uint8", SIZE)
    batch = np.random.default_rng(1).integers(0, 256, (2, 3, SIZE, SIZE)).astype(np.uint8)
    np.save(tmp_path / "pixels.npy", batch)
    code, _, err = run(["explain", model, tmp_path / "pixels.npy", "-o",
                          tmp_path / "rel.npy"], capsys)
    assert code == 0, err
    relevance = np.load(tmp_path / "rel.npy")
    assert relevance.dtype == np.float32 and relevance.shape == batch.shape
    assert np.isfinite(relevance).all() and (np.abs(relevance).sum(axis=(1, 2, 3)) > 0).all()


@pytest.mark.parametrize("values,message", [
    (np.zeros((1, 3, SIZE, SIZE), np.float32), "takes uint8 images"),
    (np.full((1, 3, SIZE, SIZE), 300, np.int64), "outside uint8's range"),
])
def test_uint8_model_refuses_what_does_not_fit(values: np.ndarray, message: str,
                                               tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "bad.npy", values)
    code, _, err = run(["explain", cached("resnet", "uint8", SIZE), tmp_path / "bad.npy",
                         ], capsys)
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1


def test_uint8_model_explains_a_photo_as_raw_pixels(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The photo is resized and cropped to the graph's input size, fed as 0-255 uint8 (no
    normalisation outside the graph); the relevance .npy is float32 in the input's shape."""
    from aeq_onnx.render.imaging import explain_images

    report = explain_images(cached("resnet", "uint8", SIZE), [PHOTO], out=tmp_path / "out",
                            isolate=False)
    assert report.failures == [] and len(report.results) == 1
    item = report.results[0]
    relevance = np.load(item.npy)
    assert relevance.dtype == np.float32 and relevance.shape == (3, SIZE, SIZE)
    code, _, err = run(["explain", cached("resnet", "uint8", SIZE), PHOTO, "--mean",
                          "0.5,0.5,0.5"], capsys)
    assert code != 0 and "normalises inside its graph" in err
