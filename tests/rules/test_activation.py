"""Pass-through ops (spec 4.5), explainer vs torch reference: Relu, Clip (ReLU6 and others),
LeakyRelu, Sigmoid, Tanh, BatchNormalization kept unfolded (after a non-conv), Identity,
Dropout, and Add/Sub/Mul/Div with a constant operand — between convs, in front of the first conv
(input normalisation: the bounded rule sees the transformed input), at the split itself, and
above the split (VJP)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.helpers import Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 10, 10)
Act = Callable[[Net], str]


def simple(op: str, **attrs: object) -> Act:
    return lambda net: net.op(op, [net.cur], **attrs)


def clip(lo: float | None, hi: float | None) -> Act:
    def add(net: Net) -> str:
        ins = [net.cur, net.const(np.float32(lo)) if lo is not None else ""]
        if hi is not None:
            ins.append(net.const(np.float32(hi)))
        return net.op("Clip", ins)

    return add


def const_op(op: str, value: str, first: bool = False) -> Act:
    """``x op c`` (``c op x`` when ``first``); ``value``: scalar, per-channel or full map."""

    def add(net: Net) -> str:
        shape = net.shape()
        c = {"scalar": np.float32(0.7),
             "channel": np.linspace(0.5, 1.5, shape[0]).reshape(1, -1, 1, 1),
             "chw": np.linspace(0.5, 1.5, shape[0]).reshape(-1, 1, 1),
             "map": 0.5 + net.rng.random(shape)}[value]
        name = net.const(c)
        return net.op(op, [name, net.cur] if first else [net.cur, name])

    return add


def dropout(net: Net) -> str:
    return net.op("Dropout", [net.cur])


ACTS: dict[str, Act] = {
    "relu": simple("Relu"),
    "relu6": clip(0.0, 6.0),
    "clip-0-0.5": clip(0.0, 0.5),
    "clip-min-only": clip(-0.2, None),
    "clip-sym-1": clip(-1.0, 1.0),
    "leaky-0.1": simple("LeakyRelu", alpha=0.1),
    "leaky-default": simple("LeakyRelu"),
    "sigmoid": simple("Sigmoid"),
    "tanh": simple("Tanh"),
    "batchnorm": lambda net: net.batchnorm(),  # right after a conv: folded into it
    "relu-batchnorm": lambda net: (net.relu(), net.batchnorm())[1],  # kept unfolded
    "identity": simple("Identity"),
    "dropout": dropout,
    "add-scalar": const_op("Add", "scalar"),
    "add-channel": const_op("Add", "channel"),
    "sub-channel": const_op("Sub", "channel"),
    "sub-const-minus-x": const_op("Sub", "channel", first=True),
    "mul-scalar": const_op("Mul", "scalar"),
    "mul-chw": const_op("Mul", "chw"),
    "mul-const-times-x": const_op("Mul", "map", first=True),
    "div-channel": const_op("Div", "channel"),
    "div-map": const_op("Div", "map"),
}


def between_model(act: Act, seed: int = 0) -> Net:
    """input → Conv3×3 → Relu (``early``) → Conv3×3 → act → Conv3×3 → Relu → head.

    The act sits between two convs, so the hidden conv after it sees its output (negative
    values for Tanh/LeakyRelu/BN/..., inactive neurons)."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    act(net)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_below_split(name: str) -> None:
    """Rule 4.5: the act passes relevance through unchanged, between two convs."""
    net = between_model(ACTS[name], seed=1)
    compare_with_reference(net.head(), random_input(SHAPE, seed=2, scale=3.0))


@pytest.mark.parametrize("name", list(ACTS))
def test_activation_above_split(name: str) -> None:
    """The act lies in the head: its VJP (``split_gradient``, R0)."""
    net = between_model(ACTS[name], seed=3)
    compare_with_reference(net.head(), random_input(SHAPE, seed=4, scale=3.0), layer="early")


