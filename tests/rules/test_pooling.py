"""Pooling rules (spec 4.6, z-rule on the positive part) and pooling VJPs, explainer vs torch
reference: MaxPool (kernel 2/3, stride 1/2, pads, ceil_mode, dilation), AveragePool
(count_include_pad 0/1, pads, ceil_mode) and GlobalAveragePool, each placed below the split
(relevance) and above it (VJP)."""

from __future__ import annotations

import pytest

from tests.helpers import Net, compare_with_reference, random_input

CIN = 3
SIZE = 11  # odd, so that ceil_mode changes the output size


def pool(case_id: str, op: str, kernel: int, stride: int, pads: int | tuple[int, ...] = 0,
         **attrs: int) -> pytest.param:
    p = (pads,) * 4 if isinstance(pads, int) else tuple(pads)
    at = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": list(p),
          **attrs}
    return pytest.param(op, at, id=case_id)


ASYM = (0, 1, 1, 0)
POOLS = [
    pool("max-k2-s2", "MaxPool", 2, 2),
    pool("max-k2-s1", "MaxPool", 2, 1),
    pool("max-k3-s1-p1", "MaxPool", 3, 1, 1),
    pool("max-k3-s2-p1", "MaxPool", 3, 2, 1),
    pool("max-k3-s2-p0", "MaxPool", 3, 2, 0),
    pool("max-k2-s2-ceil", "MaxPool", 2, 2, ceil_mode=1),
    pool("max-k3-s2-ceil", "MaxPool", 3, 2, ceil_mode=1),
    pool("max-k3-s2-p1-ceil", "MaxPool", 3, 2, 1, ceil_mode=1),
    pool("max-k2-s2-pasym", "MaxPool", 2, 2, ASYM),
    pool("max-k3-s2-pasym-ceil", "MaxPool", 3, 2, ASYM, ceil_mode=1),
    pool("max-k2-s1-d2", "MaxPool", 2, 1, dilations=[2, 2]),
    pool("avg-k2-s2", "AveragePool", 2, 2),
    pool("avg-k3-s1-p1-excl", "AveragePool", 3, 1, 1, count_include_pad=0),
    pool("avg-k3-s1-p1-incl", "AveragePool", 3, 1, 1, count_include_pad=1),
    pool("avg-k3-s2-p1-excl", "AveragePool", 3, 2, 1, count_include_pad=0),
    pool("avg-k3-s2-p1-incl", "AveragePool", 3, 2, 1, count_include_pad=1),
    pool("avg-k2-s2-ceil", "AveragePool", 2, 2, ceil_mode=1),
    pool("avg-k3-s2-ceil-excl", "AveragePool", 3, 2, ceil_mode=1, count_include_pad=0),
    pool("avg-k3-s2-ceil-incl", "AveragePool", 3, 2, ceil_mode=1, count_include_pad=1),
    pool("avg-k3-s2-p1-ceil-incl", "AveragePool", 3, 2, 1, ceil_mode=1, count_include_pad=1),
    pool("avg-k2-s2-pasym-incl", "AveragePool", 2, 2, ASYM, count_include_pad=1),
    pool("avg-k2-s2-pasym-excl", "AveragePool", 2, 2, ASYM, count_include_pad=0),
]


def pooled_model(op: str, attrs: dict, *, before_relu: bool = False, seed: int = 0) -> Net:
    """input → Conv3×3 → Relu (``early``) → Pool → Conv3×3 → Relu → head; ``before_relu``
    pools the raw conv output instead (negative values in the windows)."""
    net = Net((CIN, SIZE, SIZE), seed=seed)
    net.conv(6, 3, pads=1)
    if before_relu:
        net.op(op, [net.cur], **attrs)
        net.relu(name="early")
    else:
        net.relu(name="early")
        net.op(op, [net.cur], **attrs)
    net.conv(6, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_pool_below_split(op: str, attrs: dict) -> None:
    """Rule 4.6: relevance through the pool (with MaxPool ties inside all-zero windows)."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input((CIN, SIZE, SIZE)))


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_pool_before_relu(op: str, attrs: dict) -> None:
    """Rule 4.6 on a pool of the raw conv output: windows with negative values."""
    model = pooled_model(op, attrs, before_relu=True, seed=1).head()
    compare_with_reference(model, random_input((CIN, SIZE, SIZE), seed=2), ratio=1.5)


@pytest.mark.parametrize(("op", "attrs"), POOLS)
def test_pool_above_split(op: str, attrs: dict) -> None:
    """The pool lies in the head: its VJP (``split_gradient``, R0)."""
    model = pooled_model(op, attrs).head()
    compare_with_reference(model, random_input((CIN, SIZE, SIZE)), layer="early")


@pytest.mark.parametrize(("op", "attrs"), [POOLS[0], POOLS[4], POOLS[11], POOLS[14]])
def test_pool_before_global_pool_steps_back(op: str, attrs: dict) -> None:
    """Spec 2: a pool feeding the global pool is stepped over: the split is its input and
    the pool is differentiated in the head."""
    net = Net((CIN, SIZE, SIZE), seed=3)
    net.conv(6, 3, pads=1)
    net.relu(name="conv_out")
    net.op(op, [net.cur], **attrs)
    got = compare_with_reference(net.head(), random_input((CIN, SIZE, SIZE), seed=4))
    assert got.reference["split"] == "conv_out"


def test_global_average_pool_below_split_rank4() -> None:
    """GlobalAveragePool below the split: a 1×1 conv and Relu after it, split at that Relu."""
    net = Net((CIN, 8, 8), seed=5)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.conv(8, 1)
    net.relu(name="after_gap")
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(5, name="y")
    model = net.build(classes=5)
    compare_with_reference(model, random_input((CIN, 8, 8), seed=6), layer="after_gap")


def test_global_average_pool_below_split_dense() -> None:
    """GlobalAveragePool → Flatten → Gemm → Relu below the split (split before the last
    dense layer)."""
    net = Net((CIN, 8, 8), seed=7)
    net.conv(6, 3, pads=1)
    net.relu()
    net.op("GlobalAveragePool", [net.cur])
    net.op("Flatten", [net.cur], axis=1)
    net.gemm(8)
    net.relu(name="hidden")
    net.gemm(5, name="y")
    model = net.build(classes=5)
    compare_with_reference(model, random_input((CIN, 8, 8), seed=8), layer="hidden")


def test_global_average_pool_in_head() -> None:
    """The default model head (GlobalAveragePool → Flatten → Gemm) differentiated, split at
    an earlier layer."""
    net = Net((CIN, 8, 8), seed=9)
    net.conv(6, 3, pads=1)
    net.relu(name="early")
    net.conv(6, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input((CIN, 8, 8), seed=10), layer="early")
