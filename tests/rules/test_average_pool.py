"""AveragePool (count_include_pad 0/1, pads, asymmetric pads, ceil_mode): the z-rule on the
positive part through the node's own pooling (spec 4.6) below the split, its VJP in the head,
stepped over by the default split. Explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import compare_with_reference, random_input
from tests.reference.formulas import sdiv
from tests.reference.onnx_args import window
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pooling
from tests.rules.scaffold import (
    POOL_CIN,
    POOL_SIZE,
    check_pool_steps_back,
    pool_case,
    pooled_model,
)


@reference("AveragePool", relevance=pooling, traits=["window_pool"])
def average_pool(ins: Ins, node: Node) -> torch.Tensor:
    """Windowed sum / number of counted cells (the pads count with ``count_include_pad``, the
    ceil-mode extra never does); the sums are a depthwise conv with ones."""
    x = ins[0]
    assert x is not None
    w = window("AveragePool", node.at, x.shape)
    top, left, bottom, right = w.pads
    c = x.shape[1]
    ones_w = torch.ones((c, 1, *w.kernel), dtype=x.dtype)
    one = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if node.at.get("count_include_pad", 0):
        one = F.pad(one, (left, right, top, bottom), value=1.0)
        one = F.pad(one, (0, w.extra[1], 0, w.extra[0]))
    else:
        one = F.pad(one, w.torch_pad)
    count = F.conv2d(one, ones_w[:1], stride=w.strides, dilation=w.dilations)
    total = F.conv2d(F.pad(x, w.torch_pad), ones_w, stride=w.strides, dilation=w.dilations,
                     groups=c)
    return sdiv(total, count)


ASYM = (0, 1, 1, 0)
POOLS = [
    pool_case("avg-k2-s2", "AveragePool", 2, 2),
    pool_case("avg-k3-s1-p1-excl", "AveragePool", 3, 1, 1, count_include_pad=0),
    pool_case("avg-k3-s1-p1-incl", "AveragePool", 3, 1, 1, count_include_pad=1),
    pool_case("avg-k3-s2-p1-excl", "AveragePool", 3, 2, 1, count_include_pad=0),
    pool_case("avg-k3-s2-p1-incl", "AveragePool", 3, 2, 1, count_include_pad=1),
    pool_case("avg-k2-s2-ceil", "AveragePool", 2, 2, ceil_mode=1),
    pool_case("avg-k3-s2-ceil-excl", "AveragePool", 3, 2, ceil_mode=1, count_include_pad=0),
    pool_case("avg-k3-s2-ceil-incl", "AveragePool", 3, 2, ceil_mode=1, count_include_pad=1),
    pool_case("avg-k3-s2-p1-ceil-incl", "AveragePool", 3, 2, 1, ceil_mode=1,
              count_include_pad=1),
    pool_case("avg-k2-s2-pasym-incl", "AveragePool", 2, 2, ASYM, count_include_pad=1),
    pool_case("avg-k2-s2-pasym-excl", "AveragePool", 2, 2, ASYM, count_include_pad=0),
]
SHAPE = (POOL_CIN, POOL_SIZE, POOL_SIZE)


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_average_pool_below_split(op: str, attrs: dict) -> None:
    """Rule 4.6: relevance through the pool."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input(SHAPE))


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_average_pool_before_relu(op: str, attrs: dict) -> None:
    """Rule 4.6 on a pool of the raw conv output: windows with negative values."""
    model = pooled_model(op, attrs, before_relu=True, seed=1).head()
    compare_with_reference(model, random_input(SHAPE, seed=2), ratio=1.5)


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_average_pool_above_split(op: str, attrs: dict) -> None:
    """The pool lies in the head: its VJP (``split_gradient``, R0)."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input(SHAPE), layer="early")


@pytest.mark.parametrize(("op", "attrs"), [POOLS[0], POOLS[3]])
def test_average_pool_before_global_pool_steps_back(op: str, attrs: dict) -> None:
    """Spec 2: the split steps back over an AveragePool that feeds the global pool."""
    check_pool_steps_back(op, attrs)
