"""Softmax and LogSoftmax: not rules. At the model output the compiler explains their input,
the logits (spec 3); anywhere else no rule covers them and the compiler refuses them. Only
their trait is declared here."""

from __future__ import annotations

from aeq_onnx.rules.base import OpTraits
from aeq_onnx.rules.registry import declare


@declare("Softmax", "LogSoftmax")
class SoftmaxAtOutput(OpTraits):
    """not a rule: at the model output the compiler explains its input, the logits (spec 3)."""

    traits = frozenset({"softmax"})
