"""MaxPool (kernel 2/3, stride 1/2, pads, asymmetric pads, ceil_mode, dilation): the z-rule on
the positive part through the node's own pooling (spec 4.6, relevance to the first arg-max of
each window) below the split, its VJP in the head, stepped over by the default split. Explainer
vs the torch reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import compare_with_reference, random_input
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


@reference("MaxPool", relevance=pooling, traits=["window_pool"])
def max_pool(ins: Ins, node: Node) -> torch.Tensor:
    """The window maximum; pads (and ceil_mode's extra end) hold -inf, so they never win."""
    if len(node.outputs) > 1 and node.outputs[1]:
        raise NotImplementedError("MaxPool with an Indices output")
    x = ins[0]
    assert x is not None
    w = window("MaxPool", node.at, x.shape)
    return F.max_pool2d(F.pad(x, w.torch_pad, value=-math.inf), w.kernel, w.strides,
                        dilation=w.dilations)


ASYM = (0, 1, 1, 0)
POOLS = [
    pool_case("max-k2-s2", "MaxPool", 2, 2),
    pool_case("max-k2-s1", "MaxPool", 2, 1),
    pool_case("max-k3-s1-p1", "MaxPool", 3, 1, 1),
    pool_case("max-k3-s2-p1", "MaxPool", 3, 2, 1),
    pool_case("max-k3-s2-p0", "MaxPool", 3, 2, 0),
    pool_case("max-k2-s2-ceil", "MaxPool", 2, 2, ceil_mode=1),
    pool_case("max-k3-s2-ceil", "MaxPool", 3, 2, ceil_mode=1),
    pool_case("max-k3-s2-p1-ceil", "MaxPool", 3, 2, 1, ceil_mode=1),
    pool_case("max-k2-s2-pasym", "MaxPool", 2, 2, ASYM),
    pool_case("max-k3-s2-pasym-ceil", "MaxPool", 3, 2, ASYM, ceil_mode=1),
    pool_case("max-k2-s1-d2", "MaxPool", 2, 1, dilations=[2, 2]),
]
SHAPE = (POOL_CIN, POOL_SIZE, POOL_SIZE)


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_max_pool_below_split(op: str, attrs: dict) -> None:
    """Rule 4.6: relevance through the pool (with ties inside all-zero windows)."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input(SHAPE))


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_max_pool_before_relu(op: str, attrs: dict) -> None:
    """Rule 4.6 on a pool of the raw conv output: windows with negative values."""
    model = pooled_model(op, attrs, before_relu=True, seed=1).head()
    compare_with_reference(model, random_input(SHAPE, seed=2), ratio=1.5)


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_max_pool_above_split(op: str, attrs: dict) -> None:
    """The pool lies in the head: its VJP (``split_gradient``, R0)."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input(SHAPE), layer="early")


@pytest.mark.parametrize(("op", "attrs"), [POOLS[0], POOLS[4]])
def test_max_pool_before_global_pool_steps_back(op: str, attrs: dict) -> None:
    """Spec 2: the split steps back over a MaxPool that feeds the global pool."""
    check_pool_steps_back(op, attrs)
