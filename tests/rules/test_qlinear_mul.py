"""QLinearMul (onnxruntime, com.microsoft; docs/deployed.md): Mul's rules over the dequantized
operands: gating (4.8, SiLU written ``x · QLinearSigmoid(x)``) sends all relevance to the
signal. Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.registry import Ins, Node, reference
from tests.rules.test_qlinear_add import join_forward, join_relevance

Tensor = torch.Tensor


@reference("QLinearMul", relevance=join_relevance("Mul"))
def qlinear_mul(ins: Ins, node: Node) -> Tensor:
    """``Q(DQ(A) · DQ(B))``."""
    return join_forward("Mul")(ins, node)


def silu_net(seed: int) -> Net:
    """conv, SiLU as ``x · sigmoid(x)``, conv, relu."""
    net = Net((3, 8, 8), seed=seed)
    x = net.conv(6, 3, pads=1)
    gate = net.op("Sigmoid", [x])
    net.op("Mul", [x, gate])
    net.conv(6, 3, pads=1)
    net.relu()
    return net


def test_qlinear_mul_gating() -> None:
    """QLinearSigmoid gates QLinearMul below the split: the signal gets all relevance."""
    model = quantized(silu_net(5).head(), "QOperator")
    assert {"QLinearMul", "QLinearSigmoid"} <= ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=6))


def test_qdq_gating() -> None:
    """The same in QDQ form: the gate is seen through its QuantizeLinear/DequantizeLinear."""
    model = quantized(silu_net(5).head(), "QDQ", per_channel=True)
    assert "Sigmoid" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=6))
