"""Slice (constant starts/ends/axes/steps, any step, negative steps): relevance and gradient
scattered back into zeros of the input's shape (spec 4.9); explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import Net
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping
from tests.rules.scaffold import Block, check_above, check_below, ints


@reference("Slice", relevance=mapping)
def slice_forward(ins: Ins, node: Node) -> torch.Tensor:
    """``x[starts:ends:steps]`` along ``axes`` (inputs from opset 10, attributes before)."""
    x = ins[0]
    assert x is not None
    starts = ints_arg(ins, 1, node.at, "starts") or []
    ends = ints_arg(ins, 2, node.at, "ends") or []
    axes = ints_arg(ins, 3, node.at, "axes") or list(range(len(starts)))
    steps = ints_arg(ins, 4, node.at, "steps") or [1] * len(starts)
    for a, st, en, sp in zip(axes, starts, ends, steps, strict=True):
        a = a % x.dim()
        idx = np.arange(x.shape[a])[slice(st, en, sp)]
        x = x.index_select(a, torch.from_numpy(idx.astype(np.int64)))
    return x


def slice_block(starts: list[int], ends: list[int], axes: list[int],
                steps: list[int] | None = None) -> Block:
    def add(net: Net) -> str:
        ins_ = [net.cur, ints(net, starts), ints(net, ends), ints(net, axes)]
        if steps is not None:
            ins_.append(ints(net, steps))
        return net.op("Slice", ins_)

    return add


CASES: dict[str, Block] = {
    "slice-crop": slice_block([1, 2], [9, 100], [2, 3]),
    "slice-channels": slice_block([0], [4], [1]),
    "slice-step2": slice_block([1], [10], [3], [2]),
    "slice-flip": slice_block([-1], [-100], [2], [-1]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_slice_below_split(name: str) -> None:
    """Rule 4.9: relevance scattered back into zeros."""
    check_below(CASES[name])


@pytest.mark.parametrize("name", list(CASES))
def test_slice_above_split(name: str) -> None:
    """Slice in the head: its VJP (the same scatter)."""
    check_above(CASES[name])
