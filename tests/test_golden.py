"""The compiled explainer reproduces the reference implementation's relevance (fixtures/golden)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import aeq_onnx

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"
TOLERANCE = 1e-4  # of each array's max |value|; the definition of "correct"
KEY = re.compile(r"R_s(\d+)_t(\d+)_r([\d.]+)")


def _cases() -> list[tuple[str, int, float]]:
    cases = set()
    for name in ("vgg_mini", "res_mini"):
        for key in np.load(GOLDEN / f"{name}.npz").files:
            match = KEY.fullmatch(key)
            if match:
                cases.add((name, int(match[2]), float(match[3])))
    return sorted(cases)


@pytest.fixture(scope="module")
def sessions() -> dict[tuple[str, float], ort.InferenceSession]:
    """One explainer per model and ratio, compiled from the golden ONNX files."""
    built = {}
    for name, _, ratio in _cases():
        if (name, ratio) not in built:
            model = aeq_onnx.compile_explainer(GOLDEN / f"{name}.onnx", ratio=ratio)
            built[name, ratio] = ort.InferenceSession(
                model.SerializeToString(), providers=["CPUExecutionProvider"])
    return built


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize(("name", "target", "ratio"), _cases(),
                         ids=[f"{n}-t{t}-r{r:g}" for n, t, r in _cases()])
def test_golden_relevance(sessions: dict, name: str, target: int, ratio: float) -> None:
    """Both samples in one batch: logits, R0 and R within 1e-4 of the reference."""
    data = np.load(GOLDEN / f"{name}.npz")
    batch = data["input"]
    logits, chosen, relevance, r0 = sessions[name, ratio].run(
        ["logits", "target_class", "relevance", "initial_relevance"],
        {"input": batch, "target": np.full(len(batch), target, np.int64)})
    np.testing.assert_allclose(logits, data["logits"], atol=1e-5)
    assert chosen.tolist() == [target] * len(batch)
    for b in range(len(batch)):
        suffix = f"s{b}_t{target}_r{ratio}"
        assert _relative(r0[b], data[f"R0_{suffix}"][0]) < TOLERANCE
        assert _relative(relevance[b], data[f"R_{suffix}"][0]) < TOLERANCE


@pytest.mark.parametrize("name", ["vgg_mini", "res_mini"])
def test_golden_split_tensor(name: str) -> None:
    """The default split heuristic (spec section 2) finds the reference's layer."""
    explainer = aeq_onnx.Explainer(GOLDEN / f"{name}.onnx", device="cpu")
    assert explainer.metadata["split"] == str(np.load(GOLDEN / f"{name}.npz")["split"])


def test_golden_top1_default() -> None:
    """target=None explains each sample's top-1 class."""
    data = np.load(GOLDEN / "vgg_mini.npz")
    result = aeq_onnx.Explainer(GOLDEN / "vgg_mini.onnx", device="cpu").explain(data["input"])
    assert result.target.tolist() == data["logits"].argmax(axis=1).tolist()
    assert result.provider == "CPUExecutionProvider"
