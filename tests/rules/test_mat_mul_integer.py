"""MatMulInteger (docs/deployed.md): MatMul's rules (4.4) in integer units, ``(a - a_zp) @
(b - b_zp)`` with a constant b; the graph scales the int32 output by the run-time
``a_scale · b_scale`` (no data). Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized_dynamic
from tests.reference.interpreter import Walk
from tests.reference.quantized import Operand, alias, forward_as, relevance_as, units, walk_ins
from tests.reference.registry import Ins, Node, reference
from tests.rules.test_dynamic_quantize_linear import dense_net

Tensor = torch.Tensor


def operands(ins: Ins, node: Node) -> list[Tensor | None]:
    a, b = ins[0], ins[1]
    assert a is not None and b is not None
    return [units(a, ins[2] if len(ins) > 2 else None, node.dtype),
            units(b, ins[3] if len(ins) > 3 else None, node.dtype, axis=-1)]


def mat_mul_integer_relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
    a, b = operands(walk_ins(walk, node), node)
    assert a is not None and b is not None
    ops = [Operand(alias(node, 0), a, node.inputs[0]),
           Operand(alias(node, 1), b, node.inputs[1], constant=True)]
    return relevance_as("MatMul", walk, node, ops, walk.value(node.outputs[0]), R, ())


@reference("MatMulInteger", relevance=mat_mul_integer_relevance, traits=["linear", "dense"])
def mat_mul_integer(ins: Ins, node: Node) -> Tensor:
    """``(a - a_zp) @ (b - b_zp)`` (int32 values, held as floats)."""
    return forward_as("MatMul", node, operands(ins, node), ())


def test_mat_mul_integer_mlp() -> None:
    """MatMulInteger layers fed by DynamicQuantizeLinear: the hidden one below the split."""
    model = quantized_dynamic(dense_net(17).build(classes=5))
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops_of(model)
    compare_deployed(model, random_input((12,), batch=2, seed=18))
