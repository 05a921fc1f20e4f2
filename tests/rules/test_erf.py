"""Erf: VJP ``g · 2/√π · exp(-x²)`` only (no relevance rule: exporters write exact Gelu as
``x · 0.5 · (1 + erf(x/√2))``, a Mul of the signal and a gate computed from it, and the gate
gets no relevance, ae-tokens T3). The exported Gelu subgraph in the head and below the split
matches the torch reference, and so does Keras 3's ``0.5·x·erfc(−x/√2)`` as tf2onnx writes
it (``erfc`` as ``1 − erf``, the gate starting with Neg); an Erf whose output reaches
relevance any other way is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import SHAPE, between_model, building_at


@reference("Erf")
def erf(ins: Ins, node: Node) -> torch.Tensor:
    """The error function (no relevance rule: supported above the split only)."""
    return torch.erf(ins[0])  # type: ignore[arg-type]


def gelu_erf_subgraph(net: Net) -> str:
    """What exporters write for exact Gelu: ``x · (0.5 · (1 + erf(x / √2)))``."""
    x = net.cur
    erf = net.op("Erf", [net.op("Div", [x, net.const(np.float32(np.sqrt(2.0)))])])
    half = net.op("Mul", [net.op("Add", [erf, net.const(np.float32(1.0))]),
                          net.const(np.float32(0.5))])
    return net.op("Mul", [x, half])


def test_gelu_erf_subgraph_above_split() -> None:
    """The exported exact-Gelu subgraph in the head: Erf/Div/Add/Mul VJPs and the product
    rule."""
    with building_at(20):
        model = between_model(gelu_erf_subgraph, seed=8).head()
    compare_with_reference(model, random_input(SHAPE, seed=9, scale=1.0), layer="early")


def test_gelu_erf_subgraph_below_split() -> None:
    """Below the split the gate gets nothing and the signal all of R (ae-tokens T3; the tanh
    form: test_pow.py)."""
    with building_at(20):
        model = between_model(gelu_erf_subgraph, seed=10).head()
    compare_with_reference(model, random_input(SHAPE, seed=11, scale=1.0))


def gelu_erfc_subgraph(net: Net) -> str:
    """What tf2onnx writes for Keras 3's exact Gelu, ``0.5·x·erfc(−x/√2)`` with ``erfc``
    mapped to ``1 − erf`` (fixtures/keras_convnext.py): ``(0.5·x) · (1 − erf(−x · 1/√2))``."""
    x = net.cur
    half_x = net.op("Mul", [net.const(np.float32(0.5)), x])
    scaled = net.op("Mul", [net.op("Neg", [x]), net.const(np.float32(1 / np.sqrt(2.0)))])
    erfc = net.op("Sub", [net.const(np.float32(1.0)), net.op("Erf", [scaled])])
    return net.op("Mul", [half_x, erfc])


def test_gelu_erfc_subgraph_above_split() -> None:
    """Keras' erfc Gelu in the head: Neg/Erf/Sub/Mul VJPs and the product rule."""
    with building_at(20):
        model = between_model(gelu_erfc_subgraph, seed=12).head()
    compare_with_reference(model, random_input(SHAPE, seed=13, scale=1.0), layer="early")


def test_gelu_erfc_subgraph_below_split() -> None:
    """Keras' erfc Gelu below the split: the gate (through Neg) gets nothing, the signal 0.5·x
    all of R."""
    with building_at(20):
        model = between_model(gelu_erfc_subgraph, seed=14).head()
    compare_with_reference(model, random_input(SHAPE, seed=15, scale=1.0))


def erf_not_a_gate(net: Net) -> str:
    """``x · (1 + erf(e))`` with ``e`` the earlier ReLU output: not a function of x alone."""
    gate = net.op("Add", [net.op("Erf", ["early"]), net.const(np.float32(1.0))])
    return net.op("Mul", [net.cur, gate])


def test_erf_outside_a_gelu_below_split_refused() -> None:
    """``x · (1 + erf(e))``, e another tensor: no GELU gate, a product of two signals: the Mul
    is refused below the split."""
    with building_at(20):
        model = between_model(erf_not_a_gate, seed=10).head()
    with pytest.raises(UnsupportedOpError, match="neither operand is a gate"):
        aeq_onnx.compile_explainer(model)
