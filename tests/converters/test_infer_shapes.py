"""infer_shapes: strict, data-propagating inference annotates every tensor; failures are typed."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from aeq_onnx.converters import infer_shapes
from aeq_onnx.errors import ConversionError

HEAD = '<ir_version: 8, opset_import: ["" : 17]>\n'
FLATTEN = """g (float[N, 3, 4, 4] x) => (float[N, ?] y) {
  c = Conv<kernel_shape=[1, 1]>(x, w)
  s = Shape(c)
  n = Gather<axis=0>(s, i0)
  ch = Gather<axis=0>(s, i1)
  h = Gather<axis=0>(s, i2)
  w3 = Gather<axis=0>(s, i3)
  chh = Mul(ch, h)
  f = Mul(chh, w3)
  n1 = Unsqueeze(n, ax)
  f1 = Unsqueeze(f, ax)
  t = Concat<axis=0>(n1, f1)
  y = Reshape(c, t)
}"""
WEIGHTS = {
    "w": np.ones((3, 3, 1, 1), np.float32),
    "i0": np.array(0, np.int64),
    "i1": np.array(1, np.int64),
    "i2": np.array(2, np.int64),
    "i3": np.array(-1, np.int64),
    "ax": np.array([0], np.int64),
}


def _dims(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    """value_info name -> dims (dim_param for symbolic dims)."""
    return {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in model.graph.value_info
    }


def test_intermediate_shapes_are_recorded(build, same_outputs) -> None:
    """Every intermediate tensor gets a shape; the batch stays the symbol N."""
    model = build(HEAD + FLATTEN, **WEIGHTS)
    inferred = infer_shapes.run(model)
    dims = _dims(inferred)
    assert dims["c"] == ["N", 3, 4, 4]
    assert dims["s"] == [4] and dims["f"] == [] and dims["t"] == [2]
    assert inferred.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    same_outputs(model, inferred)


def test_data_propagation_resolves_static_reshape(build) -> None:
    """data_prop=True: the Reshape target built from static dims gives the output [N, 48]."""
    inferred = infer_shapes.run(build(HEAD + FLATTEN, **WEIGHTS))
    output = inferred.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in output] == ["N", 48]


def test_stale_value_info_is_dropped(build) -> None:
    """value_info of a tensor no node produces any more (left by an earlier pass) is removed."""
    model = build(HEAD + FLATTEN, **WEIGHTS)
    model.graph.value_info.append(
        onnx.helper.make_tensor_value_info("gone", onnx.TensorProto.FLOAT, [7])
    )
    assert "gone" not in _dims(infer_shapes.run(model))


def test_returns_new_model_with_low_ir(build) -> None:
    """The input proto is untouched and the result carries the smallest IR for opset 17."""
    model = build(HEAD + FLATTEN, **WEIGHTS)
    model.ir_version = 10
    inferred = infer_shapes.run(model)
    assert not model.graph.value_info
    assert inferred.ir_version == 8


CONFLICTS = {
    "matmul-inner-dims": """g (float[N, 3] x) => (float[N, 5] y) {
      y = MatMul(x, w)
    }""",
    "declared-output-rank": """g (float[N, 3] x) => (float[N, 3, 1] y) {
      y = Relu(x)
    }""",
}


@pytest.mark.parametrize("graph", CONFLICTS.values(), ids=CONFLICTS.keys())
def test_inconsistent_shapes_raise_conversion_error(build, graph) -> None:
    """Strict mode: a shape conflict is a ConversionError with a one-line message."""
    model = build(HEAD + graph, w=np.ones((4, 5), np.float32))
    with pytest.raises(ConversionError, match="shape inference failed") as info:
        infer_shapes.run(model)
    assert "\n" not in str(info.value)


def test_wrong_exporter_hints_are_replaced(build, same_outputs) -> None:
    """An intermediate value_info that contradicts the graph (jax2onnx 0.17 declares some NCHW
    tensors with their NHWC shape; onnxruntime merges such hints leniently) is inferred anew
    instead of failing; the graph's own outputs are unchanged."""
    model = build(HEAD + """g (float[N, 3, 4, 4] x) => (float[N, 3, 4, 4] y) {
      c = Conv<kernel_shape=[1, 1]>(x, w)
      y = Relu(c)
    }""", w=np.ones((3, 3, 1, 1), np.float32))
    model.graph.value_info.append(
        onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, ["N", 4, 4, 3]))
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    inferred = infer_shapes.run(model)
    assert _dims(inferred)["c"] == ["N", 3, 4, 4]
    same_outputs(model, inferred)
