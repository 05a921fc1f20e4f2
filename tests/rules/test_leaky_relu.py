"""LeakyRelu: pass-through below the split (spec 4.5), VJP ``g · (x > 0 ? 1 : alpha)`` above
it; explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import Block, check_above, check_at_split, check_below, simple


@reference("LeakyRelu", relevance=pass_through)
def leaky_relu(ins: Ins, node: Node) -> torch.Tensor:
    """``x`` where x > 0, ``alpha · x`` elsewhere (alpha 0.01 by default)."""
    return F.leaky_relu(ins[0], float(node.at.get("alpha", 0.01)))


CASES: dict[str, Block] = {
    "leaky-0.1": simple("LeakyRelu", alpha=0.1),
    "leaky-default": simple("LeakyRelu"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_leaky_relu_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through unchanged (negative values reach the next conv)."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_leaky_relu_above_split(name: str) -> None:
    """LeakyRelu in the head: its VJP."""
    check_above(CASES[name])


def test_leaky_relu_at_split() -> None:
    """The split tensor is the LeakyRelu output (A of any sign)."""
    check_at_split(CASES["leaky-0.1"], ratio=1.5)
