"""Pad (constant mode, pads and value from inputs, ``axes`` at opset 18): relevance and gradient
cropped back (spec 4.9); other modes and negative pads refused. Explainer vs the torch
reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net
from tests.reference.onnx_args import ints_arg
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import mapping
from tests.rules.scaffold import SHAPE, Block, C, check_above, check_below, ints


@reference("Pad", relevance=mapping)
def pad(ins: Ins, node: Node) -> torch.Tensor:
    """Constant-mode Pad: ``pads`` ([begin..., end...] over ``axes``, all axes by default) filled
    with ``value``."""
    if node.at.get("mode", "constant") != "constant":
        raise NotImplementedError("Pad mode other than constant")
    x, pads = ins[0], ints_arg(ins, 1, node.at, "pads") or []
    assert x is not None
    value = (float(ins[2]) if len(ins) > 2 and ins[2] is not None  # type: ignore[arg-type]
             else float(node.at.get("value", 0.0)))
    axes = [a % x.dim() for a in (ints_arg(ins, 3, node.at, "axes") or range(x.dim()))]
    full = [0] * (2 * x.dim())
    for i, a in enumerate(axes):
        full[a], full[a + x.dim()] = pads[i], pads[i + len(axes)]
    torch_pads: list[int] = []
    for a in reversed(range(x.dim())):
        torch_pads += [full[a], full[a + x.dim()]]
    return F.pad(x, torch_pads, value=value)


def pad_block(pads: list[int], value: float | None = None, axes: list[int] | None = None
              ) -> Block:
    """Pad then Relu (a Pad right before a Conv would be folded into it)."""

    def add(net: Net) -> str:
        ins_ = [net.cur, ints(net, pads)]
        if value is not None or axes is not None:
            ins_.append(net.const(np.float32(value or 0.0)))
        if axes is not None:
            ins_.append(ints(net, axes))
        net.op("Pad", ins_, mode="constant")
        return net.relu()

    return add


CASES: dict[str, Block] = {
    "pad-spatial": pad_block([0, 0, 1, 2, 0, 0, 2, 1]),
    "pad-channels-value": pad_block([0, 1, 0, 0, 0, 2, 0, 0], value=0.5),
    "pad-axes": pad_block([1, 0, 0, 3], axes=[2, 3]),
}
#: Cases that need a newer opset than the helpers' 17 (Pad's ``axes`` input: opset 18).
OPSETS = {"pad-axes": 18}


@pytest.mark.parametrize("name", list(CASES))
def test_pad_below_split(name: str) -> None:
    """Rule 4.9: relevance cropped back to the input."""
    check_below(CASES[name], build_at=OPSETS.get(name, 17))


@pytest.mark.parametrize("name", list(CASES))
def test_pad_above_split(name: str) -> None:
    """Pad in the head: its VJP (the same crop)."""
    check_above(CASES[name], build_at=OPSETS.get(name, 17))


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_other_modes_refused(mode: str) -> None:
    """Only constant-mode Pad is supported."""
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    net.op("Pad", [net.cur, ints(net, [0, 0, 1, 1, 0, 0, 1, 1])], mode=mode)
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match=f"Pad in {mode} mode"):
        aeq_onnx.compile_explainer(net.head())


def test_negative_pad_refused() -> None:
    net = Net(SHAPE, seed=6)
    net.conv(C, 3, pads=1)
    pad_block([0, 0, -1, 0, 0, 0, 0, 0])(net)
    net.conv(C, 3, pads=1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match="negative pads"):
        aeq_onnx.compile_explainer(net.head())
