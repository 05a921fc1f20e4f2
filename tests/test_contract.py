"""The explainer model's contract: I/O names and types, metadata, checker, errors, registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import aeq_onnx
from aeq_onnx.errors import (
    AeqError,
    DuplicateRuleError,
    InputError,
    LayerError,
    UnsupportedOpError,
)
from aeq_onnx.rules import registry
from aeq_onnx.rules.identity import IdentityRule
from tests.helpers_models import small_cnn

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"


def _io(model: onnx.ModelProto, which: str) -> dict[str, tuple[int, list[object]]]:
    values = model.graph.input if which == "in" else model.graph.output
    return {v.name: (v.type.tensor_type.elem_type,
                     [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values}


def test_inputs_outputs_and_metadata() -> None:
    """Inputs: the data input and target; outputs: the four contract tensors; metadata."""
    model = aeq_onnx.compile_explainer(GOLDEN / "vgg_mini.onnx", ratio=1.5)
    assert _io(model, "in") == {"input": (1, ["batch", 3, 32, 32]), "target": (7, ["batch"])}
    assert _io(model, "out") == {
        "logits": (1, ["batch", 10]), "target_class": (7, ["batch"]),
        "relevance": (1, ["batch", 3, 32, 32]), "initial_relevance": (1, ["batch", 16, 16, 16])}
    meta = {p.key: p.value for p in model.metadata_props}
    digest = __import__("hashlib").sha256((GOLDEN / "vgg_mini.onnx").read_bytes()).hexdigest()
    assert meta == {
        "aeq_onnx.method": "ae", "aeq_onnx.ratio": "1.5", "aeq_onnx.add_rule": "residual",
        "aeq_onnx.split": "/features/features.8/Relu_output_0", "aeq_onnx.input": "input",
        "aeq_onnx.version": aeq_onnx.__version__, "aeq_onnx.source_sha256": digest}
    onnx.checker.check_model(model, full_check=True)
    assert all(op.domain in ("", "ai.onnx") for op in model.opset_import)
    assert model.ir_version <= 10


def test_explainer_file_runs_with_plain_onnxruntime(tmp_path: Path) -> None:
    """A saved explainer reloads as an explainer (no recompilation) and gives the same result."""
    batch = np.load(GOLDEN / "res_mini.npz")["input"]
    first = aeq_onnx.Explainer(GOLDEN / "res_mini.onnx", device="cpu")
    first.save(tmp_path / "e.onnx")
    again = aeq_onnx.Explainer(tmp_path / "e.onnx", device="cpu", ratio=1.0)
    assert again.metadata["ratio"] == "2"
    np.testing.assert_array_equal(first.explain(batch).relevance, again.explain(batch).relevance)


def test_unsupported_ops_listed_together() -> None:
    """Every unsupported node is listed (op, name, opset) in one typed error, before emitting."""
    model = small_cnn([("Sin", "sine"), ("Cos", "cosine")])
    with pytest.raises(UnsupportedOpError) as info:
        aeq_onnx.compile_explainer(model)
    message = str(info.value)
    assert "Sin (node 'sine', opset 17)" in message and "Cos (node 'cosine', opset 17)" in message
    assert "Supported ops:" in message and "Conv" in message
    assert [n[:2] for n in info.value.nodes] == [("Sin", "sine"), ("Cos", "cosine")]


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"ratio": 2.5}, AeqError), ({"ratio": 0.5}, AeqError), ({"add_rule": "avg"}, AeqError),
    ({"layer": "no_such_tensor"}, LayerError), ({"layer": "w"}, LayerError),
    ({"output": "nope"}, LayerError),
], ids=["ratio-high", "ratio-low", "add-rule", "layer-missing", "layer-constant", "output"])
def test_bad_options(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        aeq_onnx.compile_explainer(small_cnn(), **kwargs)


@pytest.mark.parametrize(("batch", "target", "match"), [
    (np.zeros((2, 3, 8, 8), np.int32), None, "dtype"),
    (np.zeros((2, 3, 9, 8), np.float32), None, "shape"),
    (np.zeros((3, 8, 8), np.float32), None, "rank"),
    (np.zeros((0, 3, 8, 8), np.float32), None, "empty"),
    (np.full((1, 3, 8, 8), np.nan, np.float32), None, "NaN"),
    (np.zeros((2, 3, 8, 8), np.float32), 4, "out of range"),
    (np.zeros((2, 3, 8, 8), np.float32), -2, "out of range"),
    (np.zeros((2, 3, 8, 8), np.float32), [1, 2, 3], "shape"),
], ids=["int-dtype", "wrong-size", "wrong-rank", "empty", "nan", "target-high", "target-neg",
        "target-count"])
def test_bad_inputs(batch: np.ndarray, target: object, match: str) -> None:
    explainer = aeq_onnx.Explainer(small_cnn(), device="cpu")
    with pytest.raises(InputError, match=match):
        explainer.explain(batch, target=target)  # type: ignore[arg-type]


def test_float64_input_is_accepted() -> None:
    explainer = aeq_onnx.Explainer(small_cnn(), device="cpu")
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8))
    np.testing.assert_allclose(explainer.explain(x).relevance,
                               explainer.explain(x.astype(np.float32)).relevance)


def test_reserved_names_in_model_are_renamed() -> None:
    """A model whose tensors are called 'relevance' or 'target_class' still compiles."""
    model = small_cnn([("Identity", "relevance"), ("Relu", "target_class")])
    for node in model.graph.node:
        node.output[:] = [o.replace("_out", "") for o in node.output]
        node.input[:] = [i.replace("_out", "") for i in node.input]
    result = aeq_onnx.Explainer(model, device="cpu").explain(np.ones((1, 3, 8, 8), np.float32))
    assert np.isfinite(result.relevance).all()


def test_duplicate_rule_rejected() -> None:
    with pytest.raises(DuplicateRuleError, match="two rules for Relu"):
        registry.register("Relu", since=5)(IdentityRule)


def test_lookup_by_opset_range() -> None:
    assert isinstance(registry.lookup("Identity", 17), IdentityRule)
    with pytest.raises(registry.RuleNotFound):
        registry.lookup("LSTM", 17)
    with pytest.raises(registry.RuleNotFound):
        registry.lookup("MaxPool", 1)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_head_explains_the_logits(op: str) -> None:
    """A model ending in (Log)Softmax: the explainer differentiates and returns its input."""
    plain = small_cnn()
    with_softmax = small_cnn()
    with_softmax.graph.node[-1].output[0] = "scores"
    with_softmax.graph.node.append(onnx.helper.make_node(op, ["scores"], ["out"], axis=1))
    x = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    a = aeq_onnx.Explainer(plain, device="cpu").explain(x)
    b = aeq_onnx.Explainer(with_softmax, device="cpu").explain(x)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-6)
    np.testing.assert_allclose(a.relevance, b.relevance, rtol=1e-6)
