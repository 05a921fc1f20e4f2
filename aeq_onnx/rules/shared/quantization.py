"""Where a deployed graph's quantization parameters live: which QOperator ops carry their
output's scale and zero point (and at which inputs), which ops move integer values without
rescaling them, and the parameters an integer tensor was quantized with (docs/deployed.md).
The numbers (types, ranges, exact dequantization) are :mod:`aeq_onnx.ir.quant`'s."""

from __future__ import annotations

from dataclasses import dataclass

from onnx import TensorProto

from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.quant import OTHER_FLOATS, QUANTIZED_TYPES, dequantize, integer_range

__all__ = ["MOVERS", "OTHER_FLOATS", "OUTPUT_PARAMS", "QUANTIZED_TYPES", "QuantParams",
           "TensorProto", "dequantize", "integer_range", "params_of"]

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
