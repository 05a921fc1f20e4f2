"""The reference's op registry holds together: every op with an aeq_onnx rule has an independent
reference, each in the test module named after its op (or its family), found without a list;
the interpreter fails loudly on an op without a reference or without a relevance rule."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from aeq_onnx.rules.registry import supported_ops
from tests.helpers import IR_VERSION, Net, random_input
from tests.reference import registry
from tests.reference.ae_torch import reference_explain

RULES_DIR = Path(__file__).resolve().parent / "rules"
#: test modules not named ``test_<op in snake case>``: ops that share their rule (and module)
#: with another op, and two op names written as one word
MODULE_OF = {
    "MatMul": "matmul",
    "PRelu": "prelu",
    "Dropout": "identity",
    "Flatten": "reshape",
    "Squeeze": "reshape",
    "Unsqueeze": "reshape",
    "LogSoftmax": "softmax",
    "Upsample": "resize",
}
#: every op type the reference interpreter ran before it was split per op (tests/models and the
#: fuzzers rely on them)
BEFORE_SPLIT = {
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Constant", "Conv",
    "ConvTranspose", "Div", "Dropout", "Elu", "Erf", "Flatten", "Gelu", "Gemm",
    "GlobalAveragePool", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
    "LeakyRelu", "LogSoftmax", "MatMul", "MaxPool", "Mish", "Mul", "PRelu", "Pad", "Pow",
    "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Selu", "Sigmoid", "Slice",
    "Softmax", "Softplus", "Split", "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze",
    "Upsample",
}


def module_of(op: str) -> str:
    """``BatchNormalization`` -> ``test_batch_normalization`` (``MODULE_OF`` for the others)."""
    return "test_" + MODULE_OF.get(op, re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op).lower())


def test_every_rule_has_a_reference() -> None:
    """Adding a rule without its test module (and reference) fails here."""
    missing = sorted(set(supported_ops()) - set(registry.registered()))
    assert missing == [], f"ops with a rule but no reference in tests/rules/: {missing}"


def test_no_op_of_the_monolithic_reference_was_lost() -> None:
    assert sorted(BEFORE_SPLIT - set(registry.registered())) == []


def test_each_reference_lives_in_its_op_module() -> None:
    misplaced = {}
    for op, entry in registry.registered().items():
        file = Path(entry.origin.rsplit(":", 1)[0])
        want = RULES_DIR / f"{module_of(op)}.py"
        if file != want:
            misplaced[op] = f"{file.name} (want {want.name})"
    assert misplaced == {}


def test_discovery_imports_every_op_module() -> None:
    registry.discover()
    modules = {p.stem for p in RULES_DIR.glob("test_*.py")}
    assert modules and all(f"tests.rules.{m}" in sys.modules for m in modules)


def test_traits_the_interpreter_asks_for() -> None:
    """Spec 2, 3, 4.3 and 4.7 ask these of the ops: declared where the ops are."""
    by_trait = {t: sorted(op for op, e in registry.registered().items() if t in e.traits)
                for t in registry.TRAITS}
    assert by_trait == {
        "linear": ["Conv", "ConvTranspose", "Gemm", "MatMul"],
        "dense": ["Gemm", "MatMul"],
        "window_pool": ["AveragePool", "MaxPool"],
        "softmax": ["LogSoftmax", "Softmax"],
    }


def _forward(ins: registry.Ins, node: registry.Node) -> torch.Tensor:
    return ins[0]  # type: ignore[return-value]


def _other_forward(ins: registry.Ins, node: registry.Node) -> torch.Tensor:
    return ins[0]  # type: ignore[return-value]


def test_registration_is_idempotent_but_not_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module imported twice (by pytest and by discovery) registers the same function again:
    fine. A second function for the same op: an error naming both."""
    monkeypatch.setattr(registry, "_REFERENCES", {})
    registry.reference("Probe")(_forward)
    registry.reference("Probe")(_forward)
    with pytest.raises(registry.DuplicateReference, match="two references for Probe"):
        registry.reference("Probe")(_other_forward)


def test_unknown_trait_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown traits"):
        registry.reference("Probe", traits=["nonnegative"])


def test_op_without_reference_is_reported() -> None:
    node = helper.make_node("NoSuchOp", ["input"], ["y"])
    graph = helper.make_graph([node], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = IR_VERSION
    with pytest.raises(NotImplementedError, match="does not support NoSuchOp"):
        reference_explain(model, np.zeros((1, 3), np.float32))


def test_forward_only_op_below_the_split_is_reported() -> None:
    """Softmax registers a forward only: on the relevance path the reference refuses it."""
    net = Net((3, 6, 6), seed=0)
    net.conv(4, 3, pads=1)
    net.relu()
    net.op("Softmax", [net.cur], axis=1)
    net.conv(4, 3, pads=1)
    net.relu()
    model: onnx.ModelProto = net.head()
    with pytest.raises(NotImplementedError, match="no relevance rule for Softmax"):
        reference_explain(model, random_input((3, 6, 6), batch=1))
