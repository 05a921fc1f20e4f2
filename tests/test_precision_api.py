"""fp16 through the public API: ``compile_explainer(precision=)``, ``Explainer(precision=)``
and ``aeq build/explain --precision`` (the conversion itself: tests/test_fp16.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import aeq_onnx
from aeq_onnx.cli import main
from aeq_onnx.compile.precision import is_float16
from aeq_onnx.errors import MethodError
from aeq_onnx.run.runtime import Explainer

MODEL = Path(__file__).resolve().parent.parent / "fixtures/scenes/vgg_scenes.onnx"


@pytest.fixture(scope="module")
def fp32() -> onnx.ModelProto:
    return aeq_onnx.compile_explainer(MODEL)


def _batch() -> np.ndarray:
    return np.random.default_rng(3).random((2, 3, 64, 64), dtype=np.float32)


def test_compile_fp16_gives_a_float16_explainer_with_a_float32_interface() -> None:
    model = aeq_onnx.compile_explainer(MODEL, precision="fp16")
    assert is_float16(model)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["aeq_onnx.precision"] == "fp16" and meta["aeq_onnx.method"] == "ae"
    with pytest.warns(UserWarning, match="meant for CUDA"):
        result = Explainer(model, device="cpu").explain(_batch())
    assert result.relevance.dtype == np.float32 and np.isfinite(result.relevance).all()


def test_explainer_converts_an_fp32_explainer(fp32: onnx.ModelProto) -> None:
    with pytest.warns(UserWarning, match="meant for CUDA"):
        half = Explainer(fp32, precision="fp16", device="cpu")
    assert is_float16(half.model) and not is_float16(fp32)
    full = Explainer(fp32, device="cpu")
    want, got = full.explain(_batch()), half.explain(_batch())
    np.testing.assert_array_equal(got.target, want.target)
    err = np.abs(got.relevance - want.relevance).max() / np.abs(want.relevance).max()
    assert 0 < err < 0.05  # fp16 rounding shows, within benchmarks/results/FP16.md's range


@pytest.mark.parametrize("precision", ["fp8", "float16"], ids=["fp8", "long-name"])
def test_unknown_precision_is_a_method_error(fp32: onnx.ModelProto, precision: str) -> None:
    with pytest.raises(MethodError, match="precision"):
        aeq_onnx.compile_explainer(MODEL, precision=precision)
    with pytest.raises(MethodError, match="precision"):
        Explainer(fp32, precision=precision, device="cpu")


def test_fp16_explainer_does_not_silently_run_as_fp32() -> None:
    half = aeq_onnx.compile_explainer(MODEL, precision="fp16")
    with pytest.raises(MethodError, match="built in fp16"):
        Explainer(half, precision="fp32", device="cpu")


def test_cli_build_fp16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, batch = tmp_path / "half.onnx", tmp_path / "batch.npy"
    assert main(["build", str(MODEL), "-o", str(out), "--precision", "fp16"]) == 0
    assert "precision fp16" in capsys.readouterr().out
    assert is_float16(onnx.load(str(out)))
    np.save(batch, _batch())
    code = main(["explain", str(out), str(batch), "-o", str(tmp_path / "r.npy"),
                 "--device", "cpu"])
    assert code == 0 and np.isfinite(np.load(tmp_path / "r.npy")).all()
    err = capsys.readouterr().err  # the CLI prints warnings itself, one line each
    assert err.count("aeq: warning: an fp16 explainer is meant for CUDA") == 1, err
