"""InstanceNormalization with constant scale and bias: pass-through below the split (spec 4.5);
no VJP, so in the head it is refused. Explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import between_model, building_at, check_below


@reference("InstanceNormalization", relevance=pass_through)
def instance_normalization(ins: Ins, node: Node) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps) · scale + bias``, mean and variance per sample and
    channel over the spatial axes."""
    x, scale, bias = ins[:3]
    assert x is not None and scale is not None and bias is not None
    dims = tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + float(node.at.get("epsilon", 1e-5)))
    return y * scale.reshape(shape) + bias.reshape(shape)


def instance_norm(net: Net) -> str:
    c = net.shape()[0]
    scale = net.const(net.rng.uniform(0.5, 1.5, c), "in_scale")
    bias = net.const(0.1 * net.rng.standard_normal(c), "in_bias")
    return net.op("InstanceNormalization", [net.cur, scale, bias], epsilon=1e-5)


def test_instance_norm_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(instance_norm, build_at=20, opset=17)


def test_instance_norm_above_split_is_refused() -> None:
    """InstanceNormalization has no VJP: in the head it is listed as unsupported."""
    with building_at(20):
        model = between_model(instance_norm, seed=7).head()
    with pytest.raises(UnsupportedOpError, match="InstanceNormalization"):
        aeq_onnx.compile_explainer(model, layer="early")
