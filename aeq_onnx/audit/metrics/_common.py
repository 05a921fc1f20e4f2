"""Shared input handling of the metrics: heatmaps, ground-truth masks and boxes.

Conventions: a heatmap is a 2-D float array ``(H, W)`` (the channel sum of the relevance, see
:func:`aeq_onnx.render.imaging.channel_sum`); ground truth is a boolean mask ``(H, W)`` or a list of
boxes ``(x0, y0, x1, y1)`` in pixel coordinates, where pixel ``(row i, column j)`` covers the
square ``[j, j + 1) x [i, i + 1)``. A box covers every pixel it overlaps: columns
``floor(x0) .. ceil(x1) - 1`` and rows ``floor(y0) .. ceil(y1) - 1``, clipped to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aeq_onnx.audit.errors import MetricError

Box = tuple[float, float, float, float]
GroundTruth = np.ndarray | Sequence[Box]


def boxes_to_mask(boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask ``(H, W)``: the union of the pixels covered by ``boxes`` (see module doc)."""
    height, width = shape
    mask = np.zeros((height, width), dtype=bool)
    for box in boxes:
        if len(box) != 4:
            raise MetricError(f"a box needs 4 numbers (x0, y0, x1, y1), got {box!r}")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
            raise MetricError(f"invalid box {box!r}: need finite x0 <= x1 and y0 <= y1")
        c0, c1 = max(math.floor(x0), 0), min(math.ceil(x1), width)
        r0, r1 = max(math.floor(y0), 0), min(math.ceil(y1), height)
        mask[r0:r1, c0:c1] = True
    return mask


def as_heat(heat: np.ndarray) -> np.ndarray:
    """``heat`` as a finite float64 ``(H, W)`` array (NaN/Inf are errors)."""
    array = np.asarray(heat, dtype=np.float64)
    if array.ndim != 2 or array.size == 0:
        raise MetricError(f"a heatmap must be a non-empty 2-D array (H, W), got {array.shape}")
    if not np.isfinite(array).all():
        raise MetricError("the heatmap holds NaN or Inf values")
    return array


def as_mask(truth: GroundTruth, shape: tuple[int, int], allow_empty: bool = False) -> np.ndarray:
    """Ground truth (mask or boxes) as a boolean mask of ``shape``; empty masks are errors."""
    if isinstance(truth, np.ndarray) and truth.ndim == 2:
        if truth.shape != shape:
            raise MetricError(f"mask shape {truth.shape} differs from the heatmap's {shape}")
        mask = truth.astype(bool)
    else:
        mask = boxes_to_mask(list(truth), shape)
    if not allow_empty and not mask.any():
        raise MetricError("the ground-truth mask is empty (the class is not in the image)")
    return mask
