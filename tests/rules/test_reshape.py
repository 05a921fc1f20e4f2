"""Flatten, Reshape, Squeeze, Unsqueeze (one rule: reshape back, spec 4.9), explainer vs the
torch reference: Flatten and Reshape in a VGG-style head (VJP; the split is the map before
them), below the split (relevance reshaped back), a rank-4 → rank-4 Reshape between convs, a
Reshape whose shape comes from a Constant node, and Unsqueeze → Relu → Squeeze between convs."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping, reshape_back
from tests.rules import scaffold


@reference("Flatten", relevance=reshape_back)
def flatten_forward(ins: Ins, node: Node) -> torch.Tensor:
    """``[N, ...] → [prod(dims before axis), prod(dims from axis)]``."""
    x = ins[0]
    assert x is not None
    axis = int(node.at.get("axis", 1)) % max(x.dim(), 1) if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@reference("Reshape", relevance=reshape_back)
def reshape_forward(ins: Ins, node: Node) -> torch.Tensor:
    """Reshape to the shape input (0 copies the input's dim unless ``allowzero``)."""
    x, shape_in = ins[0], ins[1]
    assert x is not None and shape_in is not None
    shape = [int(v) for v in shape_in.tolist()]
    if not node.at.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


@reference("Squeeze", relevance=mapping)
def squeeze(ins: Ins, node: Node) -> torch.Tensor:
    """Drop the size-1 ``axes`` (input from opset 13, attribute before)."""
    axes = ints_arg(ins, 1, node.at, "axes")
    if not axes:
        raise NotImplementedError("Squeeze without axes")
    x = ins[0]
    assert x is not None
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


@reference("Unsqueeze", relevance=mapping)
def unsqueeze(ins: Ins, node: Node) -> torch.Tensor:
    """Insert size-1 ``axes`` (positions in the output)."""
    axes = ints_arg(ins, 1, node.at, "axes") or []
    x = ins[0]
    assert x is not None
    rank = x.dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


SHAPE = (3, 12, 12)
CLASSES = 5
Flat = Callable[[Net], str]


def flatten(net: Net) -> str:
    return net.op("Flatten", [net.cur], axis=1)


def reshape(*dims: int) -> Flat:
    def add(net: Net) -> str:
        c, h, w = net.shape()
        shape = [c * h * w if d == -2 else d for d in dims]  # -2: the flat size, spelled out
        return net.op("Reshape", [net.cur, net.const(np.array(shape, np.int64), "shape")])

    return add


def reshape_constant_node(net: Net) -> str:
    """Reshape whose target shape comes from a Constant node (not an initializer)."""
    shape = net.fresh("shape_const")
    value = numpy_helper.from_array(np.array([0, -1], np.int64))
    net.nodes.append(helper.make_node("Constant", [], [shape], value=value))
    return net.op("Reshape", [net.cur, shape])


FLATS: dict[str, Flat] = {
    "flatten": flatten,
    "reshape-0-m1": reshape(0, -1),
    "reshape-m1-size": reshape(-1, -2),
    "reshape-constant-node": reshape_constant_node,
}


def vgg_head_model(flat: Flat, seed: int, pool: bool = True) -> Net:
    """input → Conv3×3 → Relu → Conv3×3 s2 → Relu (``maps``) [→ MaxPool 2] → flat → Gemm →
    Relu (``hidden``) → Gemm = ``y``."""
    net = Net(SHAPE, seed=seed)
    net.conv(6, 3, pads=1)
    net.relu()
    net.conv(8, 3, stride=2, pads=1)
    net.relu(name="maps")
    if pool:
        net.op("MaxPool", [net.cur], kernel_shape=[2, 2], strides=[2, 2])
    flat(net)
    net.gemm(16)
    net.relu(name="hidden")
    net.gemm(CLASSES, name="y")
    return net


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "nopool"])
@pytest.mark.parametrize("name", list(FLATS))
def test_flatten_in_head(name: str, pool: bool) -> None:
    """Default split: the map before the flatten (stepping back over the MaxPool); flatten,
    pool and both Gemms are differentiated."""
    net = vgg_head_model(FLATS[name], seed=1, pool=pool)
    got = compare_with_reference(net.build(classes=CLASSES), random_input(SHAPE, seed=2))
    assert got.reference["split"] == "maps"


@pytest.mark.parametrize("pool", [True, False], ids=["pool", "nopool"])
@pytest.mark.parametrize("name", list(FLATS))
def test_flatten_below_split(name: str, pool: bool) -> None:
    """Split at the dense hidden layer: relevance goes through Gemm (4.4) and is reshaped back
    to the map."""
    net = vgg_head_model(FLATS[name], seed=3, pool=pool)
    compare_with_reference(net.build(classes=CLASSES), random_input(SHAPE, seed=4),
                           layer="hidden")


@pytest.mark.parametrize("where", ["below", "above"])
def test_rank4_reshape_between_convs(where: str) -> None:
    """[N, 8, 6, 6] → [N, 4, 12, 6] between two convs."""
    net = Net(SHAPE, seed=5)
    net.conv(6, 3, pads=1)
    net.relu(name="early")
    net.conv(8, 3, stride=2, pads=1)
    net.relu()
    net.op("Reshape", [net.cur, net.const(np.array([0, 4, 12, 6], np.int64), "shape")])
    net.conv(6, 3, pads=1)
    net.relu()
    layer = "early" if where == "above" else None
    compare_with_reference(net.head(), random_input(SHAPE, seed=6), layer=layer)


def test_flatten_of_one_by_one_map_below_split() -> None:
    """GAP → Flatten → Gemm → Relu (split) → Gemm: the flatten of a 1×1 map carries relevance."""
    net = Net(SHAPE, seed=7)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Reshape", [net.cur, net.const(np.array([-1, 6], np.int64), "shape")])
    net.gemm(8)
    net.relu(name="hidden")
    net.gemm(CLASSES, name="y")
    compare_with_reference(net.build(classes=CLASSES), random_input(SHAPE, seed=8),
                           layer="hidden")


def unsqueeze_squeeze(net: Net) -> str:
    net.op("Unsqueeze", [net.cur, scaffold.ints(net, [2])])
    net.op("Relu", [net.cur])
    return net.op("Squeeze", [net.cur, scaffold.ints(net, [2])])


def test_unsqueeze_squeeze_below_split() -> None:
    """Rule 4.9: relevance reshaped back through Squeeze and Unsqueeze."""
    scaffold.check_below(unsqueeze_squeeze)


def test_unsqueeze_squeeze_above_split() -> None:
    """Squeeze and Unsqueeze in the head: their VJPs."""
    scaffold.check_above(unsqueeze_squeeze)
