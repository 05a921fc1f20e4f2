"""ReduceSum over non-batch axes (jax2onnx writes ``x.mean(axis=(1, 2))`` of an NHWC map as
ReduceSum then Div): the z-rule on the positive part through the node's own sum (spec 4.6)
below the split, ``expand(g)`` in the head, and as the spatial collapse that defines the split
(spec 2); axes as an attribute (opset < 13) and as an input (13+). Explainer vs the torch
reference."""

from __future__ import annotations

import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pooling
from tests.rules.scaffold import SHAPE, C, building_at, ints


@reference("ReduceSum", relevance=pooling)
def reduce_sum(ins: Ins, node: Node) -> torch.Tensor:
    """The sum over ``axes`` (all when none; from the input at opset 13+)."""
    x = ins[0]
    assert x is not None
    axes = sorted(a % x.dim() for a in (ints_arg(ins, 1, node.at, "axes") or range(x.dim())))
    return x.sum(dim=axes, keepdim=bool(node.at.get("keepdims", 1)))


def total(net: Net, axes: list[int], keepdims: int = 1, as_input: bool = True) -> str:
    """ReduceSum over ``axes``, as an input (opset 13+) or an attribute (before 13)."""
    if as_input:
        return net.op("ReduceSum", [net.cur, ints(net, axes)], keepdims=keepdims)
    return net.op("ReduceSum", [net.cur], axes=axes, keepdims=keepdims)


def trunk(seed: int, nhwc: bool = False) -> Net:
    """Conv → Relu (``early``) → Conv → Relu (→ Transpose to NHWC)."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    if nhwc:
        net.op("Transpose", [net.cur], perm=[0, 2, 3, 1])
    return net


@pytest.mark.parametrize("layout,keepdims", [("NCHW", 1), ("NCHW", 0), ("NHWC", 0)])
def test_global_sum_then_div_is_the_split(layout: str, keepdims: int) -> None:
    """ReduceSum over H,W then Div by H·W (jax2onnx's mean): the default split is the
    ReduceSum's input (spec 2) and the head is differentiated through both. (An NHWC sum with
    keepdims, [N,1,1,C], is rank 4 with "H·W" = 1·C: not a spatial collapse as spec 2 reads
    shapes, for ReduceMean alike; jax2onnx writes keepdims=0.)"""
    nhwc = layout == "NHWC"
    net = trunk(seed=1, nhwc=nhwc)
    before = net.cur
    total(net, [1, 2] if nhwc else [2, 3], keepdims)
    net.op("Div", [net.cur, net.const(float(SHAPE[1] * SHAPE[2]))])
    if keepdims:
        net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    got = compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=2, scale=2.0))
    assert got.reference["split"] == before
    meta = {p.key: p.value for p in got.explainer.metadata_props}
    assert meta["aeq_onnx.split"] == before


def test_global_sum_below_split() -> None:
    """The split named after the [N,C,1,1] sum: rule 4.6 spreads each channel's relevance over
    its positive inputs in proportion to their values."""
    net = trunk(seed=3)
    pooled = total(net, [2, 3])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=4, scale=2.0),
                           layer=pooled)


@pytest.mark.parametrize("opset", [12, 13], ids=["axes-attribute", "axes-input"])
@pytest.mark.parametrize("where", ["below", "above"])
def test_reduce_sum_over_width(where: str, opset: int) -> None:
    """ReduceSum over W only ([N,C,H,1]) between two convs, at opset 12 (attribute, upgraded
    by the opset pass) and 13 (input)."""
    with building_at(opset):
        net = trunk(seed=5)
        total(net, [3], as_input=opset >= 13)
        net.conv(C, 3, pads=1)
        net.relu()
        model = net.head()
    layer = "early" if where == "above" else None
    compare_with_reference(model, random_input(SHAPE, seed=6, scale=2.0), layer=layer)


def test_reduce_sum_over_the_batch_refused() -> None:
    net = trunk(seed=7)
    total(net, [0, 2, 3])
    net.op("Reshape", [net.cur, ints(net, [1, C])])
    net.gemm(5, name="y")
    model = net.build(classes=5)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # a static batch of 1
    with pytest.raises(UnsupportedOpError, match="ReduceSum over the batch axis"):
        aeq_onnx.compile_explainer(model, layer="early")
