"""Every metric one case allows, from its heatmap: localisation needs a ground-truth mask,
insertion/deletion only the model (metric definitions in :mod:`aeq_onnx.audit.metrics`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aeq_onnx.audit.metrics import (
    distractor_energy,
    energy_pointing_game,
    insertion_deletion,
    iou,
    outside_inside_ratio,
    pointing_game,
)

LOCALISATION = ("pointing", "energy", "outside_inside", "iou", "distractor_energy")


@dataclass(frozen=True)
class CurveSettings:
    """Insertion/deletion: steps, baselines ("blur", "zero") and the predictor's batch size."""

    steps: int = 20
    baselines: tuple[str, ...] = ("blur",)
    batch_size: int = 32

    def names(self) -> list[str]:
        """The curve metrics these settings produce, e.g. ``insertion_blur``."""
        return [f"{mode}_{b}" for b in self.baselines for mode in ("insertion", "deletion")]


def localisation(heat: np.ndarray, mask: np.ndarray,
                 distractors: np.ndarray | None = None) -> dict[str, float]:
    """Pointing game (15 px tolerance), energy pointing game, outside-inside ratio, IoU, and
    with other classes' objects in view the distractor energy."""
    out = {"pointing": float(pointing_game(heat, mask)),
           "energy": energy_pointing_game(heat, mask),
           "outside_inside": outside_inside_ratio(heat, mask),
           "iou": iou(heat, mask)}
    if distractors is not None:
        out["distractor_energy"] = distractor_energy(heat, distractors, mask)
    return out


def curves(predict: Callable[[np.ndarray], np.ndarray], image_chw: np.ndarray,
           heat: np.ndarray, target: int, settings: CurveSettings,
           ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Insertion and deletion AUCs (most relevant first) and their curves, per baseline."""
    aucs: dict[str, float] = {}
    shapes: dict[str, list[float]] = {}
    for baseline in settings.baselines:
        for mode in ("insertion", "deletion"):
            curve, auc = insertion_deletion(predict, image_chw, heat, target,
                                            steps=settings.steps, baseline=baseline,
                                            mode=mode,
                                            batch_size=settings.batch_size)
            aucs[f"{mode}_{baseline}"] = auc
            shapes[f"{mode}_{baseline}"] = [round(float(v), 6) for v in curve]
    return aucs, shapes
