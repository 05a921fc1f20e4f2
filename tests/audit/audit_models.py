"""Tiny ONNX models for the audit tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], shape: list[str | int],
           classes: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)
    onnx.checker.check_model(model)
    return model


def region_model(size: int = 16, region: tuple[int, int, int, int] = (4, 4, 9, 9),
                 gain: float = 8.0) -> onnx.ModelProto:
    """Logits ``[gain * (mean of x over region - 0.5), 0]``: P(class 0) = sigmoid of that."""
    x0, y0, x1, y1 = region
    w = np.zeros((size, size), np.float32)
    w[y0:y1, x0:x1] = gain / ((x1 - x0) * (y1 - y0))
    weights = np.stack([w.ravel(), np.zeros(size * size, np.float32)], 1)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    inits = [numpy_helper.from_array(weights, "w"),
             numpy_helper.from_array(np.array([-gain / 2, 0], np.float32), "b")]
    return _model(nodes, inits, ["N", 1, size, size], 2)


def layered_model(seed: int = 0) -> onnx.ModelProto:
    """Conv -> Relu -> Flatten -> Gemm -> Relu -> MatMul (+ Add): three weighted layers."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(np.zeros(4, np.float32), "conv_b"),
        numpy_helper.from_array(rng.normal(0, 0.2, (6, 4 * 8 * 8)).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "fc_b"),
        numpy_helper.from_array(rng.normal(0, 1.0, (6, 5)).astype(np.float32), "out_w"),
        numpy_helper.from_array(rng.normal(0, 1.0, 5).astype(np.float32), "out_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv", pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["g"], name="fc", transB=1),
        helper.make_node("Relu", ["g"], ["h"]),
        helper.make_node("MatMul", ["h", "out_w"], ["m"], name="out"),
        helper.make_node("Add", ["m", "out_b"], ["y"]),
    ]
    return _model(nodes, inits, ["N", 3, 8, 8], 5)
