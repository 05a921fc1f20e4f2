"""Localisation metrics on hand-made heatmaps with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import (
    binarise,
    boxes_to_mask,
    energy_pointing_game,
    iou,
    miou,
    outside_inside_ratio,
    pointing_accuracy,
    pointing_game,
)
from aeq_onnx.errors import InputError

BOX = [(30, 30, 40, 40)]  # columns/rows 30..39


def peak(row: int, col: int, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    heat = np.random.default_rng(0).uniform(-0.5, 0.5, shape)
    heat[row, col] = 3.0
    return heat


def test_boxes_to_mask_covers_overlapped_pixels() -> None:
    mask = boxes_to_mask([(1, 2, 3, 4), (4.5, 0.2, 5.1, 0.8)], (6, 7))
    expected = np.zeros((6, 7), bool)
    expected[2:4, 1:3] = True
    expected[0:1, 4:6] = True
    np.testing.assert_array_equal(mask, expected)
    assert boxes_to_mask([(-5, -5, 100, 2)], (4, 4)).sum() == 8
    with pytest.raises(MetricError):
        boxes_to_mask([(3, 0, 1, 1)], (4, 4))


@pytest.mark.parametrize(("row", "col", "hit"), [
    (35, 35, True),     # inside
    (35, 49, True),     # 10 px right of column 39
    (35, 54, True),     # exactly 15 px: inclusive
    (35, 55, False),    # 16 px
    (35, 59, False),    # 20 px
    (20, 35, True),     # 10 px above row 30
    (10, 35, False),    # 20 px above
])
def test_pointing_game_tolerance(row: int, col: int, hit: bool) -> None:
    assert pointing_game(peak(row, col), BOX) is hit


def test_pointing_game_diagonal_and_mask_input() -> None:
    mask = boxes_to_mask(BOX, (64, 64))
    assert pointing_game(peak(49, 49), mask)          # hypot(10, 10) = 14.1
    assert not pointing_game(peak(51, 51), mask)      # hypot(12, 12) = 17.0
    assert not pointing_game(peak(35, 49), mask, tolerance=0)
    assert pointing_game(peak(35, 39), mask, tolerance=0)


def test_pointing_game_ties() -> None:
    heat = np.zeros((64, 64))
    heat[0, 0] = heat[35, 35] = 1.0   # first maximum (row-major) misses, second hits
    assert not pointing_game(heat, BOX, ties="first")
    assert pointing_game(heat, BOX, ties="any")


def test_pointing_game_errors_and_accuracy() -> None:
    with pytest.raises(InputError):
        pointing_game(np.zeros((8, 8)), np.zeros((8, 8), bool))
    with pytest.raises(MetricError):
        pointing_game(np.zeros((8, 8)), np.ones((4, 4), bool))
    with pytest.raises(MetricError):
        pointing_game(np.full((8, 8), np.nan), [(0, 0, 2, 2)])
    assert pointing_accuracy([True, False, True, True]) == 0.75
    with pytest.raises(MetricError):
        pointing_accuracy([])


def test_energy_pointing_game() -> None:
    heat = np.zeros((20, 20))
    heat[5:10, 5:10] = 2.0
    heat[0, 0] = -100.0   # negative relevance is ignored
    assert energy_pointing_game(heat, [(5, 5, 10, 10)]) == 1.0
    heat[15, 15] = 50.0   # as much positive energy outside as inside
    assert energy_pointing_game(heat, [(5, 5, 10, 10)]) == pytest.approx(0.5)
    assert energy_pointing_game(-np.ones((20, 20)), [(5, 5, 10, 10)]) == 0.0


def test_outside_inside_ratio() -> None:
    heat = np.full((20, 20), 0.5)
    heat[5:15, 5:15] = 2.0          # 100 pixels inside, 300 outside
    heat[0, :] = -7.0               # 20 outside pixels with negative relevance
    box = [(5, 5, 15, 15)]
    assert outside_inside_ratio(heat, box) == pytest.approx((280 * 0.5 / 300) / 2.0)
    assert outside_inside_ratio(heat, box, kind="absolute") == pytest.approx(
        ((280 * 0.5 + 20 * 7.0) / 300) / 2.0)
    heat[5:15, 5:15] = 0.0
    assert outside_inside_ratio(heat, box) == math.inf
    assert math.isnan(outside_inside_ratio(np.zeros((20, 20)), box))
    with pytest.raises(MetricError):
        outside_inside_ratio(heat, np.ones((20, 20), bool))


def test_iou_and_miou() -> None:
    mask = boxes_to_mask([(2, 2, 6, 6)], (10, 10))
    assert iou(mask.astype(float), mask) == 1.0
    assert miou([mask.astype(float)] * 3, [mask] * 3) == 1.0
    shifted = boxes_to_mask([(4, 2, 8, 6)], (10, 10)).astype(float)   # overlap 8 of 24
    assert iou(shifted, mask) == pytest.approx(8 / 24)
    assert miou([mask.astype(float), shifted], [mask, mask]) == pytest.approx((1 + 8 / 24) / 2)
    assert iou(np.zeros((10, 10)), mask) == 0.0
    with pytest.raises(MetricError):
        miou([mask], [])


def test_binarise_thresholds() -> None:
    heat = np.array([[4.0, 3.0], [1.0, -2.0]])
    np.testing.assert_array_equal(binarise(heat), [[True, True], [False, False]])  # mean 8/3
    np.testing.assert_array_equal(binarise(heat, 0.25), [[True, True], [True, False]])
    np.testing.assert_array_equal(binarise(heat, 0.9), [[True, False], [False, False]])
    np.testing.assert_array_equal(binarise(np.ones((2, 2)), top=0.5),
                                  [[True, True], [False, False]])   # stable ties
    np.testing.assert_array_equal(binarise(heat, top=0.75), [[True, True], [True, False]])
    with pytest.raises(MetricError):
        binarise(heat, 2.0)
    with pytest.raises(MetricError):
        binarise(heat, top=0.0)
