"""How far two models agree on one image (``aeq compare``), from their logits and heatmaps
(relevance summed over channels, ``H x W``), for the same target class::

    top1_agree   = 1[argmax a = argmax b]
    top5_overlap = |top5(a) ∩ top5(b)| / k,  k = min(5, classes)
    spearman     = Spearman's rho of the two heatmaps over the pixels (average ranks)
    ssim         = mean SSIM of the two heatmaps, each min-max scaled to [0, 1] (uniform 7x7
                   window, as :func:`aeq_onnx.audit.metrics.ssim`)
    iou_top      = |T_a ∩ T_b| / |T_a ∪ T_b|,  T the ceil(fraction · H·W) pixels of largest
                   heat (fraction 0.1 by default; ties: the lower flat index first)

``spearman`` is undefined (None) when a heatmap is constant, ``ssim`` when a map is smaller
than the 7x7 window; :func:`summarise` averages each metric over the images where it is
defined (``math.fsum`` over rows sorted by image, so the figures do not depend on the order
the images were given in) and counts the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import spearman, ssim

#: The per-image metrics :func:`summarise` averages, in report order.
METRICS = ("top1_agree", "top5_overlap", "spearman", "ssim", "iou_top")


def top_k(logits: np.ndarray, k: int) -> list[int]:
    """The ``k`` classes of largest logit, best first (ties: the lower index first)."""
    order = np.argsort(-np.asarray(logits, np.float64), kind="stable")
    return [int(c) for c in order[:k]]


def top_fraction(heat: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the ``ceil(fraction · size)`` pixels of largest ``heat``."""
    flat = np.asarray(heat, np.float64).ravel()
    count = max(1, math.ceil(fraction * flat.size))
    mask = np.zeros(flat.size, bool)
    mask[np.argsort(-flat, kind="stable")[:count]] = True
    return mask.reshape(np.shape(heat))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1 when both are empty)."""
    union = int(np.logical_or(a, b).sum())
    return float(np.logical_and(a, b).sum()) / union if union else 1.0


def _defined(value: float) -> float | None:
    return value if math.isfinite(value) else None


def agreement(logits_a: np.ndarray, logits_b: np.ndarray, heat_a: np.ndarray,
              heat_b: np.ndarray, fraction: float = 0.1) -> dict[str, Any]:
    """The metrics of one image (see the module docstring); None where undefined."""
    k = min(5, len(logits_a))
    top_a, top_b = top_k(logits_a, k), top_k(logits_b, k)
    try:
        similarity: float | None = _defined(ssim(heat_a, heat_b))
    except MetricError:  # a map smaller than the window
        similarity = None
    return {
        "top1_a": top_a[0], "top1_b": top_b[0],
        "top1_agree": int(top_a[0] == top_b[0]),
        "top5_overlap": len(set(top_a) & set(top_b)) / k,
        "spearman": _defined(spearman(heat_a, heat_b)),
        "ssim": similarity,
        "iou_top": iou(top_fraction(heat_a, fraction), top_fraction(heat_b, fraction)),
    }


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: the mean over the images where it is defined, its minimum and how many
    images left it undefined; rows are taken in image order."""
    ordered = sorted(rows, key=lambda r: str(r["image"]))
    summary: dict[str, Any] = {"images": len(ordered)}
    for name in METRICS:
        values = [float(r[name]) for r in ordered if r.get(name) is not None]
        summary[name] = {
            "mean": math.fsum(values) / len(values) if values else None,
            "min": min(values) if values else None,
            "undefined": len(ordered) - len(values),
        }
    return summary
