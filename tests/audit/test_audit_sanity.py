"""Cascading randomisation, SSIM and Spearman against slow direct implementations."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from audit_models import layered_model
from onnx import numpy_helper

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import (
    average_ranks,
    cascading_randomisation,
    randomisable_layers,
    spearman,
    ssim,
)
from aeq_onnx.errors import UnsupportedModelError
from aeq_onnx.run.runtime import make_session

LAYER_INITS = {"out": ["out_w"], "fc": ["fc_w", "fc_b"], "conv": ["conv_w", "conv_b"]}


def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_layers_are_found_output_first() -> None:
    layers = randomisable_layers(layered_model())
    assert layers == [(k, v) for k, v in LAYER_INITS.items()]


def test_cascading_randomisation_is_cumulative_and_runs() -> None:
    model = layered_model()
    original = weights(model)
    x = np.random.default_rng(3).random((2, 3, 8, 8)).astype(np.float32)
    reference = make_session(model, "cpu").run(None, {"x": x})[0]
    steps = list(cascading_randomisation(model, seed=1))
    assert [name for name, _ in steps] == list(LAYER_INITS)
    changed: set[str] = set()
    for name, randomised in steps:
        changed.update(LAYER_INITS[name])
        now = weights(randomised)
        for key, value in original.items():
            assert now[key].shape == value.shape and now[key].dtype == value.dtype
            differs = not np.array_equal(now[key], value)
            assert differs is (key in changed), (name, key)
        out = make_session(randomised, "cpu").run(None, {"x": x})[0]
        assert out.shape == reference.shape and np.isfinite(out).all()
        assert not np.allclose(out, reference)
    assert all(np.array_equal(weights(model)[k], v) for k, v in original.items())  # untouched


def test_cascading_randomisation_is_seeded_and_keeps_scale() -> None:
    model = layered_model()
    a = [weights(m) for _, m in cascading_randomisation(model, seed=7)]
    b = [weights(m) for _, m in cascading_randomisation(model, seed=7)]
    c = [weights(m) for _, m in cascading_randomisation(model, seed=8)]
    for x, y in zip(a, b, strict=True):
        assert all(np.array_equal(x[k], y[k]) for k in x)
    assert not np.array_equal(a[-1]["conv_w"], c[-1]["conv_w"])
    assert np.std(a[-1]["fc_w"]) == pytest.approx(np.std(weights(model)["fc_w"]), rel=0.05)
    assert np.std(a[-1]["conv_b"]) > 0   # zero bias re-drawn with the weight's std


def test_cascading_randomisation_needs_layers() -> None:
    model = layered_model()
    del model.graph.node[:]
    with pytest.raises(UnsupportedModelError):
        next(cascading_randomisation(model))


def slow_ssim(a: np.ndarray, b: np.ndarray, win: int = 7) -> float:
    """Direct per-window SSIM (uniform window, sample covariance), a and b already in [0, 1]."""
    values = []
    n = win * win
    for i in range(a.shape[0] - win + 1):
        for j in range(a.shape[1] - win + 1):
            pa, pb = a[i:i + win, j:j + win].ravel(), b[i:i + win, j:j + win].ravel()
            ma, mb = pa.mean(), pb.mean()
            va, vb = pa.var() * n / (n - 1), pb.var() * n / (n - 1)
            cov = ((pa - ma) * (pb - mb)).sum() / (n - 1)
            c1, c2 = 0.01 ** 2, 0.03 ** 2
            values.append((2 * ma * mb + c1) * (2 * cov + c2)
                          / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((12, 15)), rng.random((12, 15))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, a, window="gaussian") == pytest.approx(1.0)
    assert ssim(a, 3 * a + 2) == pytest.approx(1.0)   # normalised to [0, 1] first
    a01, b01 = (a - a.min()) / np.ptp(a), (b - b.min()) / np.ptp(b)
    assert ssim(a, b) == pytest.approx(slow_ssim(a01, b01), abs=1e-10)
    assert ssim(a, b, normalise=False) == pytest.approx(slow_ssim(a, b), abs=1e-10)
    assert ssim(a, b) < 0.5
    assert ssim(a, 1 - a) < 0
    with pytest.raises(MetricError):
        ssim(a, b[:, :5])
    with pytest.raises(MetricError):
        ssim(a[:5, :5], b[:5, :5])


def slow_ranks(x: np.ndarray) -> np.ndarray:
    flat = x.ravel()
    return np.array([(flat < v).sum() + ((flat == v).sum() + 1) / 2 for v in flat])


def test_spearman() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(-3, 4, (6, 7)).astype(float)   # many ties
    b = rng.normal(size=(6, 7))
    np.testing.assert_allclose(average_ranks(a), slow_ranks(a))
    assert spearman(a, a) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(b, np.exp(b)) == pytest.approx(1.0)   # monotone
    assert spearman(a, b) == pytest.approx(np.corrcoef(slow_ranks(a), slow_ranks(b))[0, 1])
    assert spearman(a, -a, absolute=True) == pytest.approx(1.0)
    assert np.isnan(spearman(np.ones((3, 3)), b[:3, :3]))
    with pytest.raises(MetricError):
        spearman(a, b[:2])
