"""Where an op under test sits in a tiny model: the builders and checks that the op modules of
``tests/rules/`` share (this module holds no op and no reference).

An op module writes its op as a *block* (``Net -> output name``) and places it: between two
convs below the split (relevance), in the head (VJP), or as the split tensor itself. Every
check compiles the model, runs a batch of 2 and compares it with the torch reference through
``tests.helpers.compare_with_reference`` (logits 1e-5; relevance, R0 and split gradient 1e-4 of
max). Seeds pick the weights and inputs and are part of each test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx
import pytest

from tests import helpers
from tests.helpers import Compared, Net, compare_with_reference, random_input

C = 6
SHAPE = (3, 10, 10)
FEATURES = 12
CLASSES = 5
Block = Callable[[Net], str]
Dense = Callable[[Net, int], str]


# ----------------------------------------------------------------------------- blocks


def simple(op: str, **attrs: object) -> Block:
    """``op(x)`` with attributes."""
    return lambda net: net.op(op, [net.cur], **attrs)


def const_operand(op: str, value: str, first: bool = False) -> Block:
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


def ints(net: Net, values: list[int]) -> str:
    """An int64 initializer."""
    return net.const(np.asarray(values, np.int64), "i")


# ----------------------------------------------------------------------------- models


@contextmanager
def building_at(opset: int | None) -> Iterator[None]:
    """Build (and shape-infer) models at ``opset`` (None: the helpers' default)."""
    before = helpers.OPSET
    helpers.OPSET = before if opset is None else opset
    try:
        yield
    finally:
        helpers.OPSET = before


def with_opset(model: onnx.ModelProto, opset: int | None) -> onnx.ModelProto:
    """The model with its opset import set to ``opset`` (unchanged for None)."""
    if opset is not None:
        model.opset_import[0].version = opset
    return model


def between_model(block: Block, seed: int) -> Net:
    """input → Conv3×3 → Relu (``early``) → Conv3×3 → block → Conv3×3 → Relu (the head follows).

    The block sits between two convs, so the hidden conv after it sees its output (negative
    values, inactive neurons)."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    block(net)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


def stem(seed: int, cin: int = 3, size: int = 10) -> Net:
    """input → Conv3×3 → Relu (``fork``)."""
    net = Net((cin, size, size), seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="fork")
    return net


ACTIVATIONS = {"relu": ("Relu", {}), "tanh": ("Tanh", {}), "leaky": ("LeakyRelu", {"alpha": 0.2})}


def mlp(dense: Dense, act: str = "relu", seed: int = 0, last: Dense | None = None) -> Net:
    """input [N, 12] → dense(16) → act → dense(10) → act (``hidden``) → last(5) = ``y``."""
    op, attrs = ACTIVATIONS[act]
    net = Net((FEATURES,), seed=seed)
    dense(net, 16)
    net.op(op, [net.cur], **attrs)
    dense(net, 10)
    net.op(op, [net.cur], name="hidden", **attrs)
    (last or dense)(net, CLASSES)
    net.op("Identity", [net.cur], name="y")
    return net


POOL_CIN = 3
POOL_SIZE = 11  # odd, so that ceil_mode changes the output size


def pool_case(case_id: str, op: str, kernel: int, stride: int,
              pads: int | tuple[int, ...] = 0, **attrs: int) -> Any:
    """A ``pytest.param(op, attrs)`` for a MaxPool / AveragePool geometry."""
    p = (pads,) * 4 if isinstance(pads, int) else tuple(pads)
    at = {"kernel_shape": [kernel, kernel], "strides": [stride, stride], "pads": list(p),
          **attrs}
    return pytest.param(op, at, id=case_id)


def pooled_model(op: str, attrs: dict, *, before_relu: bool = False, seed: int = 0) -> Net:
    """input → Conv3×3 → Relu (``early``) → Pool → Conv3×3 → Relu (the head follows);
    ``before_relu`` pools the raw conv output instead (negative values in the windows)."""
    net = Net((POOL_CIN, POOL_SIZE, POOL_SIZE), seed=seed)
    net.conv(6, 3, pads=1)
    if before_relu:
        net.op(op, [net.cur], **attrs)
        net.relu(name="early")
    else:
        net.relu(name="early")
        net.op(op, [net.cur], **attrs)
    net.conv(6, 3, pads=1)
    net.relu()
    return net


# ----------------------------------------------------------------------------- checks


def check_below(block: Block, *, seed: int = 1, x_seed: int = 2, scale: float = 3.0,
                build_at: int | None = None, opset: int | None = None,
                **kw: object) -> Compared:
    """The block between two convs below the default split: its relevance rule."""
    with building_at(build_at):
        model = with_opset(between_model(block, seed).head(), opset)
    return compare_with_reference(model, random_input(SHAPE, seed=x_seed, scale=scale),
                                  **kw)  # type: ignore[arg-type]


def check_above(block: Block, *, seed: int = 3, x_seed: int = 4, scale: float = 3.0,
                build_at: int | None = None, opset: int | None = None,
                **kw: object) -> Compared:
    """The block in the head (split at ``early``): its VJP (``split_gradient``, R0)."""
    with building_at(build_at):
        model = with_opset(between_model(block, seed).head(), opset)
    return compare_with_reference(model, random_input(SHAPE, seed=x_seed, scale=scale),
                                  layer="early", **kw)  # type: ignore[arg-type]


def check_at_split(block: Block, *, seed: int = 5, x_seed: int = 6, scale: float = 3.0,
                   build_at: int | None = None, opset: int | None = None,
                   **kw: object) -> Compared:
    """The block's output is the default split (right before the global pool): R0 = A · mean(g)
    with A of any sign."""
    with building_at(build_at):
        net = Net(SHAPE, seed=seed)
        net.conv(C, 3, pads=1)
        net.relu()
        net.conv(C, 3, pads=1)
        out = block(net)
        model = with_opset(net.head(), opset)
    got = compare_with_reference(model, random_input(SHAPE, seed=x_seed, scale=scale),
                                 **kw)  # type: ignore[arg-type]
    assert got.reference["split"] == out
    return got


def check_pool_steps_back(op: str, attrs: dict) -> Compared:
    """Spec 2: a window pool feeding the global pool is stepped over: the split is its input
    and the pool is differentiated in the head."""
    net = Net((POOL_CIN, POOL_SIZE, POOL_SIZE), seed=3)
    net.conv(6, 3, pads=1)
    net.relu(name="conv_out")
    net.op(op, [net.cur], **attrs)
    got = compare_with_reference(net.head(), random_input((POOL_CIN, POOL_SIZE, POOL_SIZE),
                                                          seed=4))
    assert got.reference["split"] == "conv_out"
    return got


def check_before_first_conv(*blocks: Block) -> Compared:
    """Elementwise ops between the model input and the first conv: the conv still gets the
    bounded rule (4.3) with l, h taken over its own (transformed) input."""
    net = Net(SHAPE, seed=7)
    for block in blocks:
        block(net)
    net.conv(C, 3, pads=1)
    net.relu()
    net.conv(C, 3, pads=1)
    net.relu()
    x = (10.0 + 5.0 * random_input(SHAPE, seed=8)).astype(np.float32)
    return compare_with_reference(net.head(), x)
