"""Sum: of two tensors, Add's rule 4.7 (``residual``, ``share``, ``z``); of more, the z-rule or
``share`` over n operands (4.7 "pairwise"); of one tensor and constants, pass-through (4.5); in
the head, its VJP. Explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.formulas import sum_rule
from tests.reference.interpreter import Walk
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import join, one_data_input
from tests.rules.scaffold import SHAPE, C


def sum_relevance(walk: Walk, node: Node, R: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """Two tensors: rule 4.7 as for Add; n > 2 tensors (and nothing else): ``sum_rule`` (the
    ``residual`` mode falls back to ``share``: no single shortcut among n operands); one
    tensor and constants: pass-through."""
    data = walk.data(node)
    if len(data) == 2 and len(node.inputs) == 2:
        return join(walk, data[0], data[1], R)
    if len(data) > 2 and len(node.inputs) == len(data):
        parts = sum_rule([walk.value(d) for d in data], R, walk.add_mode)
        return list(zip(data, parts, strict=True))
    return one_data_input(walk, node, R)


@reference("Sum", relevance=sum_relevance)
def sum_(ins: Ins, node: Node) -> torch.Tensor:
    """``x_1 + ... + x_n`` (broadcasting)."""
    return sum(ins[1:], ins[0])  # type: ignore[arg-type,return-value]


def trunk(seed: int) -> Net:
    """Conv → Relu (``early``) → Conv → Relu."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    return net


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
