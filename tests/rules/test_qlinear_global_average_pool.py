"""QLinearGlobalAveragePool (onnxruntime, com.microsoft; docs/deployed.md): GlobalAveragePool's
VJP and z-rule (4.6) over ``DQ(X)``, straight-through at the output's quantization.
Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import pytest
import torch
from onnx import helper

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import random_input
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
from tests.rules.test_quantize_linear import conv_net

Tensor = torch.Tensor


def pooled_relevance(op: str):  # type: ignore[no-untyped-def]
    """The relevance of the float pool ``op`` over ``DQ(X)``."""

    def relevance(walk: Walk, node: Node, R: Tensor) -> list[tuple[str, Tensor]]:
        ins = walk_ins(walk, node)
        ops = [Operand(alias(node, 0), dq(ins, 0, node.dtype), node.inputs[0])]
        y = dq([walk.value(node.outputs[0]), *ins[3:5]], 0, node.dtype)
        return relevance_as(op, walk, node, ops, y, R, KEEP[op])

    return relevance


KEEP = {"GlobalAveragePool": (), "AveragePool": ("auto_pad", "ceil_mode", "count_include_pad",
                                                 "dilations", "kernel_shape", "pads",
                                                 "strides")}


@reference("QLinearGlobalAveragePool", relevance=pooled_relevance("GlobalAveragePool"))
def qlinear_global_average_pool(ins: Ins, node: Node) -> Tensor:
    """``Q(mean_hw(DQ(X)))`` (NCHW)."""
    if int(node.at.get("channels_last", 0)):
        raise NotImplementedError("channels_last")
    y = forward_as("GlobalAveragePool", node, [dq(ins, 0, node.dtype)], ())
    return requantize(y, ins, 3)


def test_qlinear_global_average_pool_split_behind_it() -> None:
    """The split is QLinearGlobalAveragePool's input; the relevance of its consumer's head
    reaches it through the pool's VJP (uint8 activations)."""
    model = quantized(conv_net(seed=2).head(), "QOperator", activation="QUInt8")
    assert "QLinearGlobalAveragePool" in ops_of(model)
    compare_deployed(model, random_input((3, 10, 10), batch=2, seed=3))


def test_channels_last_refused() -> None:
    """NHWC QLinearGlobalAveragePool: refused with the typed error naming the reason."""
    model = quantized(conv_net(seed=2).head(), "QOperator")
    for node in model.graph.node:
        if node.op_type == "QLinearGlobalAveragePool":
            kept = [a for a in node.attribute if a.name != "channels_last"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("channels_last", 1)])
    with pytest.raises(UnsupportedOpError, match="channels_last"):
        aeq_onnx.compile_explainer(model)
