"""Multiply-accumulates of the linear ops of an ONNX model (Conv, ConvTranspose, Gemm, MatMul),
from static shapes at batch 1: the FLOP side of "explainer time / forward time".

``python benchmarks/flops.py MODEL.onnx [EXPLAINER.onnx]`` prints the MACs of each and their
ratio. Elementwise ops, pools and reductions are not counted (memory-bound, not FLOP-bound).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import onnx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.load import protos  # noqa: E402


def _shapes(model: onnx.ModelProto, batch: int) -> dict[str, list[int]]:
    """Static shapes of every tensor with the dynamic batch fixed to ``batch``."""
    skeleton = protos.skeleton(model)
    for value in skeleton.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = batch
    inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    out: dict[str, list[int]] = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        out[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    return out


def _node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    if node.op_type in ("Conv", "ConvTranspose"):
        w = shapes[node.input[1]]  # Conv [Cout, Cin/g, k...], ConvTranspose [Cin, Cout/g, k...]
        per_element = w[1] * math.prod(w[2:])
        if node.op_type == "Conv":  # each output element reads Cin/g · k inputs
            return math.prod(shapes[node.output[0]]) * per_element
        return math.prod(shapes[node.input[0]]) * per_element  # each input feeds Cout/g · k
    if node.op_type in ("Gemm", "MatMul"):
        a = shapes[node.input[0]]
        trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
        k = a[-2] if trans_a else a[-1]
        return math.prod(shapes[node.output[0]]) * k
    return 0


def macs(model: onnx.ModelProto, batch: int = 1) -> int:
    """Total MACs of the model's Conv/ConvTranspose/Gemm/MatMul nodes at ``batch``."""
    shapes = _shapes(model, batch)
    return sum(_node_macs(n, shapes) for n in model.graph.node)


def main(argv: list[str]) -> int:
    counts = [macs(onnx.load(p)) for p in argv]
    for path, count in zip(argv, counts, strict=True):
        print(f"{path}: {count / 1e9:.3f} GMAC")
    if len(counts) == 2:
        print(f"ratio: {counts[1] / counts[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
