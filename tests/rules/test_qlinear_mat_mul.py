"""QLinearMatMul (QOperator format, docs/deployed.md): MatMul's rules (4.4) over ``DQ(a)`` and
the dequantized constant ``b`` (per column), straight-through at the output's quantization.
Explainer vs the reference on the float surrogate."""

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


def qlinear_mat_mul_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    ins = walk_ins(walk, node)
    ops = [Operand(alias(node, 0), dq(ins, 0, node.dtype), node.inputs[0]),
           Operand(alias(node, 3), dq(ins, 3, node.dtype, axis=-1), node.inputs[3],
                   constant=True)]
    y = dq([walk.value(node.outputs[0]), *ins[6:8]], 0, node.dtype)
    return relevance_as("MatMul", walk, node, ops, y, R, ())


@reference("QLinearMatMul", relevance=qlinear_mat_mul_relevance, traits=["linear", "dense"])
def qlinear_mat_mul(ins: Ins, node: Node) -> Tensor:
    """``Q(DQ(a) @ DQ(b))``."""
    y = forward_as("MatMul", node, [dq(ins, 0, node.dtype), dq(ins, 3, node.dtype, axis=-1)],
                   ())
    return requantize(y, ins, 6)


def test_qlinear_mat_mul_mlp() -> None:
    """MatMul layers (no bias): the hidden one below the split, the last in the head."""
    net = Net((12,), seed=15)
    net.matmul(10, bias=False)
    net.relu()
    net.matmul(5, bias=False)
    model = quantized(net.build(classes=5), "QOperator", activation="QUInt8",
                      weight="QInt8")
    assert "QLinearMatMul" in ops_of(model)
    compare_deployed(model, random_input((12,), batch=2, seed=16))
