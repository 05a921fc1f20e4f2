"""fold_constants: compile-time values become initializers, the batch stays dynamic."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from aeq_onnx.converters import fold_constants

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
I64 = np.int64


def _int(*values: int) -> np.ndarray:
    return np.array(values, dtype=I64)


FOLDS = {
    "constant-nodes-and-their-arithmetic": (
        """g (float[N, 3] x) => (float[N, 3] y) {
          c = Constant<value=float[3] {1, 2, 3}>()
          k = Constant<value_float=2.0>()
          d = Mul(c, k)
          y = Add(x, d)
        }""",
        {},
        ["Add"],
    ),
    "shape-start-attribute-static": (
        """g (float[N, 3, 4, 4] x) => (float[N, 48] y) {
          s = Shape<start=1>(x)
          p = ReduceProd<keepdims=1>(s)
          n = Shape<end=1>(x)
          t = Concat<axis=0>(n, p)
          y = Reshape(x, t)
        }""",
        {},
        ["Shape", "Concat", "Reshape"],
    ),
    "gather-of-static-dims": (
        """g (float[N, 3, 4, 4] x) => (float[N, 48] y) {
          s = Shape(x)
          n = Gather<axis=0>(s, i0)
          c = Gather<axis=0>(s, i1)
          hw = Gather<axis=0>(s, i23)
          p = ReduceProd<keepdims=0>(hw)
          f = Mul(c, p)
          n1 = Unsqueeze(n, ax)
          f1 = Unsqueeze(f, ax)
          t = Concat<axis=0>(n1, f1)
          y = Reshape(x, t)
        }""",
        {"i0": np.array(0, I64), "i1": np.array(1, I64), "i23": _int(-2, -1), "ax": _int(0)},
        ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape"],
    ),
    "slice-of-static-dims": (
        """g (float[N, 3, 4, 4] x) => (float[N, 48] y) {
          s = Shape(x)
          tail = Slice(s, one, big)
          head = Slice(s, zero, one)
          p = ReduceProd<keepdims=1>(tail)
          t = Concat<axis=0>(head, p)
          y = Reshape(x, t)
        }""",
        {"zero": _int(0), "one": _int(1), "big": _int(2**62)},
        ["Shape", "Slice", "Concat", "Reshape"],
    ),
    "shape-becomes-static-after-reduce": (
        """g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
          r = ReduceSum<keepdims=0>(x, ax)
          s = Shape(r)
          z = ConstantOfShape<value=float[1] {2.0}>(s)
          y = Mul(x, z)
        }""",
        {"ax": _int(0)},
        ["Mul"],
    ),
}


@pytest.mark.parametrize(("graph", "weights", "expected"), FOLDS.values(), ids=FOLDS.keys())
def test_known_values_fold(build, same_outputs, ops, graph, weights, expected) -> None:
    """Only the nodes that depend on the data (or the batch size) remain; outputs equal."""
    model = build(HEAD + graph, **weights)
    folded = fold_constants.run(model)
    assert ops(folded) == expected
    assert folded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    same_outputs(model, folded)


def test_folded_values_are_the_constants(build) -> None:
    """A folded node's output is an initializer with the node's value and output name."""
    model = build(HEAD + FOLDS["constant-nodes-and-their-arithmetic"][0])
    folded = fold_constants.run(model)
    values = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    assert list(values) == ["d"]
    np.testing.assert_array_equal(values["d"], np.array([2, 4, 6], np.float32))


SKIPS = {
    "random-op": """g (float[N, 3] x) => (float[N, 3] y) {
          r = RandomNormal<shape=[3]>()
          z = Mul(r, zero)
          y = Add(x, z)
        }""",
    "subgraph-op": """g (float[N, 3] x) => (float[N, 3] y) {
          v = If(cond) <then_branch = g1 () => (float[3] a) { a = Identity(ones) },
                        else_branch = g2 () => (float[3] b) { b = Identity(twos) }>
          y = Add(x, v)
        }""",
    "overridable-initializer": """g (float[N, 3] x, float[3] zero) => (float[N, 3] y) {
          z = Mul(zero, zero)
          y = Add(x, z)
        }""",
}


@pytest.mark.parametrize("graph", SKIPS.values(), ids=SKIPS.keys())
def test_unfoldable_nodes_stay(build, same_outputs, ops, graph) -> None:
    """Random ops, ops with subgraphs and initializers a graph input may override stay."""
    weights = {
        "zero": np.zeros(3, np.float32),
        "cond": np.array(True),
        "ones": np.ones(3, np.float32),
        "twos": np.full(3, 2, np.float32),
    }
    model = build(HEAD + graph, **weights)
    result = fold_constants.run(model)
    assert ops(result) == ops(model)
    assert {"ones", "twos"} <= {t.name for t in result.graph.initializer} or "If" not in graph
    same_outputs(model, result)


def test_large_results_are_not_folded(build, same_outputs, ops, monkeypatch) -> None:
    """A result above the size limit stays computed at run time (limit lowered for the test)."""
    monkeypatch.setattr(fold_constants, "MAX_FOLDED_BYTES", 64)
    graph = """g (float[N, 4, 8] x) => (float[N, 4, 8] y) {
          z = ConstantOfShape<value=float[1] {1.0}>(shape)
          t = Tile(small, reps)
          a = Mul(x, z)
          y = Add(a, t)
        }"""
    weights = {"shape": _int(4, 8), "small": np.ones((1, 8), np.float32), "reps": _int(4, 1)}
    model = build(HEAD + graph, **weights)
    result = fold_constants.run(model)
    assert ops(result) == ["ConstantOfShape", "Tile", "Mul", "Add"]
    same_outputs(model, result)


def test_unused_initializers_and_graph_output_constants(build, same_outputs, ops) -> None:
    """Unused initializers are dropped; a Constant that is a graph output keeps its node."""
    graph = """g (float[N, 3] x) => (float[N, 3] y, float[3] c) {
          c = Constant<value=float[3] {1, 2, 3}>()
          y = Add(x, c)
        }"""
    model = build(HEAD + graph, unused=np.ones(5, np.float32))
    result = fold_constants.run(model)
    assert ops(result) == ["Constant", "Add"]
    assert not result.graph.initializer
    same_outputs(model, result)


def _export_flatten(flatten: str) -> onnx.ModelProto:
    """A conv→flatten→linear torch model exported (TorchScript, no folding) with batch N."""
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4 * 6 * 6, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.relu(self.conv(x))
            if flatten == "view-minus-one":
                y = y.view(y.size(0), -1)
            else:
                y = y.view(y.size(0), y.size(1) * y.size(2) * y.size(3))
            return self.fc(y)

    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Net().eval(), (torch.randn(2, 3, 6, 6),), buffer, dynamo=False, opset_version=17,
            input_names=["input"], output_names=["logits"], do_constant_folding=False,
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
        )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def _picked_from_shape(model: onnx.ModelProto) -> list[list[int]]:
    """For each Gather reading a Shape output: the indices it picks."""
    shapes = {n.output[0] for n in model.graph.node if n.op_type == "Shape"}
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [
        values[n.input[1]].reshape(-1).tolist()
        for n in model.graph.node
        if n.op_type == "Gather" and n.input[0] in shapes
    ]


@pytest.mark.parametrize("flatten", ["view-minus-one", "view-product-of-sizes"])
def test_torch_flatten_folds_all_but_the_batch(same_outputs, ops, flatten) -> None:
    """x.view(x.size(0), -1): only Shape→Gather(0)→Unsqueeze→Concat (the batch) stays."""
    model = _export_flatten(flatten)
    assert "Constant" in ops(model)
    folded = fold_constants.run(model)
    assert ops(folded) == ["Conv", "Relu", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape",
                           "Gemm"]  # fmt: skip
    assert _picked_from_shape(folded) == [[0]]
    assert folded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    same_outputs(model, folded, batches=(1, 4))


def test_stale_static_value_info_does_not_fix_the_batch(build, ops) -> None:
    """value_info claiming a batch of 1 is ignored: Shape of a batch-N tensor is not folded."""
    graph = """g (float[N, 3] x) => (float[N, 3] y) <float[1, 3] r> {
          r = Relu(x)
          s = Shape(r)
          y = Reshape(r, s)
        }"""
    model = build(HEAD + graph)
    assert ops(fold_constants.run(model)) == ["Relu", "Shape", "Reshape"]
