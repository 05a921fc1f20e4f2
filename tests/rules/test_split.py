"""Split (sizes from an input, or ``num_outputs`` at opset 18, uneven): the outputs' relevance
and gradients concatenated back along the axis, zeros for outputs without flow (spec 4.9);
explainer vs the torch reference."""

from __future__ import annotations

import onnx
import pytest
import torch

from tests.helpers import Net
from tests.reference.interpreter import Walk
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import Block, check_above, check_below, ints


def split_back(walk: Walk, node: Node,
               Rs: list[torch.Tensor | None]) -> list[tuple[str, torch.Tensor]]:
    """Section 4.9: the outputs' relevances concatenated back, zeros for outputs without any."""
    parts = [torch.zeros_like(walk.env[o]) if r is None else r
             for o, r in zip(node.outputs, Rs, strict=True)]
    return [(walk.data(node)[0], torch.cat(parts, dim=int(node.at.get("axis", 0))))]


@reference("Split", relevance=split_back, multi_output=True)
def split(ins: Ins, node: Node) -> tuple[torch.Tensor, ...]:
    """``x`` cut along ``axis`` into the given sizes (equal parts, the last one smaller, when
    none are given)."""
    x, axis = ins[0], int(node.at.get("axis", 0))
    assert x is not None
    sizes = ints_arg(ins, 1, node.at, "split")
    if not sizes:
        n_out, dim = len(node.outputs), x.shape[axis]
        each = -(-dim // n_out)
        sizes = [min(each, dim - i * each) for i in range(n_out)]
    return torch.split(x, sizes, dim=axis)


def split_concat(sizes: list[int], axis: int, keep: list[int], equal: bool = False) -> Block:
    """Split into ``sizes`` along ``axis`` (``equal``: by ``num_outputs``, opset 18); concat
    the outputs ``keep`` (in that order)."""

    def add(net: Net) -> str:
        outs = [net.fresh("split") for _ in sizes]
        inputs = [net.cur] if equal else [net.cur, ints(net, sizes)]
        attrs: dict[str, int] = {"axis": axis}
        if equal:
            attrs["num_outputs"] = len(sizes)
        net.nodes.append(onnx.helper.make_node("Split", inputs, outs, name=net.fresh("n_split"),
                                               **attrs))
        if len(keep) == 1:
            return net.op("Identity", [outs[keep[0]]])
        return net.op("Concat", [outs[i] for i in keep], axis=axis)

    return add


CASES: dict[str, Block] = {
    "split-swap": split_concat([2, 4], 1, [1, 0]),
    "split-one-used": split_concat([4, 6], 2, [1]),
    "split-three-two-used": split_concat([3, 3, 4], 3, [2, 0]),
    "split-num-outputs-uneven": split_concat([4, 4, 2], 2, [2, 1, 0], equal=True),
}
#: Cases that need a newer opset than the helpers' 17 (``num_outputs``: opset 18).
OPSETS = {"split-num-outputs-uneven": 18}


@pytest.mark.parametrize("name", list(CASES))
def test_split_below_split(name: str) -> None:
    """Rule 4.9: the outputs' relevance concatenated back."""
    check_below(CASES[name], build_at=OPSETS.get(name, 17))


@pytest.mark.parametrize("name", list(CASES))
def test_split_above_split(name: str) -> None:
    """Split in the head: its VJP (the same concatenation)."""
    check_above(CASES[name], build_at=OPSETS.get(name, 17))
