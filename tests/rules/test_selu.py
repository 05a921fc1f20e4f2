"""Selu: pass-through below the split (spec 4.5), its exact VJP above it; explainer vs the
torch reference."""

from __future__ import annotations

import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_below, simple

ALPHA = 1.67326319217681884765625
GAMMA = 1.05070102214813232421875


@reference("Selu", relevance=pass_through)
def selu(ins: Ins, node: Node) -> torch.Tensor:
    """``gamma · (x > 0 ? x : alpha · (exp(x) - 1))`` with ONNX's default alpha and gamma."""
    x = ins[0]
    assert x is not None
    alpha, gamma = float(node.at.get("alpha", ALPHA)), float(node.at.get("gamma", GAMMA))
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


def test_selu_below_split() -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(simple("Selu"), build_at=20, opset=17)


def test_selu_above_split() -> None:
    """Selu in the head: its exact VJP."""
    check_above(simple("Selu"), build_at=20, opset=17)
