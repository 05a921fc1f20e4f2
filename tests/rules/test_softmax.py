"""Softmax / LogSoftmax at the model output: not rules — the logits are their input (spec 3),
so the explainer's logits, R0 and relevance match the reference's on an MLP ending in either.
The reference registers their forward only (no relevance rule)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import CLASSES, FEATURES, mlp


def _axis(node: Node) -> int:
    return int(node.at.get("axis", -1 if node.opset >= 13 else 1))


@reference("Softmax", traits=["softmax"])
def softmax(ins: Ins, node: Node) -> torch.Tensor:
    """``exp(x) / Σ exp(x)`` along ``axis`` (-1 from opset 13, 1 before)."""
    return F.softmax(ins[0], dim=_axis(node))


@reference("LogSoftmax", traits=["softmax"])
def log_softmax(ins: Ins, node: Node) -> torch.Tensor:
    """``x - log Σ exp(x)`` along ``axis``."""
    return F.log_softmax(ins[0], dim=_axis(node))


def gemm(net: Net, out: int) -> str:
    return net.gemm(out, trans_b=1)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_mlp_with_softmax_output(op: str) -> None:
    """A final Softmax / LogSoftmax: the logits are its input (spec 3)."""
    net = mlp(gemm, seed=9)
    net.op(op, [net.cur], name="probs", axis=1)
    compare_with_reference(net.build(classes=CLASSES), random_input((FEATURES,), seed=10))
