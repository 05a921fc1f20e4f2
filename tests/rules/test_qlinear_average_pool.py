"""QLinearAveragePool (onnxruntime, com.microsoft; docs/deployed.md): AveragePool's VJP and
z-rule (4.6) over ``DQ(X)``, a window pool (the default split steps back over it).
Explainer vs the reference on the float surrogate."""

from __future__ import annotations

import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.quantized import dq, forward_as, requantize
from tests.reference.registry import Ins, Node, reference
from tests.rules.test_qlinear_global_average_pool import KEEP, pooled_relevance

Tensor = torch.Tensor


@reference("QLinearAveragePool", relevance=pooled_relevance("AveragePool"),
           traits=["window_pool"])
def qlinear_average_pool(ins: Ins, node: Node) -> Tensor:
    """``Q(avgpool(DQ(X)))`` (NCHW)."""
    if int(node.at.get("channels_last", 0)):
        raise NotImplementedError("channels_last")
    y = forward_as("AveragePool", node, [dq(ins, 0, node.dtype)], KEEP["AveragePool"])
    return requantize(y, ins, 3)


def test_qlinear_average_pool_between_convs() -> None:
    net = Net((3, 8, 8), seed=13)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("AveragePool", [net.cur], kernel_shape=[2, 2], strides=[2, 2])
    net.conv(6, 3, pads=1)
    net.relu()
    model = quantized(net.head(), "QOperator")
    assert "QLinearAveragePool" in ops_of(model)
    compare_deployed(model, random_input((3, 8, 8), batch=2, seed=14))
