"""QLinearConv (QOperator format, docs/deployed.md): the deployed op runs the forward (logits
bit for bit); gradient and relevance are Conv's over the dequantized view (``DQ(x)``, ``DQ(w)``
per output channel, bias ``b · x_scale · w_scale``), straight-through at the output's
quantization. Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.interpreter import Walk
from tests.reference.quantized import (
    Operand,
    alias,
    bias_of,
    dq,
    forward_as,
    relevance_as,
    requantize,
    walk_ins,
)
from tests.reference.registry import Ins, Node, reference
from tests.rules.test_quantize_linear import CONFIGS, conv_net


def operands(ins: Ins, node: Node) -> list[Tensor | None]:
    """``DQ(x)``, ``DQ(w)`` (per output channel) and the float bias."""
    return [dq(ins, 0, node.dtype), dq(ins, 3, node.dtype, axis=0),
            bias_of(ins, 8, (1, 4), node.dtype)]


def qlinear_conv_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    """Conv's relevance (spec 4.1-4.3) over the dequantized operands."""
    ins = walk_ins(walk, node)
    x, w, b = operands(ins, node)
    assert x is not None and w is not None
    ops = [Operand(alias(node, 0), x, node.inputs[0]),
           Operand(alias(node, 3), w, node.inputs[3], constant=True)]
    if b is not None:
        ops.append(Operand(alias(node, 8), b, node.inputs[8], constant=True))
    y = dq([walk.value(node.outputs[0]), *ins[6:8]], 0, node.dtype)
    return relevance_as("Conv", walk, node, ops, y, R)


@reference("QLinearConv", relevance=qlinear_conv_relevance, traits=["linear"])
def qlinear_conv(ins: Ins, node: Node) -> Tensor:
    """``Q(conv(DQ(x), DQ(w)) + b · x_scale · w_scale)``."""
    return requantize(forward_as("Conv", node, operands(ins, node)), ins, 6)


Tensor = torch.Tensor


@pytest.mark.parametrize("name", list(CONFIGS))
def test_qoperator_conv_net(name: str) -> None:
    """onnxruntime's QOperator quantization of a conv net (QLinearConv, QGemm,
    QLinearGlobalAveragePool): logits exactly the deployed model's; relevance vs reference."""
    model = quantized(conv_net().head(), "QOperator", **CONFIGS[name])  # type: ignore[arg-type]
    assert "QLinearConv" in ops_of(model)
    compare_deployed(model, random_input((3, 10, 10), batch=2))
