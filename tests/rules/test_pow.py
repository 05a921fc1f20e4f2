"""Pow with a constant scalar exponent: VJP ``g · p · x^(p-1)`` only (no relevance rule: the
cube of the exported tanh-Gelu subgraph). That subgraph in the head matches the torch
reference; below the split it is refused."""

from __future__ import annotations

import numpy as np
import torch

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import SHAPE, between_model, building_at


@reference("Pow")
def pow_forward(ins: Ins, node: Node) -> torch.Tensor:
    """``x ** p`` (no relevance rule: supported above the split only)."""
    return torch.pow(ins[0], ins[1])  # type: ignore[arg-type]


def gelu_tanh_subgraph(net: Net) -> str:
    """Tanh Gelu as exported: ``0.5·x · (1 + tanh(√(2/π) · (x + 0.044715·x³)))``."""
    x = net.cur
    cube = net.op("Mul", [net.op("Pow", [x, net.const(np.float32(3.0))]),
                          net.const(np.float32(0.044715))])
    inner = net.op("Mul", [net.op("Add", [x, cube]), net.const(np.float32(np.sqrt(2 / np.pi)))])
    one_plus = net.op("Add", [net.op("Tanh", [inner]), net.const(np.float32(1.0))])
    return net.op("Mul", [net.op("Mul", [x, net.const(np.float32(0.5))]), one_plus])


def test_gelu_tanh_subgraph_above_split() -> None:
    """The exported tanh-Gelu subgraph in the head: Pow/Tanh/Add/Mul VJPs and the product
    rule."""
    with building_at(20):
        model = between_model(gelu_tanh_subgraph, seed=8).head()
    compare_with_reference(model, random_input(SHAPE, seed=9, scale=1.0), layer="early")


def test_gelu_tanh_subgraph_below_split() -> None:
    """Below the split the gate ``1 + tanh(...)`` gets nothing and the signal ``0.5·x`` all of
    R (ae-tokens T3; the reference's gate test is in test_mul.py)."""
    with building_at(20):
        model = between_model(gelu_tanh_subgraph, seed=10).head()
    compare_with_reference(model, random_input(SHAPE, seed=11, scale=1.0))
