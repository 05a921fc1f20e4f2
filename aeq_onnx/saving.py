"""Write explainer models: one ``.onnx`` file, or with external data beside it when the model
would exceed protobuf's 2 GiB limit. Nothing is written but the chosen path and, for external
data, ``PATH.data`` beside it; a location taken from the input model is never reused."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from onnx import numpy_helper

from aeq_onnx import protos
from aeq_onnx.errors import InputError

EXTERNAL = onnx.TensorProto.EXTERNAL
#: Offsets of tensors in ``PATH.data`` are multiples of this (a page: memory-mappable).
ALIGN = 4096

#: Above this many bytes of serialised model, tensors go to external data (protobuf caps 2 GiB).
EXTERNAL_THRESHOLD = 1_800_000_000
#: With external data, tensors of at least this many bytes go to ``PATH.data``.
EXTERNAL_MIN_BYTES = 1024


def _clear_external(model: onnx.ModelProto) -> None:
    """Forget external-data fields inherited from the input model (data must be in memory)."""
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            if not tensor.HasField("raw_data"):
                raise InputError(f"tensor '{tensor.name}' has its data outside the model; load "
                                 "the model with aeq_onnx.load_model before saving")
            tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def save_explainer(model: onnx.ModelProto, path: str | os.PathLike[str],
                   external: bool | None = None) -> list[Path]:
    """Save ``model`` to ``path``; ``external`` None: external data only when it must be
    (``EXTERNAL_THRESHOLD``). Returns the files written; ``model`` keeps its weights."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise InputError(f"'{target}' is a folder; give the explainer's file name")
    _clear_external(model)
    if external is None:
        external = protos.serialized_size(model) > EXTERNAL_THRESHOLD
    if not external:
        onnx.save_model(model, os.fspath(target))
        return [target]
    data = target.with_name(target.name + ".data")
    light, moved = protos.in_memory_split(model, EXTERNAL_MIN_BYTES)
    if not moved:
        onnx.save_model(light, os.fspath(target))
        return [target]
    _write_data(light, moved, data)
    onnx.save_model(light, os.fspath(target))
    return [target, data]


def _raw_bytes(tensor: onnx.TensorProto) -> bytes:
    """The tensor's data as little-endian bytes (ONNX's external-data layout)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    array = numpy_helper.to_array(tensor)
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _write_data(light: onnx.ModelProto, moved: list[onnx.TensorProto], data: Path) -> None:
    """Write the moved tensors' bytes to ``data`` (each at a 4 KiB-aligned offset, so that
    onnxruntime can map them) and point ``light``'s stubs at them."""
    stubs = {t.name: t for t in light.graph.initializer if t.data_location == EXTERNAL}
    with open(data, "wb") as out:
        for tensor in moved:
            raw = _raw_bytes(tensor)
            offset = -(-out.tell() // ALIGN) * ALIGN
            out.seek(offset)
            out.write(raw)
            stub = stubs[tensor.name]
            del stub.external_data[:]
            for key, value in (("location", data.name), ("offset", str(offset)),
                               ("length", str(len(raw)))):
                stub.external_data.add(key=key, value=value)
