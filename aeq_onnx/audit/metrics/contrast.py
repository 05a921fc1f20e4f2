"""Class-discriminative metrics (issue 23): does the heatmap belong to *this* class?

- Distractor energy: the share of the positive relevance that lies on objects of *other*
  classes, ``sum(R+ on D) / sum(R+)`` with ``R+ = max(R, 0)`` and ``D`` the union of the
  other-class objects' masks less the target object's mask (where they overlap the pixel counts
  for the target). Lower is better; 0 when no positive relevance falls on a distractor; NaN
  (undefined, left out of means) when the map has no positive relevance at all.
- Class sensitivity: Spearman's rank correlation (signed, :func:`.sanity.spearman`) between the
  heatmaps of two classes on one image (the audit takes the target and the best-scoring other
  class, i.e. the top-1 and top-2 when the target is the top-1). 1: the map does not depend on
  the class; a low value is not a goal in itself (related classes on one object share
  evidence), it is information.
- Weight randomisation (Adebayo et al. 2018, cascading, with the classifier first as in issue
  23): :func:`weight_tensors` lists the weight tensors of the weighted layers from the output
  towards the input, :func:`randomise_weights` re-draws the first ``count`` of them from
  ``N(0, std^2)`` with ``std`` each tensor's own standard deviation. Biases are kept. Tensor
  ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so level ``k`` re-draws the
  same values as every level above it (cumulative) whichever levels are asked for.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics._common import as_heat
from aeq_onnx.audit.metrics.sanity import LAYER_OPS, _topological, spearman


def distractor_energy(heat: np.ndarray, distractors: np.ndarray,
                      target: np.ndarray | None = None) -> float:
    """``sum(max(R, 0) on distractors & ~target) / sum(max(R, 0))`` (see the module doc)."""
    heat = as_heat(heat)
    region = np.asarray(distractors, dtype=bool)
    if region.shape != heat.shape:
        raise MetricError(f"distractor mask {region.shape} differs from the heatmap's "
                          f"{heat.shape}")
    if target is not None:
        if np.shape(target) != heat.shape:
            raise MetricError(f"target mask {np.shape(target)} differs from the heatmap's "
                              f"{heat.shape}")
        region = region & ~np.asarray(target, dtype=bool)
    positive = np.maximum(heat, 0.0)
    total = math.fsum(positive.ravel())
    if total <= 0:
        return math.nan
    return math.fsum(positive[region]) / total


def class_sensitivity(heat: np.ndarray, other: np.ndarray) -> float:
    """Signed Spearman correlation of two classes' heatmaps (NaN when one is constant)."""
    return spearman(as_heat(heat), as_heat(other))


def weight_tensors(model: onnx.ModelProto) -> list[str]:
    """Initializer names of the weighted layers' weights (not biases), output first, once
    each: the first two inputs of a Conv/Gemm/MatMul... layer that are initializers."""
    inits = {t.name for t in model.graph.initializer}
    names: list[str] = []
    for node in _layers_output_first(model):
        for name in node.input[:2]:
            if name in inits and name not in names:
                names.append(name)
    return names


def _layers_output_first(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The weighted layer nodes in the order of :func:`.sanity.randomisable_layers`."""
    inits = {t.name for t in model.graph.initializer}
    return [node for node in reversed(_topological(model.graph))
            if node.op_type in LAYER_OPS and node.domain in ("", "ai.onnx")
            and any(x in inits for x in node.input)]


def randomise_weights(model: onnx.ModelProto, count: int, seed: int = 0,
                      names: list[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with the first ``count`` of :func:`weight_tensors` (or of ``names``)
    re-drawn from ``N(0, std^2)`` of their own values (a constant tensor: std 1 if it is all
    zeros, else its absolute mean). ``count`` 0 returns an unchanged copy."""
    order = weight_tensors(model) if names is None else names
    if count < 0:
        raise MetricError(f"the number of tensors to re-draw must be >= 0, got {count}")
    chosen = {name: i for i, name in enumerate(order[:count])}
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for tensor in copy.graph.initializer:
        if tensor.name not in chosen:
            continue
        array = numpy_helper.to_array(tensor)
        std = float(np.std(array))
        if not std > 0:
            std = float(np.mean(np.abs(array))) or 1.0
        rng = np.random.default_rng([seed, chosen[tensor.name]])
        value = rng.normal(0.0, std, array.shape).astype(array.dtype)
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    return copy
