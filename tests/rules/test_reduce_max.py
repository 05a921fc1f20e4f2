"""ReduceMax over spatial axes: the z-rule on the positive part through the node's own
reduction (spec 4.6), relevance to the first arg-max; the gradient to the first arg-max in the
head (ties from Relu zeros and Clip). Explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pooling
from tests.rules.scaffold import SHAPE, C


@reference("ReduceMax", relevance=pooling)
def reduce_max_forward(ins: Ins, node: Node) -> torch.Tensor:
    """ReduceMax as a gather of the first arg-max (row-major over the reduced axes), so that
    autograd sends the gradient there only (torch's amax would split ties evenly)."""
    x = ins[0]
    assert x is not None
    axes = sorted(a % x.dim() for a in (ints_arg(ins, 1, node.at, "axes") or range(x.dim())))
    keep = [a for a in range(x.dim()) if a not in axes]
    flat = x.permute(*keep, *axes).reshape(*[x.shape[a] for a in keep], -1)
    top = flat.gather(-1, flat.argmax(dim=-1, keepdim=True))
    if node.at.get("keepdims", 1):
        return top.reshape([1 if a in axes else x.shape[a] for a in range(x.dim())])
    return top.reshape([x.shape[a] for a in keep])


def reduce_max(net: Net, axes: list[int], keepdims: int = 1) -> str:
    return net.op("ReduceMax", [net.cur], axes=axes, keepdims=keepdims)


def trunk(seed: int, clip: bool = False) -> Net:
    """Conv → Relu (``early``) → Conv → Relu (or Clip at 0.3: many ties at the top)."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    if clip:
        net.op("Clip", [net.cur, net.const(np.float32(0.0)), net.const(np.float32(0.3))])
    else:
        net.relu()
    return net


@pytest.mark.parametrize("clip", [False, True], ids=["relu", "clip-ties"])
@pytest.mark.parametrize("keepdims", [1, 0], ids=["keepdims", "no-keepdims"])
def test_global_reduce_max_in_head(keepdims: int, clip: bool) -> None:
    """ReduceMax over H,W as the global pool: default split at its input, VJP to the first
    arg-max (ties from Relu zeros / Clip)."""
    net = trunk(seed=1, clip=clip)
    reduce_max(net, [2, 3], keepdims)
    if keepdims:
        net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=2, scale=2.0))


@pytest.mark.parametrize("clip", [False, True], ids=["relu", "clip-ties"])
def test_global_reduce_max_below_split(clip: bool) -> None:
    """The split named at the [N,C,1,1] output of ReduceMax: the z-rule on x+ sends each
    channel's relevance to its first arg-max."""
    net = trunk(seed=3, clip=clip)
    pooled = reduce_max(net, [2, 3])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    compare_with_reference(net.build(classes=5), random_input(SHAPE, seed=4, scale=2.0),
                           layer=pooled)


@pytest.mark.parametrize("where", ["below", "above"])
def test_reduce_max_over_width(where: str) -> None:
    """ReduceMax over W only ([N,C,H,1]) between two convs."""
    net = trunk(seed=5)
    reduce_max(net, [3])
    net.conv(C, 3, pads=1)
    net.relu()
    model = net.head()
    layer = "early" if where == "above" else None
    compare_with_reference(model, random_input(SHAPE, seed=6, scale=2.0), layer=layer)
