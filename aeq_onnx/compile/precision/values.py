"""Tensor and constant conversion to float16: values (tiny values kept nonzero, huge ones
clamped), initializers, ``Constant``/``ConstantOfShape`` values, ``Cast``/``EyeLike`` targets and
``value_info`` entries."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from aeq_onnx.compile.precision._common import (
    FLOAT,
    FP16_MAX,
    FP16_TINY,
    HALF,
    PrecisionError,
    State,
)


def fp16_values(values: np.ndarray) -> np.ndarray:
    """``values`` as float16: nonzero |v| < 2**-24 -> ±2**-24, finite |v| > 65504 -> ±65504."""
    v = np.asarray(values, dtype=np.float32)
    tiny = (v != 0) & (np.abs(v) < FP16_TINY)
    v = np.where(tiny, np.sign(v) * np.float32(FP16_TINY), v)
    v = np.where(np.isfinite(v), np.clip(v, -FP16_MAX, FP16_MAX), v)
    return v.astype(np.float16)


def tensor_fp16(tensor: TensorProto) -> TensorProto:
    """A float16 copy of the float32 ``tensor`` (same name and doc string)."""
    if tensor.data_location == TensorProto.EXTERNAL:
        raise PrecisionError(f"tensor '{tensor.name}' keeps its data outside the model: load "
                             "the external data before converting to float16")
    out = numpy_helper.from_array(fp16_values(numpy_helper.to_array(tensor)), tensor.name)
    out.doc_string = tensor.doc_string
    return out


def attribute_tensor(node: onnx.NodeProto) -> TensorProto | None:
    """The float32 value of a ``Constant`` node as a tensor (any of its float attributes)."""
    for attr in node.attribute:
        if attr.name == "value" and attr.t.data_type == FLOAT:
            return attr.t
        if attr.name == "value_float":
            return numpy_helper.from_array(np.array(attr.f, np.float32))
        if attr.name == "value_floats":
            return numpy_helper.from_array(np.array(list(attr.floats), np.float32))
    return None


def rewrite_attributes(node: onnx.NodeProto) -> None:
    """Cast/EyeLike targets, Constant and ConstantOfShape values to float16."""
    if node.op_type == "Constant":
        value = attribute_tensor(node)
        if value is not None:
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("value", tensor_fp16(value)))
        return
    if node.op_type == "ConstantOfShape":
        _rewrite_fill(node)
    for attr in node.attribute:
        if node.op_type in ("Cast", "EyeLike") and attr.name in ("to", "dtype") and (
                attr.i == FLOAT):
            attr.i = HALF


def _rewrite_fill(node: onnx.NodeProto) -> None:
    """``ConstantOfShape``: a float32 value (or none: float32 zero) becomes float16."""
    values = [a for a in node.attribute if a.name == "value"]
    if values and values[0].t.data_type != FLOAT:
        return
    fill = tensor_fp16(values[0].t) if values else numpy_helper.from_array(
        np.zeros(1, np.float16))
    kept = [a for a in node.attribute if a.name != "value"]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute("value", fill)])


def convert_tensors(graph: onnx.GraphProto, state: State) -> None:
    """float32 initializers (not interface inputs) and value_info entries to float16."""
    used = {n for node in graph.node for n in node.input}
    kept = [t for t in graph.initializer if t.name in used or t.name not in state.fp32_copies]
    converted = [tensor_fp16(t) if t.name in state.consts else t for t in kept]
    del graph.initializer[:]
    graph.initializer.extend([*converted, *state.new_initializers])
    for info in graph.value_info:
        info.name = state.renames.get(info.name, info.name)
        if info.type.tensor_type.elem_type == FLOAT:
            info.type.tensor_type.elem_type = HALF
