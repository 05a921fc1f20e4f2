"""Sub with a constant operand (bias, input normalisation, ``c - x``): pass-through below the
split (spec 4.5), VJP ``±g`` above it; explainer vs the torch reference. A Sub of two tensors
has no relevance rule."""

from __future__ import annotations

import pytest
import torch

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import one_data_input
from tests.rules.scaffold import (
    Block,
    check_above,
    check_at_split,
    check_before_first_conv,
    check_below,
    const_operand,
)


@reference("Sub", relevance=one_data_input)
def sub(ins: Ins, node: Node) -> torch.Tensor:
    """``a - b`` (broadcasting)."""
    return ins[0] - ins[1]  # type: ignore[operator]


CASES: dict[str, Block] = {
    "sub-channel": const_operand("Sub", "channel"),
    "sub-const-minus-x": const_operand("Sub", "channel", first=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sub_below_split(name: str) -> None:
    """Rule 4.5: relevance passes through to the non-constant operand."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_sub_above_split(name: str) -> None:
    """Sub in the head: its VJP (negated for ``c - x``)."""
    check_above(CASES[name])


def test_sub_at_split() -> None:
    """The split tensor is the output of a Sub of a per-channel constant."""
    check_at_split(CASES["sub-channel"], ratio=1.5)


NORMALISE: dict[str, list[Block]] = {
    "sub-div": [const_operand("Sub", "channel"), const_operand("Div", "channel")],
    "const-minus-x": [const_operand("Sub", "chw", first=True)],
}


@pytest.mark.parametrize("name", list(NORMALISE))
def test_sub_before_first_conv(name: str) -> None:
    """Input normalisation with Sub before the first conv: that conv keeps the bounded rule
    (4.3) with l, h over its own (transformed) input."""
    check_before_first_conv(*NORMALISE[name])
