"""QLinearConcat (onnxruntime, com.microsoft; docs/deployed.md): Concat of the dequantized
inputs, quantized: relevance and gradient split back along the axis (4.9). Explainer vs the
reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.interpreter import Walk
from tests.reference.quantized import (
    Operand,
    alias,
    dq,
    forward_as,
    relevance_as,
    requantize,
    walk_ins,
)
from tests.reference.registry import Ins, Node, reference

Tensor = torch.Tensor


def parts(ins: Ins) -> list[int]:
    """The first input index of each ``(X, X_scale, X_zero_point)`` triple."""
    return list(range(2, len(ins) - 2, 3))


def qlinear_concat_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    ins = walk_ins(walk, node)
    ops = [Operand(alias(node, i), dq(ins, i, node.dtype), node.inputs[i],
                   constant=node.inputs[i] in walk.graph.const) for i in parts(ins)]
    y = dq([walk.value(node.outputs[0]), *ins[0:2]], 0, node.dtype)
    return relevance_as("Concat", walk, node, ops, y, R, ("axis",))


@reference("QLinearConcat", relevance=qlinear_concat_relevance)
def qlinear_concat(ins: Ins, node: Node) -> Tensor:
    """``Q(concat(DQ(X1), DQ(X2), ...))`` with ``(Y_scale, Y_zero_point)`` first."""
    y = forward_as("Concat", node, [dq(ins, i, node.dtype) for i in parts(ins)], ("axis",))
    return requantize(y, ins, 0)


def test_qlinear_concat_of_two_branches() -> None:
    net = Net((3, 8, 8), seed=11)
    net.conv(6, 3, pads=1)
    fork = net.relu()
    a = net.conv(4, 3, pads=1, x=fork)
    b = net.conv(4, 1, x=fork)
    net.op("Concat", [a, b], axis=1)
    net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    model = quantized(net.head(), "QOperator")
    assert "QLinearConcat" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=12))
