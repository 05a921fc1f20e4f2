"""The op registries hold together. The reference's: every op with an aeq_onnx rule has an
independent reference, each in the test module named after its op (or its family), found
without a list; the interpreter fails loudly on an op without a reference or without a relevance
rule. The rules': each rule lives in the module named after its op, rule modules and test
modules correspond one to one, both are found without a list, and the traits declared on the
rules are the ones the graph questions used to list (and agree with the reference's)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import aeq_onnx.rules
from aeq_onnx.compile.prepare import prepare
from aeq_onnx.errors import DuplicateRuleError
from aeq_onnx.ir.traits import TRAITS
from aeq_onnx.rules import registry as rule_registry
from aeq_onnx.rules.base import OpRule, OpTraits
from aeq_onnx.rules.identity import IdentityRule
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
    "Size": "shape",
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
        "linear": ["Conv", "ConvInteger", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger",
                   "QGemm", "QLinearConv", "QLinearMatMul"],
        "dense": ["Gemm", "MatMul", "MatMulInteger", "QGemm", "QLinearMatMul"],
        "window_pool": ["AveragePool", "MaxPool", "QLinearAveragePool"],
        "softmax": ["LogSoftmax", "Softmax"],
        "runtime_parameters": ["DynamicQuantizeLinear"],
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


# ------------------------------------------------- the rule side: one op = one module, traits

RULES_PACKAGE = Path(aeq_onnx.rules.__file__).resolve().parent
#: test modules with a reference but no rule module: ops the converters remove before any rule
#: sees them
#: ops the reference runs without a rule (their values never carry a flow): Constant, and the
#: shape/mask arithmetic of exported token models (issue 21)
REFERENCE_ONLY = {"test_constant", "test_constant_of_shape", "test_einsum", "test_equal",
                  "test_exp",
                  "test_mod", "test_not", "test_range", "test_reduce_l2", "test_reduce_prod",
                  "test_scatter_nd",
                  "test_sqrt", "test_where"}


def rule_module_of(op: str) -> str:
    """``aeq_onnx.rules.<op in snake case>``: where the rule (or declaration) of ``op`` lives."""
    return "aeq_onnx.rules." + module_of(op).removeprefix("test_")


def test_each_rule_lives_in_the_module_named_after_its_op() -> None:
    """``@register("MaxPool")`` sits in rules/max_pool.py, its reference in test_max_pool.py."""
    owners = [(e.op_type, type(e.rule).__module__) for e in rule_registry.entries()]
    owners += [(op, type(d).__module__) for op, d in rule_registry.declarations()]
    assert len(owners) > 40
    assert [f"{op}: {mod}" for op, mod in owners if mod != rule_module_of(op)] == []


def test_rule_modules_and_test_modules_correspond() -> None:
    """rules/<m>.py <-> tests/rules/test_<m>.py, both ways; every rule module registers."""
    rule_modules = {p.stem for p in RULES_PACKAGE.glob("*.py")} - {"__init__"}
    rule_modules -= aeq_onnx.rules.MACHINERY
    tests = {p.stem for p in RULES_DIR.glob("test_*.py")}
    assert sorted(m for m in rule_modules if f"test_{m}" not in tests) == []
    assert sorted(t for t in tests - REFERENCE_ONLY if t[5:] not in rule_modules) == []
    owners = {type(e.rule).__module__ for e in rule_registry.entries()}
    owners |= {type(d).__module__ for _, d in rule_registry.declarations()}
    assert sorted(m for m in rule_modules if f"aeq_onnx.rules.{m}" not in owners) == []


def test_rules_are_discovered_without_a_list() -> None:
    """Every module beside the machinery is imported by the package; shared/ is not a rule."""
    on_disk = sorted(p.stem for p in RULES_PACKAGE.glob("*.py")
                     if p.stem not in {"__init__", *aeq_onnx.rules.MACHINERY})
    assert list(aeq_onnx.rules.RULE_MODULES) == on_disk
    assert all(f"aeq_onnx.rules.{m}" in sys.modules for m in on_disk)
    assert "shared" not in aeq_onnx.rules.RULE_MODULES
    source = (RULES_PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert not re.search(r"from aeq_onnx\.rules import \(|import aeq_onnx\.rules\.\w", source)


#: What the rule classes declared when the traits moved onto them, trait by trait: the op
#: lists graph.py, planning.py and rules/mul.py held before (Abs and GlobalMaxPool, listed there
#: without a rule, left with them).
RULE_TRAITS = {
    "linear": ["Conv", "ConvTranspose", "Gemm", "MatMul"],
    "dense": ["Gemm", "MatMul"],
    "window_pool": ["AveragePool", "MaxPool"],
    "softmax": ["LogSoftmax", "Softmax"],
    "nonneg_output": ["HardSigmoid", "Relu", "Sigmoid", "Softplus"],
    "sign_keeping": ["AveragePool", "Concat", "Dropout", "Flatten", "GlobalAveragePool",
                     "Identity", "MaxPool", "ReduceMax", "ReduceMean", "Reshape", "Squeeze",
                     "Transpose", "Unsqueeze"],
    "gate": ["HardSigmoid", "Sigmoid"],
    # added with the deployed graphs (issue 22); no op of PINNED declares them
    "quantization": [],
    "dequantize": [],
    "runtime_parameters": [],
    # added with the token rules (issue 21); MatMul is ``token`` per node (attention mixing)
    "token": ["LayerNormalization"],
    "token_pool": ["Gather", "ReduceMax", "ReduceMean", "Slice"],
}


#: The ops with a rule or a declaration at that time (a new op's traits are its own affair).
PINNED = {
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Conv",
    "ConvTranspose", "Div", "Dropout", "Elu", "Erf", "Flatten", "Gelu", "Gemm",
    "GlobalAveragePool", "HardSigmoid", "HardSwish", "Identity", "InstanceNormalization",
    "LeakyRelu", "LogSoftmax", "MatMul", "MaxPool", "Mish", "Mul", "PRelu", "Pad", "Pow",
    "ReduceMax", "ReduceMean", "Relu", "Reshape", "Resize", "Selu", "Sigmoid", "Slice",
    "Softmax", "Softplus", "Split", "Squeeze", "Sub", "Sum", "Tanh", "Transpose", "Unsqueeze",
}


def test_traits_declared_on_the_rules() -> None:
    """Same answers as the old lists (a trait inherited by mistake, e.g. by a subclass, fails)."""
    assert set(RULE_TRAITS) == TRAITS
    known = set(supported_ops()) | {op for op, _ in rule_registry.declarations()}
    assert sorted(PINNED - known) == []
    got = {op: sorted(rule_registry.traits_of(op)) for op in sorted(PINNED)}
    want = {op: sorted(t for t, ops in RULE_TRAITS.items() if op in ops) for op in sorted(PINNED)}
    assert got == want


def test_rule_and_reference_agree_on_the_shared_traits() -> None:
    """The two implementations answer the spec's questions (2, 3, 4.3, 4.7) for the same ops."""
    for trait in registry.TRAITS & TRAITS:
        by_reference = sorted(op for op, e in registry.registered().items()
                              if trait in e.traits)
        assert rule_registry.ops_with_trait(trait) == by_reference, trait


