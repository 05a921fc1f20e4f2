"""Size caps: refuse tensors that declare more elements or bytes than the caps, or hold data
of another size than their dims declare, and nodes whose constant shapes would allocate too
much (before any data is read from external files)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from aeq_onnx.errors import ModelLoadError, ResourceLimitError
from aeq_onnx.load.safety.walk import all_tensors

#: A tensor may declare at most this many elements ...
MAX_TENSOR_ELEMENTS = 2**31
#: ... and at most this many bytes.
MAX_TENSOR_BYTES = 2**32
#: ConstantOfShape / Expand / Tile with constant shapes may produce at most this many bytes.
MAX_ALLOC_BYTES = 2**31
#: Tensors up to this size have their stored data size checked against their dims up front.
SMALL_ELEMENTS = 2**16

FIXED_SIZE: dict[int, int] = {
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
    TensorProto.BFLOAT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.INT16: 2,
    TensorProto.UINT16: 2, TensorProto.INT32: 4, TensorProto.UINT32: 4, TensorProto.INT64: 8,
    TensorProto.UINT64: 8, TensorProto.BOOL: 1, TensorProto.COMPLEX64: 8,
    TensorProto.COMPLEX128: 16,
}
_TYPED_FIELD: dict[int, str] = {
    TensorProto.FLOAT: "float_data", TensorProto.COMPLEX64: "float_data",
    TensorProto.DOUBLE: "double_data", TensorProto.COMPLEX128: "double_data",
    TensorProto.INT64: "int64_data", TensorProto.UINT32: "uint64_data",
    TensorProto.UINT64: "uint64_data", TensorProto.INT32: "int32_data",
    TensorProto.INT16: "int32_data", TensorProto.INT8: "int32_data",
    TensorProto.UINT16: "int32_data", TensorProto.UINT8: "int32_data",
    TensorProto.BOOL: "int32_data", TensorProto.FLOAT16: "int32_data",
    TensorProto.BFLOAT16: "int32_data",
}
_COMPLEX = {TensorProto.COMPLEX64, TensorProto.COMPLEX128}
FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def _elements(tensor: onnx.TensorProto, label: str) -> int:
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ModelLoadError(f"{label}: tensor '{tensor.name}' has negative dims {dims}")
    return math.prod(dims)


def check_tensor_sizes(model: onnx.ModelProto, label: str) -> None:
    """Refuse tensors declaring more than the element/byte caps, or holding data of another size
    than their dims declare (before any data is read from external files)."""
    for tensor in all_tensors(model):
        count = _elements(tensor, label)
        size = FIXED_SIZE.get(tensor.data_type, 1)
        if count > MAX_TENSOR_ELEMENTS or count * size > MAX_TENSOR_BYTES:
            raise ResourceLimitError(
                f"{label}: tensor '{tensor.name}' declares {count} elements ({count * size} "
                f"bytes), over the cap of {MAX_TENSOR_ELEMENTS} elements / {MAX_TENSOR_BYTES} "
                "bytes")
        if (tensor.data_location == TensorProto.EXTERNAL or tensor.data_type not in FIXED_SIZE
                or (tensor.data_type in FLOATS and count > SMALL_ELEMENTS)):
            continue  # large float data is size-checked when read (check_finite_weights)
        if tensor.HasField("raw_data"):
            held, need, unit = len(tensor.raw_data), count * size, "bytes"
        else:
            field = _TYPED_FIELD[tensor.data_type]
            held = len(getattr(tensor, field))
            need = count * (2 if tensor.data_type in _COMPLEX else 1)
            unit = f"values in {field}"
            if held == 0 and need and _empty_ok(tensor):
                continue
        if held != need:
            raise ModelLoadError(
                f"{label}: tensor '{tensor.name}' with dims {list(tensor.dims)} holds {held} "
                f"{unit}, not {need}")


def _empty_ok(tensor: onnx.TensorProto) -> bool:
    """A tensor with no data at all (a sparse values placeholder, a segment): left to onnx."""
    return tensor.HasField("segment")


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Small integer constants (initializers and Constant nodes) by tensor name."""
    values: dict[str, np.ndarray] = {}
    tensors = [(t.name, t) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    tensors.append((node.output[0], attr.t))
                elif attr.name == "value_ints":
                    values[node.output[0]] = np.asarray(list(attr.ints), np.int64)
    for name, tensor in tensors:
        if (tensor.data_type in (TensorProto.INT64, TensorProto.INT32)
                and tensor.data_location != TensorProto.EXTERNAL
                and math.prod(tensor.dims) <= 64):
            try:
                values[name] = numpy_helper.to_array(tensor).astype(np.int64)
            except ValueError:
                continue
    return values


def check_allocations(model: onnx.ModelProto, label: str) -> None:
    """Refuse ConstantOfShape / Expand / Tile nodes whose constant shapes would make the
    explainer allocate more than :data:`MAX_ALLOC_BYTES`."""
    values = _constant_values(model)
    for node in model.graph.node:
        elements = None
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in values:
            elements = math.prod(int(v) for v in values[node.input[0]].reshape(-1))
        elif node.op_type == "Expand" and len(node.input) > 1 and node.input[1] in values:
            elements = math.prod(int(v) for v in values[node.input[1]].reshape(-1))
        elif node.op_type == "Tile" and len(node.input) > 1 and node.input[1] in values:
            elements = math.prod(int(v) for v in values[node.input[1]].reshape(-1))
            if node.input[0] in values:
                elements *= int(values[node.input[0]].size)
        if elements is not None and elements * 4 > MAX_ALLOC_BYTES:
            raise ResourceLimitError(
                f"{label}: node '{node.name}' ({node.op_type}) would allocate {elements} "
                f"elements (about {elements * 4} bytes), over the cap of {MAX_ALLOC_BYTES} "
                "bytes")
