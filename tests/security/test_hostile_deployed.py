"""Deployed graphs meet the loader's safety checks (docs/deployed.md): onnxruntime's
com.microsoft domain is accepted for the quantized ops that have a rule only; any other custom
op, or a known op name in another domain, is still refused; a quantized graph whose op a rule
cannot take gets the typed error listing it; a graph valid but for its node order is sorted, a
real cycle is refused with a typed error naming its nodes."""

from __future__ import annotations

import onnx
import onnx.numpy_helper
import pytest
from onnx import helper

import aeq_onnx
from aeq_onnx.errors import CustomDomainError, ModelLoadError, UnsupportedOpError
from aeq_onnx.load.loading import load_model
from aeq_onnx.rules import registry
from tests.helpers import Net, random_input
from tests.helpers_deployed import compare_deployed, quantized


def qoperator_model() -> onnx.ModelProto:
    net = Net((3, 8, 8), seed=1)
    net.conv(4, 3, pads=1)
    net.relu()
    net.conv(4, 3, pads=1)
    net.relu()
    return quantized(net.head(classes=3), "QOperator")


def test_microsoft_ops_without_a_rule_are_refused() -> None:
    """A com.microsoft op we have no rule for (and a known name in that domain disguised as
    another): CustomDomainError naming it, before anything else runs."""
    model = qoperator_model()
    node = next(n for n in model.graph.node if n.op_type == "QLinearGlobalAveragePool")
    node.op_type = "QLinearReduceMean"
    with pytest.raises(CustomDomainError, match=r"com\.microsoft \(QLinearReduceMean\)"):
        aeq_onnx.compile_explainer(model)


def test_known_op_names_in_other_domains_are_refused() -> None:
    model = qoperator_model()
    node = next(n for n in model.graph.node if n.domain == "com.microsoft")
    node.domain = "com.evil"
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    with pytest.raises(CustomDomainError, match=r"com\.evil \(QGemm|com\.evil \(QLinear"):
        aeq_onnx.compile_explainer(model)


def test_plain_load_model_accepts_only_what_it_is_told() -> None:
    """The loader itself accepts no custom op; the compiler passes the rules' own list."""
    model = qoperator_model()
    with pytest.raises(CustomDomainError, match=r"com\.microsoft"):
        load_model(model)
    load_model(model, accepted_ops=registry.custom_ops())
    assert registry.custom_ops() == {"com.microsoft": frozenset({
        "DequantizeLinear", "QGemm", "QLinearAdd", "QLinearAveragePool", "QLinearConcat",
        "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearMul", "QLinearSigmoid",
        "QuantizeLinear"})}


def test_quantized_op_a_rule_cannot_take_gets_the_typed_error() -> None:
    """A QLinearAdd reading an operand with a scale other than the one it was quantized with
    (the float view reads each tensor once): UnsupportedOpError listing the node and why."""
    from tests.rules.test_qlinear_add import residual_net

    model = quantized(residual_net(3).head(), "QOperator")
    add = next(n for n in model.graph.node if n.op_type == "QLinearAdd")
    scale = next(t for t in model.graph.initializer if t.name == add.input[1])
    value = onnx.numpy_helper.to_array(scale) * 2
    model.graph.initializer.append(onnx.numpy_helper.from_array(value, "other_scale"))
    add.input[1] = "other_scale"
    with pytest.raises(UnsupportedOpError, match=r"QLinearAdd.*other than the one"):
        aeq_onnx.compile_explainer(model)


def unsorted_model() -> onnx.ModelProto:
    net = Net((3, 8, 8), seed=2)
    net.conv(4, 3, pads=1)
    net.relu()
    model = net.head(classes=3)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(reversed(nodes))
    return model


def test_node_order_is_sorted_not_refused() -> None:
    """Reversed node order (onnx's checker refuses it; onnxruntime accepts it): compiled,
    same logits and relevance as the sorted model."""
    model = unsorted_model()
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)
    x = random_input((3, 8, 8), batch=2)
    compare_deployed(model, x)


def test_a_real_cycle_is_refused() -> None:
    """Two nodes reading each other's output: ModelLoadError naming them."""
    model = unsorted_model()
    first, second = model.graph.node[-1], model.graph.node[-2]
    first.input[0] = second.output[0]  # the first conv now reads the relu's output
    with pytest.raises(ModelLoadError, match="has a cycle: nodes"):
        aeq_onnx.compile_explainer(model)
