"""RISE: masks, reproducibility, agreement with a slow loop, and localisation on a toy model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from audit_models import region_model

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import softmax_predictor
from aeq_onnx.audit.rise import rise_for_session, rise_masks, rise_saliency
from aeq_onnx.run.runtime import make_session


def slow_mask(grid: np.ndarray, shift: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Per-pixel bilinear upsampling (half-pixel centres, clamped) of the whole grid, cropped."""
    cell = grid.shape[0]
    up = [(cell + 1) * math.ceil(s / cell) for s in size]
    full = np.zeros(up)

    def src(o: int, n: int) -> tuple[int, int, float]:
        c = min(max((o + 0.5) * cell / n - 0.5, 0.0), cell - 1.0)
        return math.floor(c), min(math.floor(c) + 1, cell - 1), c - math.floor(c)
    for i in range(up[0]):
        r0, r1, wr = src(i, up[0])
        for j in range(up[1]):
            c0, c1, wc = src(j, up[1])
            top = grid[r0, c0] * (1 - wc) + grid[r0, c1] * wc
            bottom = grid[r1, c0] * (1 - wc) + grid[r1, c1] * wc
            full[i, j] = top * (1 - wr) + bottom * wr
    return full[shift[0]:shift[0] + size[0], shift[1]:shift[1] + size[1]]


def test_masks_match_the_paper_construction() -> None:
    size, cell, p = (10, 13), 4, 0.5
    masks = rise_masks(0, 5, size, cell, p, seed=3)
    assert masks.shape == (5, *size) and masks.dtype == np.float32
    for k in range(5):
        rng = np.random.default_rng([3, k])
        grid = (rng.random((cell, cell)) < p).astype(float)
        shift = (int(rng.integers(0, 3)), int(rng.integers(0, 4)))
        np.testing.assert_allclose(masks[k], slow_mask(grid, shift, size), atol=1e-6)
    np.testing.assert_array_equal(rise_masks(2, 2, size, cell, p, seed=3), masks[2:4])
    many = rise_masks(0, 300, (16, 16), 4, 0.3)
    assert many.min() >= 0 and many.max() <= 1 and many.mean() == pytest.approx(0.3, abs=0.03)


def test_rise_matches_slow_loop_and_is_reproducible() -> None:
    predict = softmax_predictor(make_session(region_model(), "cpu"))
    rng = np.random.default_rng(0)
    images = rng.random((2, 1, 16, 16)).astype(np.float32)
    targets = np.array([0, 1])
    calls: list[tuple[int, int]] = []
    fast = rise_saliency(predict, images, targets, n_masks=37, cell=4, batch_size=8, seed=5,
                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(8, 37), (16, 37), (24, 37), (32, 37), (37, 37)]
    slow = np.zeros((2, 16, 16))
    for i in range(37):
        mask = rise_masks(i, 1, (16, 16), 4, 0.5, seed=5)[0]
        for n in range(2):
            slow[n] += predict(images[n:n + 1] * mask)[0, targets[n]] * mask
    np.testing.assert_allclose(fast, slow / (37 * 0.5), rtol=1e-5, atol=1e-6)
    again = rise_saliency(predict, images, targets, n_masks=37, cell=4, batch_size=5, seed=5)
    np.testing.assert_allclose(again, fast, rtol=1e-5, atol=1e-6)
    other = rise_saliency(predict, images, targets, n_masks=37, cell=4, batch_size=8, seed=6)
    assert not np.allclose(other, fast)


def test_rise_finds_the_region_the_model_looks_at() -> None:
    session = make_session(region_model(16, (4, 4, 9, 9)), "cpu")
    images = np.ones((1, 1, 16, 16), np.float32)
    saliency = rise_for_session(session, images, np.array([0]), n_masks=400, cell=4,
                                batch_size=100)
    inside = np.zeros((16, 16), bool)
    inside[4:9, 4:9] = True
    assert saliency.shape == (1, 16, 16)
    assert saliency[0][inside].mean() > saliency[0][~inside].mean() + 0.05
    # the class-1 saliency is the mirror image: highest outside the region
    other = rise_for_session(session, images, np.array([1]), n_masks=400, cell=4, batch_size=100)
    assert other[0][inside].mean() < other[0][~inside].mean()


def test_rise_input_errors() -> None:
    predict = softmax_predictor(make_session(region_model(), "cpu"))
    images = np.ones((1, 1, 16, 16), np.float32)
    with pytest.raises(MetricError):
        rise_saliency(predict, images[0], np.array([0]))
    with pytest.raises(MetricError):
        rise_saliency(predict, images, np.array([0, 1]))
    with pytest.raises(MetricError):
        rise_saliency(predict, images, np.array([2]), n_masks=4)
    with pytest.raises(MetricError):
        rise_saliency(predict, images, np.array([0]), n_masks=4, p=0.0)
