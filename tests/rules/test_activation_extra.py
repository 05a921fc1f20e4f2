"""More pass-through activations (spec 4.5), explainer vs torch reference: HardSigmoid,
HardSwish, PRelu (per-channel and scalar slope), Elu, Selu, Gelu (opset 20, exact and tanh),
Softplus, Mish (opset 18) and InstanceNormalization — below the split (relevance passes
through unchanged) and above it (exact VJP; InstanceNormalization has none and is refused)."""

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
Act = Callable[[Net], str]


def simple(op: str, **attrs: object) -> Act:
    return lambda net: net.op(op, [net.cur], **attrs)


def prelu(per_channel: bool) -> Act:
    def add(net: Net) -> str:
        c = net.shape()[0]
        slope = np.linspace(-0.5, 0.8, c).reshape(-1, 1, 1) if per_channel else np.float32(0.25)
        return net.op("PRelu", [net.cur, net.const(slope)])

    return add


def instance_norm(net: Net) -> str:
    c = net.shape()[0]
    scale = net.const(net.rng.uniform(0.5, 1.5, c), "in_scale")
    bias = net.const(0.1 * net.rng.standard_normal(c), "in_bias")
    return net.op("InstanceNormalization", [net.cur, scale, bias], epsilon=1e-5)


#: name -> (act, model opset)
ACTS: dict[str, tuple[Act, int]] = {
    "hardsigmoid": (simple("HardSigmoid"), 17),
    "hardsigmoid-0.3-0.4": (simple("HardSigmoid", alpha=0.3, beta=0.4), 17),
    "hardswish": (simple("HardSwish"), 17),
    "prelu-channel": (prelu(True), 17),
    "prelu-scalar": (prelu(False), 17),
    "elu": (simple("Elu"), 17),
    "elu-0.5": (simple("Elu", alpha=0.5), 17),
    "selu": (simple("Selu"), 17),
    "gelu": (simple("Gelu"), 20),
    "gelu-tanh": (simple("Gelu", approximate="tanh"), 20),
    "softplus": (simple("Softplus"), 17),
    "mish": (simple("Mish"), 18),
    "instancenorm": (instance_norm, 17),
}
NO_VJP = {"instancenorm"}
#: ORT's float32 tanh-Gelu rounds x < -5 to -0 (float64 torch: -1e-9...): a conv window of
#: such near-zero inputs gets all relevance in one implementation only; keep x moderate.
SCALE = {"gelu-tanh": 1.0}


@pytest.fixture(autouse=True)
def _newest_opset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build every model at opset 20 while shape-inferring (Gelu, Mish), then set its own."""
    monkeypatch.setattr(helpers, "OPSET", 20)


def with_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    model.opset_import[0].version = opset
    return model


def between_model(act: Act, seed: int) -> Net:
    """input → Conv3×3 → Relu (``early``) → Conv3×3 → act → Conv3×3 → Relu → head."""
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
    act, opset = ACTS[name]
    model = with_opset(between_model(act, seed=1).head(), opset)
    compare_with_reference(model, random_input(SHAPE, seed=2, scale=SCALE.get(name, 3.0)))


@pytest.mark.parametrize("name", sorted(set(ACTS) - NO_VJP))
def test_activation_above_split(name: str) -> None:
    """The act lies in the head: its exact VJP (``split_gradient``, R0)."""
    act, opset = ACTS[name]
    model = with_opset(between_model(act, seed=3).head(), opset)
    compare_with_reference(model, random_input(SHAPE, seed=4, scale=3.0), layer="early")


@pytest.mark.parametrize("name", ["hardswish", "prelu-channel", "gelu", "mish"])
def test_activation_at_split(name: str) -> None:
    """The split tensor is the act's output (right before the global pool)."""
    act, opset = ACTS[name]
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    net.relu()
    net.conv(C, 3, pads=1)
    out = act(net)
    got = compare_with_reference(with_opset(net.head(), opset),
                                 random_input(SHAPE, seed=6, scale=3.0))
    assert got.reference["split"] == out


def test_instance_norm_above_split_is_refused() -> None:
    """InstanceNormalization has no VJP: in the head it is listed as unsupported."""
    model = between_model(instance_norm, seed=7).head()
    with pytest.raises(UnsupportedOpError, match="InstanceNormalization"):
        aeq_onnx.compile_explainer(model, layer="early")


def gelu_erf_subgraph(net: Net) -> str:
    """What exporters write for exact Gelu: ``x · (0.5 · (1 + erf(x / √2)))``."""
    x = net.cur
    erf = net.op("Erf", [net.op("Div", [x, net.const(np.float32(np.sqrt(2.0)))])])
    half = net.op("Mul", [net.op("Add", [erf, net.const(np.float32(1.0))]),
                          net.const(np.float32(0.5))])
    return net.op("Mul", [x, half])


def gelu_tanh_subgraph(net: Net) -> str:
    """Tanh Gelu as exported: ``0.5·x · (1 + tanh(√(2/π) · (x + 0.044715·x³)))``."""
    x = net.cur
    cube = net.op("Mul", [net.op("Pow", [x, net.const(np.float32(3.0))]),
                          net.const(np.float32(0.044715))])
    inner = net.op("Mul", [net.op("Add", [x, cube]), net.const(np.float32(np.sqrt(2 / np.pi)))])
    one_plus = net.op("Add", [net.op("Tanh", [inner]), net.const(np.float32(1.0))])
    return net.op("Mul", [net.op("Mul", [x, net.const(np.float32(0.5))]), one_plus])


SUBGRAPHS: dict[str, Act] = {"gelu-erf-subgraph": gelu_erf_subgraph,
                             "gelu-tanh-subgraph": gelu_tanh_subgraph}


@pytest.mark.parametrize("name", list(SUBGRAPHS))
def test_gelu_subgraph_above_split(name: str) -> None:
    """Exported Gelu subgraphs in the head: Erf/Pow/Tanh VJPs and the product rule."""
    model = between_model(SUBGRAPHS[name], seed=8).head()
    compare_with_reference(model, random_input(SHAPE, seed=9, scale=1.0), layer="early")


@pytest.mark.parametrize("name", list(SUBGRAPHS))
def test_gelu_subgraph_below_split_refused(name: str) -> None:
    """Below the split the final Mul multiplies two tensors, neither a gate: refused (and
    Erf/Pow have no relevance rule), all listed in one error."""
    model = between_model(SUBGRAPHS[name], seed=10).head()
    with pytest.raises(UnsupportedOpError, match="neither operand is a gate"):
        aeq_onnx.compile_explainer(model)
