"""Weights: refuse float weights holding NaN or Inf, read in place and in chunks."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from aeq_onnx.errors import ModelLoadError, NonFiniteWeightError
from aeq_onnx.load.safety.limits import FLOATS
from aeq_onnx.load.safety.walk import all_nodes, named_tensors

_RAWFLOATS: dict[int, str] = {
    TensorProto.FLOAT: "<f4", TensorProto.DOUBLE: "<f8", TensorProto.FLOAT16: "<f2"}
#: Elements checked per step, so the check never holds a full-size temporary of a big weight.
_FINITE_CHUNK = 1 << 22


def _float_values(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values, viewed in place from ``raw_data`` where possible (no second copy)."""
    dtype = _RAWFLOATS.get(tensor.data_type)
    if dtype is not None and tensor.HasField("raw_data"):
        raw = tensor.raw_data
        if len(raw) == math.prod(tensor.dims) * np.dtype(dtype).itemsize:
            return np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.dims))
    values = numpy_helper.to_array(tensor)
    return values if values.dtype.kind == "f" else values.astype(np.float32)  # bfloat16 & co


def _all_finite(values: np.ndarray) -> bool:
    flat = values.reshape(-1)
    return all(bool(np.isfinite(flat[i:i + _FINITE_CHUNK]).all())
               for i in range(0, flat.size, _FINITE_CHUNK))


def check_finite_weights(model: onnx.ModelProto, label: str) -> None:
    """Refuse float weights holding NaN or Inf (an infinite Clip bound is allowed)."""
    clip_bounds = {name for node in all_nodes(model) if node.op_type == "Clip"
                   for name in node.input[1:]}
    for name, tensor in named_tensors(model):
        if tensor.data_type not in FLOATS:
            continue
        try:
            values = _float_values(tensor)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{label}: tensor '{name}' cannot be read: "
                                 f"{str(exc)[:200]}") from exc
        if _all_finite(values):
            continue
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan == 0 and (inf == 0 or name in clip_bounds):
            continue
        first = np.unravel_index(int(np.argmax(~np.isfinite(values))), values.shape)
        raise NonFiniteWeightError(
            f"{label}: weight '{name}' holds {nan} NaN and {inf} Inf value(s) (first at index "
            f"{tuple(int(i) for i in first)}); a model with non-finite weights cannot be "
            "explained")
