"""Shape-inference pass: record each intermediate tensor's type and shape for later stages."""

from __future__ import annotations

import onnx
import onnx.shape_inference

from aeq_onnx.converters import contrib_shapes
from aeq_onnx.converters._graph_utils import (
    copy_model,
    default_opset,
    one_line,
    prune_value_info,
    set_ir_version,
)
from aeq_onnx.errors import ConversionError
from aeq_onnx.load import protos

#: Rounds of onnx inference and com.microsoft annotation (each round passes one such node).
MAX_ROUNDS = 1000


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Annotate value_info with strict, data-propagating shape inference so shapes are known
    (onnxruntime's quantized com.microsoft ops by :mod:`.contrib_shapes`)."""
    cleaned = copy_model(model)
    prune_value_info(cleaned.graph)  # drop value_info of tensors earlier passes removed
    opset = default_opset(cleaned) or 17
    try:
        inferred = protos.infer_shapes(cleaned, strict=True, data_prop=True, inplace=True)
        for _ in range(MAX_ROUNDS):
            if not contrib_shapes.annotate(inferred, opset):
                break
            inferred = protos.infer_shapes(inferred, strict=True, data_prop=True, inplace=True)
    except Exception as exc:  # InferenceError, ValidationError, RuntimeError from the C++ side
        inferred = _without_hints(cleaned, exc)
    return set_ir_version(inferred)


def _without_hints(model: onnx.ModelProto, exc: Exception) -> onnx.ModelProto:
    """Inference again without the exporter's intermediate value_info, which are hints that
    onnxruntime merges leniently: jax2onnx 0.17 declares some NCHW tensors with their NHWC
    shape. When the graph itself is inconsistent, the first error is raised."""
    if not model.graph.value_info:
        raise ConversionError(f"shape inference failed: {one_line(exc)}") from exc
    del model.graph.value_info[:]
    try:
        return protos.infer_shapes(model, strict=True, data_prop=True, inplace=True)
    except Exception:  # the graph's own conflict: report the first error
        raise ConversionError(f"shape inference failed: {one_line(exc)}") from exc
