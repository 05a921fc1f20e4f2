"""Evaluation metrics for heatmaps: localisation (pointing game, energy pointing game,
outside-inside ratio, IoU), class-discriminativeness (distractor energy, class sensitivity,
weight randomisation), faithfulness (insertion / deletion) and sanity checks (cascading
randomisation, SSIM, Spearman). Pure numpy + onnx / onnxruntime."""

from aeq_onnx.audit.metrics._common import Box, GroundTruth, as_heat, as_mask, boxes_to_mask
from aeq_onnx.audit.metrics.contrast import (
    class_sensitivity,
    distractor_energy,
    randomise_weights,
    weight_tensors,
)
from aeq_onnx.audit.metrics.faithfulness import (
    Predictor,
    gaussian_blur,
    gaussian_kernel,
    insertion_deletion,
    softmax,
    softmax_predictor,
    trapezoid_auc,
)
from aeq_onnx.audit.metrics.localisation import (
    binarise,
    energy_pointing_game,
    iou,
    miou,
    outside_inside_ratio,
    pointing_accuracy,
    pointing_game,
)
from aeq_onnx.audit.metrics.sanity import (
    LAYER_OPS,
    average_ranks,
    cascading_randomisation,
    randomisable_layers,
    spearman,
    ssim,
)

__all__ = [
    "LAYER_OPS",
    "Box",
    "GroundTruth",
    "Predictor",
    "as_heat",
    "as_mask",
    "average_ranks",
    "binarise",
    "boxes_to_mask",
    "cascading_randomisation",
    "class_sensitivity",
    "distractor_energy",
    "energy_pointing_game",
    "gaussian_blur",
    "gaussian_kernel",
    "insertion_deletion",
    "iou",
    "miou",
    "outside_inside_ratio",
    "pointing_accuracy",
    "pointing_game",
    "randomisable_layers",
    "randomise_weights",
    "softmax",
    "softmax_predictor",
    "spearman",
    "ssim",
    "trapezoid_auc",
    "weight_tensors",
]
