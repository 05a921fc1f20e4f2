"""Elu: pass-through below the split (spec 4.5), its exact VJP above it; explainer vs the torch
reference."""

from __future__ import annotations

import pytest
import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import Block, check_above, check_below, simple


def elu_of(x: torch.Tensor, alpha: float, gamma: float = 1.0) -> torch.Tensor:
    """``gamma · (x > 0 ? x : alpha · (exp(x) - 1))``."""
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


@reference("Elu", relevance=pass_through)
def elu(ins: Ins, node: Node) -> torch.Tensor:
    """``x > 0 ? x : alpha · (exp(x) - 1)``, alpha 1 by default."""
    return elu_of(ins[0], float(node.at.get("alpha", 1.0)))  # type: ignore[arg-type]


CASES: dict[str, Block] = {
    "elu": simple("Elu"),
    "elu-0.5": simple("Elu", alpha=0.5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_elu_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(CASES[name], build_at=20, opset=17)


@pytest.mark.parametrize("name", list(CASES))
def test_elu_above_split(name: str) -> None:
    """Elu in the head: its exact VJP."""
    check_above(CASES[name], build_at=20, opset=17)
