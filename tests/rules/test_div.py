"""Div by a constant (input normalisation, scaling): pass-through below the split (spec 4.5),
VJP ``g / c`` above it; explainer vs the torch reference. A Div of two tensors has no relevance
rule."""

from __future__ import annotations

import pytest
import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import one_data_input
from tests.rules.scaffold import (
    Block,
    check_above,
    check_before_first_conv,
    check_below,
    const_operand,
)


@reference("Div", relevance=one_data_input)
def div(ins: Ins, node: Node) -> torch.Tensor:
    """``a / b`` (broadcasting)."""
    return ins[0] / ins[1]  # type: ignore[operator]


CASES: dict[str, Block] = {
    "div-channel": const_operand("Div", "channel"),
    "div-map": const_operand("Div", "map"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_div_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through to the dividend."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_div_above_split(name: str) -> None:
    """Div in the head: its VJP."""
    check_above(CASES[name])


def test_div_before_first_conv() -> None:
    """``x / 0.7 - 0.7`` before the first conv: that conv keeps the bounded rule (4.3)."""
    check_before_first_conv(const_operand("Div", "scalar"), const_operand("Sub", "scalar"))
