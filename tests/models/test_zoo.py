"""ONNX Model Zoo-era classifiers (``fixtures/zoo_models.py``) compile and explain: the
hand-built CaffeNet-style graphs at opsets 7, 8 and 9 (IR 3, weights as inputs, LRN,
BatchNormalization with ``spatial``, Upsample, Dropout with masks, Sum, Reshape from a
Constant, Gemm transB, Softmax on 2-D) and a torch ``nn.LocalResponseNorm`` net exported at
opset 9. Logits equal onnxruntime's on the original file; relevance equals the independent
torch reference (``tests/reference``) on the same file, or, for the torch export (whose LRN
torch writes as Div of two tensors, which the reference has no rule for), on the same file with
each LRN written back as one node by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

import aeq_onnx  # noqa: E402
from aeq_onnx.cli import main  # noqa: E402
from fixtures import zoo_models  # noqa: E402
from tests.helpers import (  # noqa: E402
    assert_rel_close,
    check_logits,
    compare_with_reference,
    explain,
    random_input,
)
from tests.reference.ae_torch import reference_explain  # noqa: E402

SHAPE = (3, zoo_models.SIZE, zoo_models.SIZE)


@pytest.mark.parametrize("opset", zoo_models.OPSETS, ids=lambda v: f"opset{v}")
@pytest.mark.parametrize("target", [None, [3]], ids=["top1", "class3"])
def test_caffenet_graph_matches_reference(opset: int, target: list[int] | None) -> None:
    """Compiled from the opset-7/8/9 file as written; logits vs onnxruntime, relevance, R0 and
    the split gradient vs the reference (1e-4 of max)."""
    model = zoo_models.caffenet_graph(opset)
    compare_with_reference(model, random_input(SHAPE, batch=1, seed=opset, scale=2.0),
                           target=target)


def test_caffenet_graph_ops_are_the_zoo_forms() -> None:
    """The fixtures hold the forms they claim (a guard against a fixture drifting)."""
    ops = {v: {(n.op_type, len(n.output), tuple(a.name for a in n.attribute))
               for n in zoo_models.caffenet_graph(v).graph.node} for v in zoo_models.OPSETS}
    assert ("BatchNormalization", 1, ("epsilon", "spatial")) in ops[7]
    assert ("Upsample", 1, ("mode", "scales")) in ops[7] | ops[8]
    assert ("Upsample", 1, ("mode",)) in ops[9]
    assert ("Dropout", 2, ("ratio",)) in ops[9]
    for version in zoo_models.OPSETS:
        names = {op for op, _, _ in ops[version]}
        assert {"LRN", "Sum", "Constant", "Reshape", "Gemm", "Softmax"} <= names
    model = zoo_models.caffenet_graph(7)
    assert model.ir_version == 3
    assert len(model.graph.input) == 1 + len(model.graph.initializer)


def lrn_by_hand(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the torch export with each LRN (its Div, in order) replaced by one LRN node
    with the module's parameters, and the nodes nothing reads any more removed; written
    without aeq_onnx's fuse_lrn pass."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    divs = [n for n in graph.node if n.op_type == "Div"]
    assert len(divs) == len(zoo_models.LRN_PARAMS)
    for div, (size, alpha, beta, bias) in zip(divs, zoo_models.LRN_PARAMS, strict=True):
        lrn = helper.make_node("LRN", [div.input[0]], [div.output[0]], size=size, alpha=alpha,
                               beta=beta, bias=bias)
        graph.node.insert(list(graph.node).index(div), lrn)
        graph.node.remove(div)
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not set(n.output) & read]
        if not dead:
            return model
        for node in dead:
            graph.node.remove(node)


def test_torch_lrn_export_matches_reference() -> None:
    """torch's opset-9 export (LRN as Mul/Pad/AveragePool/Pow/Div): compiles (fused into LRN
    nodes), logits equal onnxruntime's on the export, relevance the reference's on the same
    graph with the LRNs written back by hand."""
    model = zoo_models.export_lrn_torch()
    assert "LRN" not in {n.op_type for n in model.graph.node}
    x = random_input(SHAPE, batch=1, seed=5, scale=2.0)
    explainer = aeq_onnx.compile_explainer(model)
    out = explain(explainer, x)
    check_logits(model, x, out["logits"])
    by_hand = lrn_by_hand(model)
    check_logits(by_hand, x, out["logits"])  # the by-hand graph computes the same
    reference = reference_explain(by_hand, x)
    np.testing.assert_array_equal(out["target_class"], reference["target"])
    assert_rel_close(out["initial_relevance"], reference["R0"], what="R0")
    assert_rel_close(out["relevance"], reference["R"], what="relevance")


def test_zoo_graph_explains_from_the_cli(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``aeq build`` and ``aeq explain`` on the opset-7 file (isolated checks, the default)."""
    path = tmp_path / "caffenet-opset7.onnx"
    onnx.save(zoo_models.caffenet_graph(7), path)
    np.save(tmp_path / "x.npy", random_input(SHAPE, batch=1, seed=1))
    assert main(["build", str(path), "-o", str(tmp_path / "e.onnx")]) == 0
    assert main(["explain", str(tmp_path / "e.onnx"), str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "r.npy")]) == 0
    relevance = np.load(tmp_path / "r.npy")
    assert relevance.shape == (1, *SHAPE) and np.isfinite(relevance).all()
    assert np.abs(relevance).max() > 0
    assert "error" not in capsys.readouterr().err
