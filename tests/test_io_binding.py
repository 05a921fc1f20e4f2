"""IO binding: the bound path gives the plain ``session.run`` answers bit for bit.

On CUDA the explainer runs through onnxruntime's IO binding by default (tests/test_cuda.py
checks it there); the same code runs on CPU, so these tests exercise it on every machine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aeq_onnx.errors import InputError
from aeq_onnx.run.runtime import OUTPUTS, Explainer

MODEL = Path(__file__).resolve().parent.parent / "fixtures/scenes/resnet_scenes.onnx"
FIELDS = ("logits", "target", "relevance", "initial_relevance")


@pytest.fixture(scope="module")
def explainers() -> tuple[Explainer, Explainer]:
    plain = Explainer(MODEL, device="cpu")
    assert not plain.io_binding  # the CPU default is plain session.run
    return plain, Explainer(plain.model, device="cpu", io_binding=True)


def _batch(n: int = 3) -> np.ndarray:
    return np.random.default_rng(5).random((n, 3, 64, 64), dtype=np.float32)


@pytest.mark.parametrize("target", [None, 2, [0, 5, -1]], ids=["top1", "one-class", "per-sample"])
def test_bound_explain_equals_plain_run(explainers: tuple[Explainer, Explainer],
                                        target: object) -> None:
    plain, bound = explainers
    want, got = plain.explain(_batch(), target), bound.explain(_batch(), target)  # type: ignore[arg-type]
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)


def test_explain_on_device_returns_ortvalues(explainers: tuple[Explainer, Explainer]) -> None:
    plain, bound = explainers
    x = _batch(2)
    out = bound.explain_on_device(ort.OrtValue.ortvalue_from_numpy(x, "cpu"), target=[1, 4])
    assert tuple(out) == OUTPUTS
    assert all(isinstance(v, ort.OrtValue) and v.device_name() == "cpu" for v in out.values())
    want = plain.explain(x, [1, 4])
    np.testing.assert_array_equal(out["relevance"].numpy(), want.relevance)
    np.testing.assert_array_equal(out["target_class"].numpy(), [1, 4])


@pytest.mark.parametrize("value, match", [
    (np.zeros((2, 3, 64, 64)), "OrtValue"),
    (ort.OrtValue.ortvalue_from_numpy(np.zeros((2, 3, 64, 64), np.float64)), "dtype"),
    (ort.OrtValue.ortvalue_from_numpy(np.zeros((2, 3, 32, 32), np.float32)), "shape"),
    (ort.OrtValue.ortvalue_from_numpy(np.zeros((0, 3, 64, 64), np.float32)), "no batch"),
], ids=["numpy", "float64", "wrong-size", "empty"])
def test_explain_on_device_rejects_bad_input(explainers: tuple[Explainer, Explainer],
                                             value: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        explainers[1].explain_on_device(value)  # type: ignore[arg-type]
