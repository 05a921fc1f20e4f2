"""Shapes of onnxruntime's quantized com.microsoft ops, which onnx's shape inference skips: each
is inferred as its float counterpart (QLinearAdd as Add, QGemm as Gemm ...) with onnx's own
schema, and typed as the op's quantized output."""

from __future__ import annotations

import onnx
import onnx.defs
import onnx.shape_inference
from onnx import TensorProto, helper

MICROSOFT = "com.microsoft"
#: op -> (float counterpart, indices of its data inputs, index of the output zero point or None:
#: the output is float)
STAND_INS: dict[str, tuple[str, tuple[int, ...], int | None]] = {
    "QLinearAdd": ("Add", (0, 3), 7),
    "QLinearMul": ("Mul", (0, 3), 7),
    "QLinearSigmoid": ("Identity", (0,), 4),
    "QLinearLeakyRelu": ("Identity", (0,), 4),
    "QLinearGlobalAveragePool": ("GlobalAveragePool", (0,), 4),
    "QLinearAveragePool": ("AveragePool", (0,), 4),
    "QGemm": ("Gemm", (0, 3), 8),
    "QuantizeLinear": ("Identity", (0,), 2),
    "DequantizeLinear": ("Identity", (0,), None),
}
KEEP_ATTRS = {"AveragePool": ("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape",
                              "pads", "strides", "dilations"),
              "Gemm": ("transA", "transB"), "Concat": ("axis",)}


def _float_type(kind: onnx.TypeProto) -> onnx.TypeProto:
    """The same tensor type with a float element type (float ops' schemas ask for one)."""
    copy = onnx.TypeProto()
    copy.CopyFrom(kind)
    copy.tensor_type.elem_type = TensorProto.FLOAT
    return copy


def _stand_in(node: onnx.NodeProto) -> tuple[onnx.NodeProto, list[str], int | None] | None:
    """The float node with the shape ``node`` has, its data inputs and the zero-point input."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("channels_last", 0):
        return None  # NHWC pools: not written by the quantization tools for NCHW models
    if node.op_type == "QLinearConcat":
        data = [node.input[i] for i in range(2, len(node.input), 3)]
        return helper.make_node("Concat", data, [node.output[0]], axis=attrs["axis"]), data, 1
    if node.op_type not in STAND_INS:
        return None
    op, indices, zero = STAND_INS[node.op_type]
    data = [node.input[i] for i in indices if i < len(node.input) and node.input[i]]
    kept = {k: v for k, v in attrs.items() if k in KEEP_ATTRS.get(op, ())}
    zero_point = zero if zero is not None and zero < len(node.input) and node.input[zero] else None
    if node.op_type == "QGemm" and not (len(node.input) > 7 and node.input[7]):
        zero_point = None  # no y_scale: a float output
    return helper.make_node(op, data, [node.output[0]], **kept), data, zero_point


def output_type(node: onnx.NodeProto, types: dict[str, onnx.TypeProto],
                opset: int) -> onnx.TypeProto | None:
    """The type of ``node``'s first output, or None when its inputs' types are not known."""
    found = _stand_in(node)
    if found is None:
        return None
    stand_in, data, zero_point = found
    if any(name not in types for name in data):
        return None
    schema = onnx.defs.get_schema(stand_in.op_type, opset)
    inferred = onnx.shape_inference.infer_node_outputs(
        schema, stand_in, {name: _float_type(types[name]) for name in data},
        opset_imports=[helper.make_opsetid("", opset)])
    kind = inferred.get(node.output[0])
    if kind is None:
        return None
    if zero_point is None:
        kind.tensor_type.elem_type = TensorProto.FLOAT
    elif node.input[zero_point] in types:
        kind.tensor_type.elem_type = types[node.input[zero_point]].tensor_type.elem_type
    else:
        kind.tensor_type.elem_type = TensorProto.UINT8  # the ops' default zero-point type
    return kind


def known_types(graph: onnx.GraphProto) -> dict[str, onnx.TypeProto]:
    """The declared or inferred type of every tensor that has one."""
    types = {v.name: v.type for v in (*graph.input, *graph.value_info, *graph.output)
             if v.type.tensor_type.HasField("shape") or v.type.tensor_type.elem_type}
    for tensor in graph.initializer:
        types[tensor.name] = helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
    return types


def annotate(model: onnx.ModelProto, opset: int) -> bool:
    """Add value_info for the outputs of com.microsoft quantized nodes whose input types are
    known and whose output type is not; True when any was added."""
    graph = model.graph
    types = known_types(graph)
    added = False
    for node in graph.node:
        if node.domain != MICROSOFT or not node.output or node.output[0] in types:
            continue
        kind = output_type(node, types, opset)
        if kind is not None:
            graph.value_info.append(helper.make_value_info(node.output[0], kind))
            types[node.output[0]] = kind
            added = True
    return added
