"""Quantized and reduced-precision tensors in numbers: which element types hold quantized values,
their integer ranges, and the exact dequantization of constant weights (the graph questions of
deployed models are in :mod:`aeq_onnx.rules.shared.quantization`).

ONNX ``DequantizeLinear``: ``y = (x - zero_point) · scale`` in float32, per tensor, per axis
(``axis``) or per block (``block_size``); ``QuantizeLinear``: ``y = saturate(round(x / scale)
+ zero_point)``, rounding half to even, saturating to the zero point's integer type.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

#: Integer element types that hold quantized values (int4/uint4 included).
QUANTIZED_TYPES = frozenset({TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16,
                             TensorProto.UINT16, TensorProto.INT4, TensorProto.UINT4})
#: Float element types other than float32 that the relevance pass reads upcast.
OTHER_FLOATS = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


def _along(values: np.ndarray, axis: int, rank: int, size: int, block: int) -> np.ndarray:
    """Per-axis (or per-block) parameters shaped to broadcast against a rank-``rank`` tensor
    whose dim ``axis`` is ``size``."""
    if values.ndim == 0 or values.size == 1:
        return values.reshape(())
    if block:
        values = np.repeat(values, block, axis=axis)
        return np.take(values, np.arange(size), axis=axis)
    shape = [1] * rank
    shape[axis] = -1
    return values.reshape(shape)


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
               axis: int = 1, block_size: int = 0) -> np.ndarray:
    """``(q - zero_point) · scale`` as onnxruntime computes it (the difference exact in
    integers, one float32 product, rounded to the scale's type when that is float16),
    returned as float32."""
    q = np.asarray(q)
    axis = axis % max(q.ndim, 1)
    size = q.shape[axis] if q.ndim else 1
    s = _along(np.asarray(scale), axis, q.ndim, size, block_size)
    z = np.zeros((), np.int64) if zero_point is None else _along(
        np.asarray(zero_point), axis, q.ndim, size, block_size)
    diff = q.astype(np.int64) - z.astype(np.int64)
    value = diff.astype(np.float32) * s.astype(np.float32)
    if s.dtype != np.float32:
        value = value.astype(s.dtype)
    return np.asarray(value, dtype=np.float32)


def integer_range(elem_type: int) -> tuple[int, int]:
    """The saturation bounds of a quantized element type."""
    bounds: dict[int, tuple[int, int]] = {
        TensorProto.INT8: (-128, 127), TensorProto.UINT8: (0, 255),
        TensorProto.INT16: (-32768, 32767), TensorProto.UINT16: (0, 65535),
        TensorProto.INT4: (-8, 7), TensorProto.UINT4: (0, 15)}
    return bounds[elem_type]
