"""Structure ops (spec 4.9), explainer vs torch reference: Transpose (inverse permutation),
Squeeze/Unsqueeze (reshape back), Pad (constant mode: crop), Slice (constant arguments, any
step: scatter into zeros) and Split (concat back, zeros for outputs without flow) — below the
split (relevance) and above it (VJP)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests import helpers
from tests.helpers import Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 10, 10)
Block = Callable[[Net], str]


def ints(net: Net, values: list[int]) -> str:
    return net.const(np.asarray(values, np.int64), "i")


def transpose(*perms: list[int]) -> Block:
    def add(net: Net) -> str:
        for perm in perms:
            net.op("Transpose", [net.cur], perm=perm)
        return net.cur

    return add


def unsqueeze_squeeze(net: Net) -> str:
    net.op("Unsqueeze", [net.cur, ints(net, [2])])
    net.op("Relu", [net.cur])
    return net.op("Squeeze", [net.cur, ints(net, [2])])


def pad(pads: list[int], value: float | None = None, axes: list[int] | None = None) -> Block:
    """Pad then Relu (a Pad right before a Conv would be folded into it)."""

    def add(net: Net) -> str:
        ins = [net.cur, ints(net, pads)]
        if value is not None or axes is not None:
            ins.append(net.const(np.float32(value or 0.0)))
        if axes is not None:
            ins.append(ints(net, axes))
        net.op("Pad", ins, mode="constant")
        return net.relu()

    return add


def slice_(starts: list[int], ends: list[int], axes: list[int], steps: list[int] | None = None
           ) -> Block:
    def add(net: Net) -> str:
        ins = [net.cur, ints(net, starts), ints(net, ends), ints(net, axes)]
        if steps is not None:
            ins.append(ints(net, steps))
        return net.op("Slice", ins)

    return add


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


BLOCKS: dict[str, Block] = {
    "transpose-hw": transpose([0, 1, 3, 2]),
    "transpose-nhwc-roundtrip": transpose([0, 2, 3, 1], [0, 3, 1, 2]),
    "unsqueeze-squeeze": unsqueeze_squeeze,
    "pad-spatial": pad([0, 0, 1, 2, 0, 0, 2, 1]),
    "pad-channels-value": pad([0, 1, 0, 0, 0, 2, 0, 0], value=0.5),
    "pad-axes": pad([1, 0, 0, 3], axes=[2, 3]),
    "slice-crop": slice_([1, 2], [9, 100], [2, 3]),
    "slice-channels": slice_([0], [4], [1]),
    "slice-step2": slice_([1], [10], [3], [2]),
    "slice-flip": slice_([-1], [-100], [2], [-1]),
    "split-swap": split_concat([2, 4], 1, [1, 0]),
    "split-one-used": split_concat([4, 6], 2, [1]),
    "split-three-two-used": split_concat([3, 3, 4], 3, [2, 0]),
    "split-num-outputs-uneven": split_concat([4, 4, 2], 2, [2, 1, 0], equal=True),
}


#: Blocks that need a newer opset than the helpers' 17 (Pad's ``axes`` input: opset 18).
OPSETS = {"pad-axes": 18, "split-num-outputs-uneven": 18}


@pytest.fixture
def opset_for(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Build the named block's model at the opset it needs."""
    return lambda name: monkeypatch.setattr(helpers, "OPSET", OPSETS.get(name, 17))


def between_model(block: Block, seed: int) -> Net:
    """input → Conv3×3 → Relu (``early``) → Conv3×3 → block → Conv3×3 → Relu → head."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    block(net)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("name", list(BLOCKS))
def test_structure_below_split(name: str, opset_for: Callable[[str], None]) -> None:
    """Rule 4.9: relevance moves back along the op's own mapping."""
    opset_for(name)
    net = between_model(BLOCKS[name], seed=1)
    compare_with_reference(net.head(), random_input(SHAPE, seed=2, scale=3.0))


@pytest.mark.parametrize("name", list(BLOCKS))
def test_structure_above_split(name: str, opset_for: Callable[[str], None]) -> None:
    """The op lies in the head: its VJP (the same mapping)."""
    opset_for(name)
    net = between_model(BLOCKS[name], seed=3)
    compare_with_reference(net.head(), random_input(SHAPE, seed=4, scale=3.0), layer="early")


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
    pad([0, 0, -1, 0, 0, 0, 0, 0])(net)
    net.conv(C, 3, pads=1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match="negative pads"):
        aeq_onnx.compile_explainer(net.head())
