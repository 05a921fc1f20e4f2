"""Quantized tensors: which ops carry quantization parameters, where an integer tensor's scale
and zero point live, and the exact dequantization of constant weights.

ONNX ``DequantizeLinear``: ``y = (x - zero_point) · scale`` in float32, per tensor, per axis
(``axis``) or per block (``block_size``); ``QuantizeLinear``: ``y = saturate(round(x / scale)
+ zero_point)``, rounding half to even, saturating to the zero point's integer type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

if TYPE_CHECKING:
    from aeq_onnx.ir.graph import GraphView

#: QOperator ops and the input indices of their output's (scale, zero point).
OUTPUT_PARAMS: dict[str, tuple[int, int]] = {
    "QuantizeLinear": (1, 2), "QLinearConv": (6, 7), "QLinearMatMul": (6, 7),
    "QGemm": (7, 8), "QLinearAdd": (6, 7), "QLinearMul": (6, 7),
    "QLinearGlobalAveragePool": (3, 4), "QLinearAveragePool": (3, 4), "QLinearConcat": (0, 1),
    "QLinearSigmoid": (3, 4), "QLinearLeakyRelu": (3, 4),
}
#: Ops that move integer values without rescaling them: their output is read with the
#: quantization parameters of their first input (onnxruntime runs them on int8 directly).
MOVERS = frozenset({"MaxPool", "GlobalMaxPool", "Reshape", "Flatten", "Transpose", "Squeeze",
                    "Unsqueeze", "Identity", "Slice", "Gather", "Split", "Resize", "Pad",
                    "SpaceToDepth", "DepthToSpace", "Tile", "Expand", "ReduceMax",
                    "ReduceMin"})
#: Integer element types that hold quantized values (int4/uint4 included).
QUANTIZED_TYPES = frozenset({TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16,
                             TensorProto.UINT16, TensorProto.INT4, TensorProto.UINT4})
#: Float element types other than float32 that the relevance pass reads upcast.
OTHER_FLOATS = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE})


@dataclass(frozen=True)
class QuantParams:
    """Where an integer tensor's scale and zero point are (tensor names; the zero point may
    be absent: 0), along which axis, with which block size, and the domain of the
    DequantizeLinear that reads it (com.microsoft for its 16-bit Q/DQ below opset 21)."""

    scale: str
    zero_point: str | None
    axis: int = 1
    block_size: int = 0
    domain: str = ""

    def dequantize_attrs(self) -> dict[str, object]:
        """The attributes of a DequantizeLinear reading with these parameters."""
        attrs: dict[str, object] = {"axis": self.axis}
        if self.block_size:
            attrs["block_size"] = self.block_size
        if self.domain:
            attrs["domain"] = self.domain
        return attrs

    def inputs(self, tensor: str) -> list[str]:
        """The inputs of that DequantizeLinear."""
        return [tensor, self.scale, *([self.zero_point] if self.zero_point else [])]


def _name(node: object, index: int) -> str | None:
    inputs = node.inputs  # type: ignore[attr-defined]
    return inputs[index].name if len(inputs) > index and inputs[index].name else None


def params_of(view: GraphView, name: str) -> QuantParams | None:
    """The parameters an integer tensor was quantized with: its producer's output parameters
    (through ops that only move values), or None when nothing quantized it (a uint8 image)."""
    node = view.producer(name)
    while node is not None and node.op in MOVERS and node.inputs:
        node = view.producer(node.inputs[0].name)
    if node is None:
        return None
    if node.op == "DynamicQuantizeLinear":
        return QuantParams(node.outputs[1].name, node.outputs[2].name, 1)
    where = OUTPUT_PARAMS.get(node.op)
    scale = None if where is None else _name(node, where[0])
    if where is None or scale is None:
        return None
    if node.op != "QuantizeLinear":
        return QuantParams(scale, _name(node, where[1]), 1)
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    return QuantParams(scale, _name(node, 2), int(node.attrs.get("axis", 1)),
                       int(node.attrs.get("block_size", 0)), domain)


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
