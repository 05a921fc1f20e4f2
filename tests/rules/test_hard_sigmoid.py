"""HardSigmoid: pass-through below the split (spec 4.5), VJP ``g · alpha · 1[0 < alpha·x + beta
< 1]`` above it; explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import Block, check_above, check_below, simple


def hard_sigmoid_of(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """``clamp(alpha·x + beta, 0, 1)``."""
    return torch.clamp(alpha * x + beta, 0.0, 1.0)


@reference("HardSigmoid", relevance=pass_through)
def hard_sigmoid(ins: Ins, node: Node) -> torch.Tensor:
    """``clamp(alpha·x + beta, 0, 1)``, alpha 0.2 and beta 0.5 by default."""
    return hard_sigmoid_of(ins[0], float(node.at.get("alpha", 0.2)),  # type: ignore[arg-type]
                           float(node.at.get("beta", 0.5)))


CASES: dict[str, Block] = {
    "hardsigmoid": simple("HardSigmoid"),
    "hardsigmoid-0.3-0.4": simple("HardSigmoid", alpha=0.3, beta=0.4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hard_sigmoid_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged, between two convs."""
    check_below(CASES[name], build_at=20, opset=17)


@pytest.mark.parametrize("name", list(CASES))
def test_hard_sigmoid_above_split(name: str) -> None:
    """HardSigmoid in the head: its exact VJP."""
    check_above(CASES[name], build_at=20, opset=17)
