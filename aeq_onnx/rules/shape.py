"""Shape and Size read only the dims of their input: they carry no data, so neither gradient
nor relevance flows through them (the batch-size arithmetic of exporters: a class token
expanded to the batch, reshapes to ``[T, N·H, d]``)."""

from __future__ import annotations

from aeq_onnx.rules.base import OpRule
from aeq_onnx.rules.registry import register


@register("Shape", "Size")
class ShapeOfRule(OpRule):
    """No data input: the node never lies on a gradient or relevance chain."""

    data_inputs = ()
    vjp_name = "none (no data input)"
    relevance_name = "none (no data input)"
