"""Localisation metrics: does the heatmap point at the annotated object?

- Pointing game (Zhang et al. 2016/2018, "Top-down neural attention by excitation backprop",
  with the tolerance of TorchRay's benchmark, Fong et al. 2019): a hit when the heatmap's
  maximum lies within ``tolerance`` pixels (Euclidean, inclusive) of the mask, i.e. inside the
  mask dilated by a disc of radius 15 px. Ties: by default the *first* maximum in row-major
  order is the point (``numpy.argmax``, as TorchRay); ``ties="any"`` counts a hit when any of
  the tied maxima hits.
- Energy-based pointing game (Wang et al. 2020, Score-CAM, section 4.3):
  ``sum(R+ inside) / sum(R+)``, ``R+ = max(R, 0)``; 0 when there is no positive relevance.
- Outside-inside relevance ratio (Nam et al. 2020, "Relative Attributing Propagation", used by
  the Attribution Equilibrium paper): ``mean(R+ outside) / mean(R+ inside)``; lower is better.
- IoU / mIoU of the thresholded heatmap against the mask (mean over images).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics._common import GroundTruth, as_heat, as_mask


def _hits_near(mask: np.ndarray, row: int, col: int, tolerance: float) -> bool:
    """True when some mask pixel lies within ``tolerance`` (Euclidean) of ``(row, col)``."""
    r = max(math.floor(tolerance), 0)
    r0, c0 = max(row - r, 0), max(col - r, 0)
    window = mask[r0:row + r + 1, c0:col + r + 1]
    dy = np.arange(r0, r0 + window.shape[0])[:, None] - row
    dx = np.arange(c0, c0 + window.shape[1])[None, :] - col
    return bool((window & (dy * dy + dx * dx <= tolerance * tolerance)).any())


def pointing_game(heat: np.ndarray, truth: GroundTruth, tolerance: float = 15.0,
                  ties: Literal["first", "any"] = "first") -> bool:
    """Pointing-game hit: the maximum of ``heat`` within ``tolerance`` px of the ground truth.

    ``ties="first"`` takes the first maximum in row-major order (TorchRay); ``"any"`` is a hit
    when any tied maximum hits. The mask must not be empty (skip images without the class).
    """
    heat = as_heat(heat)
    mask = as_mask(truth, heat.shape)
    if ties == "first":
        points = [np.unravel_index(int(np.argmax(heat)), heat.shape)]
    else:
        points = list(zip(*np.nonzero(heat == heat.max()), strict=True))
    return any(_hits_near(mask, int(r), int(c), tolerance) for r, c in points)


def pointing_accuracy(hits: Iterable[bool]) -> float:
    """Pointing-game accuracy: ``#hits / (#hits + #misses)`` over the evaluated images."""
    values = np.asarray(list(hits), dtype=bool)
    if values.size == 0:
        raise MetricError("pointing accuracy needs at least one evaluated image")
    return float(values.mean())


def energy_pointing_game(heat: np.ndarray, truth: GroundTruth) -> float:
    """Score-CAM energy pointing game: ``sum(R+ in mask) / sum(R+)`` (0 without positive R)."""
    heat = as_heat(heat)
    mask = as_mask(truth, heat.shape)
    positive = np.maximum(heat, 0.0)
    total = float(positive.sum())
    return float(positive[mask].sum()) / total if total > 0 else 0.0


def outside_inside_ratio(heat: np.ndarray, truth: GroundTruth,
                         kind: Literal["positive", "absolute"] = "positive") -> float:
    """Outside-inside relevance ratio ``mean(R' outside) / mean(R' inside)``, lower is better.

    ``R' = max(R, 0)`` (default) or ``|R|``. Guards: ``0/0`` is ``nan`` (no relevance at all),
    ``x/0`` with ``x > 0`` is ``inf``; a mask covering the whole image is an error.
    """
    heat = as_heat(heat)
    mask = as_mask(truth, heat.shape)
    if mask.all():
        raise MetricError("the mask covers the whole image: no outside region")
    values = np.maximum(heat, 0.0) if kind == "positive" else np.abs(heat)
    inside, outside = float(values[mask].mean()), float(values[~mask].mean())
    if inside > 0:
        return outside / inside
    return math.inf if outside > 0 else math.nan


def binarise(heat: np.ndarray, threshold: float | Literal["mean"] = "mean",
             top: float | None = None) -> np.ndarray:
    """Boolean map of the relevant pixels of ``heat``.

    ``top`` (a fraction in (0, 1]): the ``ceil(top * H * W)`` most relevant pixels (stable:
    ties go to the earlier pixel in row-major order). Otherwise pixels with ``R > 0`` and
    ``R >= t``: ``t`` the mean positive relevance for ``"mean"`` (default), or
    ``threshold * max(R)`` for a float in [0, 1] (e.g. 0.15 as in Grad-CAM's localisation).
    """
    heat = as_heat(heat)
    if top is not None:
        if not 0 < top <= 1:
            raise MetricError(f"top must be a fraction in (0, 1], got {top}")
        order = np.argsort(-heat.ravel(), kind="stable")[:math.ceil(top * heat.size)]
        flat = np.zeros(heat.size, dtype=bool)
        flat[order] = True
        return flat.reshape(heat.shape)
    positive = heat[heat > 0]
    if positive.size == 0:
        return np.zeros(heat.shape, dtype=bool)
    if threshold == "mean":
        cut = float(positive.mean())
    elif isinstance(threshold, (int, float)) and 0 <= threshold <= 1:
        cut = float(threshold) * float(positive.max())
    else:
        raise MetricError(f"threshold must be 'mean' or a fraction in [0, 1], got {threshold!r}")
    return (heat > 0) & (heat >= cut)


def iou(heat: np.ndarray, truth: GroundTruth, threshold: float | Literal["mean"] = "mean",
        top: float | None = None) -> float:
    """``|B & M| / |B | M|`` of the binarised heatmap ``B`` (:func:`binarise`) and mask ``M``."""
    binary = binarise(heat, threshold, top)
    mask = as_mask(truth, binary.shape)
    return float((binary & mask).sum()) / float((binary | mask).sum())


def miou(heats: Sequence[np.ndarray], truths: Sequence[GroundTruth],
         threshold: float | Literal["mean"] = "mean", top: float | None = None) -> float:
    """Mean IoU over images (:func:`iou` for each heatmap / ground-truth pair)."""
    if len(heats) != len(truths) or not heats:
        raise MetricError(f"need as many heatmaps as masks (>0), got {len(heats)}/{len(truths)}")
    return float(np.mean([iou(h, t, threshold, top) for h, t in zip(heats, truths, strict=True)]))
