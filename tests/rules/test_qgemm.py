"""QGemm (onnxruntime, com.microsoft; docs/deployed.md): Gemm's gradient and relevance (rule
4.4) over ``DQ(A)``, ``DQ(B)`` (per output channel) and ``C · a_scale · b_scale``, quantized
output or float. Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, random_input
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

Tensor = torch.Tensor
KEEP = ("alpha", "transA", "transB")


def operands(ins: Ins, node: Node) -> list[Tensor | None]:
    """``DQ(A)``, ``DQ(B)`` (per output channel: axis 0 of B', the Gemm's transB) and C."""
    axis = 0 if int(node.at.get("transB", 0)) else -1
    return [dq(ins, 0, node.dtype), dq(ins, 3, node.dtype, axis=axis),
            bias_of(ins, 6, (1, 4), node.dtype)]


def quantized_output(ins: Ins) -> bool:
    return len(ins) > 7 and ins[7] is not None


def qgemm_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    """Gemm's relevance (rule 4.4) over the dequantized operands."""
    ins = walk_ins(walk, node)
    a, b, c = operands(ins, node)
    assert a is not None and b is not None
    ops = [Operand(alias(node, 0), a, node.inputs[0]),
           Operand(alias(node, 3), b, node.inputs[3], constant=True)]
    if c is not None:
        ops.append(Operand(alias(node, 6), c, node.inputs[6], constant=True))
    y = walk.value(node.outputs[0])
    if quantized_output(ins):
        y = dq([y, *ins[7:9]], 0, node.dtype)
    return relevance_as("Gemm", walk, node, ops, y, R, KEEP)


@reference("QGemm", relevance=qgemm_relevance, traits=["linear", "dense"])
def qgemm(ins: Ins, node: Node) -> Tensor:
    """``alpha · DQ(A)' @ DQ(B)' + C · a_scale · b_scale``, quantized with ``(y_scale,
    y_zero_point)`` when given."""
    y = forward_as("Gemm", node, operands(ins, node), KEEP)
    return requantize(y, ins, 7) if quantized_output(ins) else y


@pytest.mark.parametrize("per_channel", [False, True])
def test_qgemm_hidden_layer_below_the_split(per_channel: bool) -> None:
    """An MLP (Gemm, Relu, Gemm): the split is the last Gemm's input, so the hidden QGemm's
    relevance rule (4.4) runs below it and the last one's VJP above it."""
    net = Net((12,), seed=12)
    net.gemm(10)
    net.relu()
    net.gemm(5)
    model = quantized(net.build(classes=5), "QOperator", per_channel=per_channel)
    assert "QGemm" in ops_of(model)
    compare_deployed(model, random_input((12,), batch=2, seed=13))
