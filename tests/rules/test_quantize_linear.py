"""QuantizeLinear in a QDQ graph (docs/deployed.md): the explainer's forward is the deployed
graph (logits bit for bit); relevance passes through (spec 4.5), the VJP is straight-through
(``g``; ``g·1[q > qmin]`` for a range from zero, the ReLU onnxruntime's quantizer removed).
Explainer vs the reference on the float surrogate (weights dequantized, activations as the
deployed model computes them)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, ops_of, quantized
from tests.reference.quantized import quantize
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through


@reference("QuantizeLinear", relevance=pass_through)
def quantize_linear(ins: Ins, node: Node) -> torch.Tensor:
    """``saturate(round(x / scale) + zero_point)`` (an integer-valued float tensor)."""
    x, scale = ins[0], ins[1]
    assert x is not None and scale is not None
    zero = ins[2] if len(ins) > 2 else None
    return quantize(x, scale, zero, int(node.at.get("axis", 1)))


def conv_net(seed: int = 0) -> Net:
    """conv-relu-conv-relu, then the head (GlobalAveragePool, Gemm)."""
    net = Net((3, 10, 10), seed=seed)
    net.conv(6, 3, pads=1)
    net.relu()
    net.conv(6, 3, pads=1)
    net.relu()
    return net


CONFIGS = {
    "per-tensor-int8": dict(per_channel=False, activation="QInt8", weight="QInt8"),
    "per-channel-int8": dict(per_channel=True, activation="QInt8", weight="QInt8"),
    "per-tensor-uint8": dict(per_channel=False, activation="QUInt8", weight="QUInt8"),
    "per-channel-uint8-act": dict(per_channel=True, activation="QUInt8", weight="QInt8"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_qdq_conv_net(name: str) -> None:
    """onnxruntime's QDQ quantization of a conv net: logits equal the deployed model's
    onnxruntime logits exactly; relevance and R0 match the reference (1e-4 of max)."""
    model = quantized(conv_net().head(), "QDQ", **CONFIGS[name])  # type: ignore[arg-type]
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops_of(model)
    compare_deployed(model, random_input((3, 10, 10), batch=2))
