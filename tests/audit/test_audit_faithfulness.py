"""Insertion / deletion with a synthetic linear predictor (analytic curves), blur, softmax."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import (
    gaussian_blur,
    gaussian_kernel,
    insertion_deletion,
    softmax,
    softmax_predictor,
    trapezoid_auc,
)
from aeq_onnx.run.runtime import make_session

WEIGHTS = np.array([[4.0, 3.0], [2.0, 1.0]])


def linear(batch: np.ndarray) -> np.ndarray:
    """P(class 0) = sum(x * w) / sum(w) over channel 0; P(class 1) = 1 - that."""
    p0 = (batch[:, 0] * WEIGHTS).sum(axis=(1, 2)) / WEIGHTS.sum()
    return np.stack([p0, 1 - p0], axis=1)


def test_insertion_perfect_order_is_analytic() -> None:
    image = np.ones((1, 2, 2))
    curve, auc = insertion_deletion(linear, image, WEIGHTS, 0, steps=4, baseline="zero")
    np.testing.assert_allclose(curve, [0.0, 0.4, 0.7, 0.9, 1.0])
    assert auc == pytest.approx(0.25 * (0.2 + 0.55 + 0.8 + 0.95))   # 0.625
    curve, auc = insertion_deletion(linear, image, WEIGHTS, 0, steps=2, baseline="zero",
                                    batch_size=1)
    np.testing.assert_allclose(curve, [0.0, 0.7, 1.0])
    assert auc == pytest.approx(0.5 * (0.35 + 0.85))


def test_deletion_mirrors_insertion() -> None:
    image = np.ones((1, 2, 2))
    ins, auc_ins = insertion_deletion(linear, image, WEIGHTS, 0, steps=4, baseline="zero")
    dele, auc_del = insertion_deletion(linear, image, WEIGHTS, 0, steps=4, baseline="zero",
                                       mode="deletion", batch_size=2)
    np.testing.assert_allclose(dele, 1 - ins)
    assert auc_ins + auc_del == pytest.approx(1.0)
    # the reversed order is the worst: insertion AUC falls, deletion AUC rises
    _, worst = insertion_deletion(linear, image, -WEIGHTS, 0, steps=4, baseline="zero")
    assert worst == pytest.approx(0.25 * (0.05 + 0.2 + 0.45 + 0.8)) and worst < auc_ins


def test_uneven_steps_and_stable_ties() -> None:
    image = np.ones((1, 2, 2))
    flat = np.zeros((2, 2))   # all tied: row-major order 4, 3, 2, 1 -> same as WEIGHTS
    curve, _ = insertion_deletion(linear, image, flat, 0, steps=3, baseline="zero")
    # counts floor(i * 4 / 3) = 0, 1, 2, 4
    np.testing.assert_allclose(curve, [0.0, 0.4, 0.7, 1.0])
    _, auc = insertion_deletion(linear, image, flat, 0, steps=3, baseline="zero")
    assert auc == pytest.approx(trapezoid_auc(np.array([0, .25, .5, 1]), curve))


def test_blur_baseline_and_kernel() -> None:
    k = gaussian_kernel(11, 5.0)
    assert k.shape == (11,) and k.sum() == pytest.approx(1.0) and k[5] == k.max()
    image = np.random.default_rng(1).random((2, 9, 12))
    blurred = gaussian_blur(image, 5, 1.0)
    k2 = np.outer(gaussian_kernel(5, 1.0), gaussian_kernel(5, 1.0))
    padded = np.pad(image, ((0, 0), (2, 2), (2, 2)))
    slow = np.zeros_like(image)
    for c in range(2):
        for i in range(9):
            for j in range(12):
                slow[c, i, j] = (padded[c, i:i + 5, j:j + 5] * k2).sum()
    np.testing.assert_allclose(blurred, slow, atol=1e-12)
    const = gaussian_blur(np.ones((1, 30, 30)))
    assert const[0, 15, 15] == pytest.approx(1.0) and const[0, 0, 0] < 1.0   # zero padding
    assert gaussian_blur(np.ones((1, 30, 30)), padding="reflect")[0, 0, 0] == pytest.approx(1)
    seen: list[np.ndarray] = []

    def record(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.full((len(batch), 2), 0.5)
    insertion_deletion(record, image, image[0], 0, steps=2)
    np.testing.assert_allclose(seen[0][0], gaussian_blur(image), rtol=1e-6)


def test_input_errors() -> None:
    image = np.ones((1, 2, 2))
    with pytest.raises(MetricError):
        insertion_deletion(linear, image, np.ones((3, 3)), 0)
    with pytest.raises(MetricError):
        insertion_deletion(linear, image, WEIGHTS, 5)
    with pytest.raises(MetricError):
        insertion_deletion(linear, image, WEIGHTS, 0, baseline="noise")
    with pytest.raises(MetricError):
        insertion_deletion(linear, image, WEIGHTS, 0, mode="both")  # type: ignore[arg-type]


def test_softmax_predictor_session_and_callable() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    w = onnx.numpy_helper.from_array(np.array([[1, -1]] * 4, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["f"]),
                               helper.make_node("MatMul", ["f", "w"], ["y"])],
                              "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              ir_version=10)
    batch = np.random.default_rng(0).random((3, 1, 2, 2)).astype(np.float32)
    logits = np.stack([batch.sum((1, 2, 3)), -batch.sum((1, 2, 3))], 1)
    probs = softmax_predictor(make_session(model, "cpu"))(batch)
    np.testing.assert_allclose(probs, softmax(logits), rtol=1e-5)
    np.testing.assert_allclose(softmax_predictor(lambda b: logits)(batch), softmax(logits))
    np.testing.assert_allclose(softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])
