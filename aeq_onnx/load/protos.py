"""Whole-model operations made cheap for big models: run onnx's checker and shape inference on
a weight-free skeleton instead of serialising every weight each time."""

from __future__ import annotations

import math

import onnx
import onnx.shape_inference
from google.protobuf.message import Message
from onnx import helper

#: Initializers with more elements than this travel as typed graph inputs in the skeleton.
LARGE_ELEMENTS = 4096


def _is_large(tensor: onnx.TensorProto) -> bool:
    external = tensor.data_location == onnx.TensorProto.EXTERNAL
    return external or math.prod(tensor.dims) > LARGE_ELEMENTS


def _copy_fields(src: Message, dst: Message, skip: str) -> None:
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(dst, field.name).extend(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(dst, field.name).CopyFrom(value)
        else:
            setattr(dst, field.name, value)


def _shell(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without any initializer (nodes, I/O, metadata, opsets)."""
    out = onnx.ModelProto()
    _copy_fields(model, out, skip="graph")
    _copy_fields(model.graph, out.graph, skip="initializer")
    return out


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose large initializers are graph inputs of the same type and shape, no data."""
    out = _shell(model)
    graph = model.graph
    inputs = {i.name for i in graph.input}
    for tensor in graph.initializer:
        if not _is_large(tensor):
            out.graph.initializer.append(tensor)
        elif tensor.name not in inputs:
            out.graph.input.append(
                helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return out


#: The name external-data stubs point to: the data never lives in a file (see in_memory_split).
IN_MEMORY = "aeq-in-memory"


def _external_stub(tensor: onnx.TensorProto, nbytes: int) -> onnx.TensorProto:
    stub = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                            data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", IN_MEMORY), ("offset", "0"), ("length", str(nbytes))):
        stub.external_data.add(key=key, value=value)
    return stub


def _nbytes(tensor: onnx.TensorProto) -> int:
    return math.prod(tensor.dims) * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def in_memory_split(model: onnx.ModelProto, min_bytes: int
                    ) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """A copy of ``model`` whose initializers of at least ``min_bytes`` are external-data stubs
    (same name, type and shape; location :data:`IN_MEMORY`, in the same order as the list),
    and those initializers themselves (not copied): the pieces for onnxruntime's
    ``add_external_initializers`` or for writing the data beside the model, past protobuf's
    2 GiB cap. ``model`` is not modified."""
    light = _shell(model)
    moved = []
    for tensor in model.graph.initializer:
        nbytes = _nbytes(tensor)
        big = nbytes >= min_bytes and tensor.data_location != onnx.TensorProto.EXTERNAL
        light.graph.initializer.append(_external_stub(tensor, nbytes) if big else tensor)
        moved.extend([tensor] if big else [])
    return light, moved


def serialized_size(model: onnx.ModelProto) -> int:
    """Bytes of ``model`` serialised, summed part by part (``ByteSize`` of the whole model
    fails past 2 GiB): the model without initializers plus each initializer."""
    return _shell(model).ByteSize() + sum(t.ByteSize() + 8 for t in model.graph.initializer)


def check(model: onnx.ModelProto, full: bool = False) -> None:
    """``onnx.checker.check_model`` on the skeleton (raises the checker's own errors)."""
    onnx.checker.check_model(skeleton(model), full_check=full)


def infer_shapes(model: onnx.ModelProto, strict: bool = True, data_prop: bool = True,
                 inplace: bool = False) -> onnx.ModelProto:
    """``model`` (or a copy) with value_info and outputs from shape inference on its skeleton."""
    inferred = onnx.shape_inference.infer_shapes(
        skeleton(model), strict_mode=strict, data_prop=data_prop)
    out = model
    if not inplace:
        out = onnx.ModelProto()
        out.CopyFrom(model)
    del out.graph.value_info[:]
    out.graph.value_info.extend(inferred.graph.value_info)
    del out.graph.output[:]
    out.graph.output.extend(inferred.graph.output)
    return out
