"""weight_inputs: initializer-backed graph inputs are dropped; outputs are unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from aeq_onnx.converters import weight_inputs


def _old_style_model() -> onnx.ModelProto:
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_weight_inputs_dropped_outputs_unchanged() -> None:
    before = _old_style_model()
    after = weight_inputs.run(before)
    assert [i.name for i in after.graph.input] == ["x"]
    assert [o.name for o in after.graph.output] == ["y"]
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    run = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
           .run(None, {"x": x})[0] for m in (before, after)]
    np.testing.assert_allclose(run[0], run[1], atol=1e-6)


def test_model_without_weight_inputs_is_returned_as_is() -> None:
    model = weight_inputs.run(_old_style_model())
    assert weight_inputs.run(model) is model