def test_clip_is_nonnegative_per_node() -> None:
    """Clip refines its traits per node: ``nonneg_output`` only with a constant min >= 0."""
    net = Net((3, 6, 6), seed=0)
    net.conv(4, 3, pads=1)
    net.op("Clip", [net.cur, net.const(np.float32(0.0)), net.const(np.float32(6.0))])
    net.op("Clip", [net.cur, net.const(np.float32(-1.0)), net.const(np.float32(6.0))])
    view = prepare(net.head()).view
    clips = [n for n in view.nodes if n.op == "Clip"]
    assert [sorted(view.traits(n)) for n in clips] == [["nonneg_output"], []]
    assert [view.is_nonnegative(n.outputs[0].name) for n in clips] == [True, False]


class _Probe(OpRule):
    traits = frozenset({"nonnegative"})


class _Declared(OpTraits):
    traits = frozenset({"softmax"})


def test_unknown_rule_trait_and_double_declarations_are_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rule_registry, "_REGISTRY", dict(rule_registry._REGISTRY))
    monkeypatch.setattr(rule_registry, "_DECLARED", dict(rule_registry._DECLARED))
    with pytest.raises(ValueError, match="unknown traits"):
        rule_registry.register("Probe")(_Probe)
    with pytest.raises(DuplicateRuleError, match="Relu is declared"):
        rule_registry.declare("Relu")(_Declared)
    with pytest.raises(DuplicateRuleError, match="LogSoftmax is declared"):
        rule_registry.declare("LogSoftmax")(_Declared)
    with pytest.raises(DuplicateRuleError, match="declared without a rule"):
        rule_registry.register("LogSoftmax")(IdentityRule)
