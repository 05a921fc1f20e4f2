"""ReduceMax over spatial axes (spec 4.6: z-rule on x+, gradient to the first arg-max) and Sum
of n tensors (4.7 pairwise: Add's rules for two, z/share over n), explainer vs torch
reference, below the split (relevance) and above it (VJP)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 10, 10)


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


def branches(n: int, seed: int, residual: bool = False) -> Net:
    """Conv → Relu (``early``); ``n`` Conv → Relu branches from it (the first one plain
    identity when ``residual``), joined by one Sum; then Conv → Relu. Non-negative operands
    keep ``R / Σx`` well conditioned (float32 explainer vs float64 reference)."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    fork = net.relu(name="early")
    outs = []
    for i in range(n):
        if residual and i == 0:
            outs.append(fork)
            continue
        net.conv(C, 3, pads=1, x=fork)
        outs.append(net.relu())
    net.op("Sum", outs)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


SUMS = {"sum2": (2, False), "sum2-residual": (2, True), "sum3": (3, False),
        "sum3-residual": (3, True), "sum4": (4, False)}


@pytest.mark.parametrize("add_rule", ["residual", "share", "z"])
@pytest.mark.parametrize("name", list(SUMS))
def test_sum_below_split(name: str, add_rule: str) -> None:
    """r = 1.5: at r = 2 the conv after the Sum sends ``Σ R = 0`` (the equilibrium), and the
    ``share`` targets ``ΣR·|ΣR_i|/...`` are float noise (1e-8 here, 1e-17 in float64)."""
    n, residual = SUMS[name]
    net = branches(n, seed=7, residual=residual)
    compare_with_reference(net.head(), random_input(SHAPE, seed=8, scale=2.0), add_rule=add_rule,
                           ratio=1.5)


@pytest.mark.parametrize("name", list(SUMS))
def test_sum_above_split(name: str) -> None:
    n, residual = SUMS[name]
    net = branches(n, seed=9, residual=residual)
    compare_with_reference(net.head(), random_input(SHAPE, seed=10, scale=2.0), layer="early")


def test_sum_single_operand_with_constant() -> None:
    """Sum of one tensor and a bias: pass-through."""
    net = trunk(seed=11)
    net.op("Sum", [net.cur, net.const(np.linspace(-0.5, 0.5, C).reshape(-1, 1, 1))])
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(SHAPE, seed=12))
