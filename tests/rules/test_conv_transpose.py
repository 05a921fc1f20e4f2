"""ConvTranspose, explainer vs torch reference: its VJP is the Conv with the same weight tensor
and attributes (head); below the split the AE hidden-layer rule (4.1, 4.2 for 1×1) with
``conv`` = the node's op and ``convT`` = that Conv; refused when fed by the model input."""

from __future__ import annotations

import pytest

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 8, 8)

#: name -> (cout, kernel, attrs)
CASES: dict[str, tuple[int, int, dict[str, object]]] = {
    "k3-s1-p1": (C, 3, {"pads": [1, 1, 1, 1]}),
    "k2-s2": (4, 2, {"strides": [2, 2]}),
    "k3-s2-p1-outpad1": (C, 3, {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                "output_padding": [1, 1]}),
    "k3-asym-pads": (C, 3, {"pads": [0, 1, 2, 0]}),
    "k3-dilation2": (C, 3, {"dilations": [2, 2], "pads": [1, 1, 1, 1]}),
    "k3-group2": (C, 3, {"group": 2, "pads": [1, 1, 1, 1]}),
    "k1-s2": (C, 1, {"strides": [2, 2]}),
}


def conv_transpose(net: Net, name: str) -> str:
    cout, k, attrs = CASES[name]
    cin = net.shape()[0]
    group = int(attrs.get("group", 1))  # type: ignore[call-overload]
    w = net.weight((cin, cout // group, k, k), fan_in=cin * k * k // 4)
    b = net.const(0.1 * net.rng.standard_normal(cout), "b")
    return net.op("ConvTranspose", [net.cur, w, b], kernel_shape=[k, k], **attrs)


def model(name: str, seed: int) -> Net:
    """Conv → Relu (``early``) → ConvTranspose → Relu → head."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    conv_transpose(net, name)
    net.relu()
    return net


@pytest.mark.parametrize("name", list(CASES))
def test_conv_transpose_above_split(name: str) -> None:
    """The ConvTranspose lies in the head (split at ``early``): its VJP is a Conv."""
    net = model(name, seed=1)
    compare_with_reference(net.head(), random_input(SHAPE, seed=2), layer="early")


@pytest.mark.parametrize("ratio", [2.0, 1.5], ids=["r2", "r1.5"])
@pytest.mark.parametrize("name", list(CASES))
def test_conv_transpose_below_split(name: str, ratio: float) -> None:
    """The AE layer rule with the node's transposed convolution as ``conv``.

    Seeds 5/6 put a weight with |W| = 1.5e-5 in a 1x1 kernel: a regression test for
    ``conv(ā,|W|)``, which must be computed directly (as ``conv(1,|W|) - conv(a,|W|)`` it lost
    1% to float32 cancellation)."""
    for seeds in ((5, 6), (7, 8)):
        net = model(name, seed=seeds[0])
        compare_with_reference(net.head(), random_input(SHAPE, seed=seeds[1]), ratio=ratio)


def test_conv_transpose_fed_by_input_refused() -> None:
    """The bounded input rule (4.3) is not implemented for ConvTranspose: one clear error."""
    net = Net(SHAPE, seed=3)
    conv_transpose(net, "k2-s2")
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match="ConvTranspose fed by the model input"):
        aeq_onnx.compile_explainer(net.head())