def test_batchnorm_after_relu_stays_unfolded() -> None:
    """BN after a non-conv cannot be folded: the explainer keeps it and passes relevance."""
    net = between_model(ACTS["relu-batchnorm"], seed=11)
    got = compare_with_reference(net.head(), random_input(SHAPE, seed=12))
    assert "BatchNormalization" in {n.op_type for n in got.explainer.graph.node}


@pytest.mark.parametrize("name", ["relu6", "leaky-0.1", "sigmoid", "tanh", "relu-batchnorm",
                                  "sub-channel", "mul-scalar"])
def test_activation_at_split(name: str) -> None:
    """The split tensor is the act's output (the default split: right before the global
    pool), so R0 = A · mean(g) with A of any sign."""
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    net.relu()
    net.conv(C, 3, pads=1)
    act_out = ACTS[name](net)
    got = compare_with_reference(net.head(), random_input(SHAPE, seed=6, scale=3.0), ratio=1.5)
    assert got.reference["split"] == act_out


NORMALISE = {
    "sub-div": [const_op("Sub", "channel"), const_op("Div", "channel")],
    "mul-add": [const_op("Mul", "scalar"), const_op("Add", "scalar")],
    "div-sub-scalar": [const_op("Div", "scalar"), const_op("Sub", "scalar")],
    "const-minus-x": [const_op("Sub", "chw", first=True)],
    "batchnorm": [lambda net: net.batchnorm()],
    "tanh": [simple("Tanh")],
}


@pytest.mark.parametrize("name", list(NORMALISE))
def test_input_preprocessing_before_first_conv(name: str) -> None:
    """Elementwise ops between the model input and the first conv: the conv still gets the
    bounded rule (4.3) with l, h taken over its own (transformed) input."""
    net = Net(SHAPE, seed=7)
    for op in NORMALISE[name]:
        op(net)
    net.conv(C, 3, pads=1)
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    x = (10.0 + 5.0 * random_input(SHAPE, seed=8)).astype(np.float32)
    compare_with_reference(net.head(), x)


def test_chain_of_pass_through_ops() -> None:
    """Several pass-through ops in a row below the split, with BN kept unfolded after Relu."""
    net = Net(SHAPE, seed=9)
    net.conv(C, 3, pads=1)
    net.relu()
    net.batchnorm()
    net.op("LeakyRelu", [net.cur], alpha=0.3)
    net.conv(C, 3, pads=1)
    ACTS["relu6"](net)
    ACTS["mul-chw"](net)
    net.op("Sigmoid", [net.cur])
    net.conv(C, 1)
    net.op("Tanh", [net.cur])
    compare_with_reference(net.head(), random_input(SHAPE, seed=10, scale=2.0), ratio=1.0)


@pytest.mark.parametrize("op", ["Identity", "Dropout"])
def test_split_at_identity_output(op: str) -> None:
    """The default split is the output of an Identity/Dropout right before the global pool:
    the same numbers as the tensor it copies (canonicalisation strips the node, so the
    recorded split name may differ)."""
    net = Net(SHAPE, seed=13)
    net.conv(C, 3, pads=1)
    net.relu()
    net.op(op, [net.cur], name="features")
    compare_with_reference(net.head(), random_input(SHAPE, seed=14), split_name=False)


@pytest.mark.parametrize("op", ["Identity", "Dropout"])
def test_layer_named_at_identity_output(op: str) -> None:
    """``layer=`` naming the output of an Identity/Dropout of the user's model.

    The tensor exists in the model the user passed, but ``strip_identity`` removes the node
    (rewiring its consumers to its input) before the split is looked up, so
    ``compile_explainer`` raises ``LayerError: layer 'features' is not a tensor of the model``.
    """
    net = Net(SHAPE, seed=15)
    net.conv(C, 3, pads=1)
    net.relu()
    net.op(op, [net.cur], name="features")
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(SHAPE, seed=16), layer="features",
                           split_name=False)
