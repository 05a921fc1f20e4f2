"""Per-sample metrics of issue 23 on 2-D heatmaps (channel sums of the relevance).

- distractor energy: ``Σ max(H,0) on the distractors' pixels / Σ max(H,0)`` (0 without positive
  relevance), the share of the positive relevance that lands on objects of other classes;
- energy pointing (Score-CAM): the same share on the target's pixels
  (:func:`aeq_onnx.metrics.energy_pointing_game`);
- class sensitivity: signed Spearman between the maps of the top-2 classes (lower = the map
  changes more with the class; information only, related classes share evidence);
- randomisation: signed and |H| Spearman between the map of the original model and of a model
  whose top layers were re-drawn (Adebayo et al. 2018), target kept;
- insertion / deletion AUC (Petsiuk et al. 2018), blurred baseline
  (:func:`aeq_onnx.metrics.insertion_deletion`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from aeq_onnx.audit.metrics import energy_pointing_game, insertion_deletion, pointing_game, spearman

Predictor = Callable[[np.ndarray], np.ndarray]


def distractor_energy(heat: np.ndarray, distractors: np.ndarray) -> float:
    """``Σ max(H,0)[distractors] / Σ max(H,0)``; 0 when ``H`` has no positive value."""
    positive = np.maximum(np.asarray(heat, np.float64), 0.0)
    total = float(positive.sum())
    return float(positive[distractors].sum()) / total if total > 0 else 0.0


def localisation(heat: np.ndarray, mask: np.ndarray, distractors: np.ndarray) -> dict[str, float]:
    """Energy pointing, pointing game (15 px) and distractor energy of one scene."""
    return {"energy": energy_pointing_game(heat, mask),
            "pointing": float(pointing_game(heat, mask)),
            "distractor": distractor_energy(heat, distractors)}


def curves(predict: Predictor, image: np.ndarray, heat: np.ndarray, target: int,
           steps: int) -> dict[str, float]:
    """Insertion and deletion AUC (blurred baseline, ``steps`` steps) of one image (C, H, W)."""
    return {mode: insertion_deletion(predict, image, heat, target, steps=steps,
                                     baseline="blur", mode=mode)[1]
            for mode in ("insertion", "deletion")}


def rank_corr(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Signed and |H| Spearman of two heatmaps (``nan`` when a map is constant)."""
    return {"signed": spearman(a, b), "abs": spearman(a, b, absolute=True)}


def summary(values: list[float]) -> tuple[float, int]:
    """Mean over the finite values and the number of non-finite ones (constant maps)."""
    finite = [v for v in values if math.isfinite(v)]
    return (float(np.mean(finite)) if finite else math.nan), len(values) - len(finite)
