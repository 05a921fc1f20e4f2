"""BatchNorm pass (opsets 7-8): write a ``spatial=0`` BatchNormalization as arithmetic.

``spatial=0`` (removed in opset 9) keeps one statistic per activation (scale, bias, mean and
var shaped ``[C, H, W]``); onnx's version converter refuses it ("Attribute spatial must have
value 1"). Written as ``(x - mean) · (scale / sqrt(var + eps)) + bias`` with broadcasting
(opset 7+), it converts, and constant folding leaves one Sub, Mul and Add with constants,
which pass relevance through like BatchNormalization (spec 4.5).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    attr_float,
    attr_int,
    copy_model,
    default_opset,
    has_op,
    set_ir_version,
    unique_name,
)


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite inference BatchNormalization with spatial=0 (opsets 7-8) as Sub/Mul/Add."""
    opset = default_opset(model)
    if opset is None or not 7 <= opset <= 8 or not has_op(model, "BatchNormalization"):
        return model
    if not any(_per_activation(n) for n in model.graph.node):
        return model
    model = copy_model(model)
    graph = model.graph
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        nodes.extend(_arithmetic(graph, node) if _per_activation(node) else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    return set_ir_version(model)


def _per_activation(node: onnx.NodeProto) -> bool:
    """An inference BatchNormalization (one output) with ``spatial=0``."""
    return (node.op_type == "BatchNormalization" and node.domain in DEFAULT_DOMAINS
            and attr_int(node, "spatial", 1) == 0 and len([o for o in node.output if o]) == 1)


def _arithmetic(graph: onnx.GraphProto, bn: onnx.NodeProto) -> list[onnx.NodeProto]:
    """``y = (x - mean) · (scale / sqrt(var + eps)) + bias``, the statistics broadcast
    against ``[N, C, H, W]`` from the right (they are shaped ``[C, H, W]``)."""
    x, scale, bias, mean, var = bn.input[:5]
    y = bn.output[0]
    eps = unique_name(graph, f"{y}/bn_eps")
    graph.initializer.append(numpy_helper.from_array(
        np.asarray(attr_float(bn, "epsilon", 1e-5), np.float32), eps))

    def name(hint: str) -> str:
        return unique_name(graph, f"{y}/bn_{hint}")

    names = {k: name(k) for k in ("var_eps", "std", "factor", "centred", "scaled")}
    return [
        helper.make_node("Add", [var, eps], [names["var_eps"]]),
        helper.make_node("Sqrt", [names["var_eps"]], [names["std"]]),
        helper.make_node("Div", [scale, names["std"]], [names["factor"]]),
        helper.make_node("Sub", [x, mean], [names["centred"]]),
        helper.make_node("Mul", [names["centred"], names["factor"]], [names["scaled"]]),
        helper.make_node("Add", [names["scaled"], bias], [y], name=bn.name),
    ]
