"""Identity pass: remove Identity and inference-mode Dropout, which pass their input unchanged."""

from __future__ import annotations

import numpy as np
import onnx

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    ConstantLookup,
    attr_int,
    copy_model,
    has_op,
    producers,
    prune_value_info,
    rename_uses,
    set_ir_version,
    used_names,
)

#: The ops this pass removes (the planner follows them back to name a user's layer).
PASS_THROUGH_OPS = ("Identity", "Dropout")


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove Identity/Dropout (output = input at inference) by rewiring; output names stay."""
    if not has_op(model, *PASS_THROUGH_OPS):
        return model
    model = copy_model(model)
    graph = model.graph
    used = used_names(graph)
    consts = ConstantLookup(graph)
    for node in list(graph.node):
        if _is_passthrough(node, used, consts):
            _remove(graph, node)
    prune_value_info(graph)
    return set_ir_version(model)


def _is_passthrough(node: onnx.NodeProto, used: set[str], consts: ConstantLookup) -> bool:
    """True for an Identity, or a Dropout in inference mode whose mask output nobody reads."""
    if node.domain not in DEFAULT_DOMAINS or not node.input or not node.input[0]:
        return False
    if node.op_type == "Identity":
        return True
    if node.op_type != "Dropout":
        return False
    if len(node.output) > 1 and node.output[1] and node.output[1] in used:
        return False
    if attr_int(node, "is_test", 1) == 0:  # opset < 7: is_test=0 means training
        return False
    if len(node.input) > 2 and node.input[2]:
        training = consts.value(node.input[2])
        return training is not None and not bool(np.any(training))
    return True


def _remove(graph: onnx.GraphProto, node: onnx.NodeProto) -> None:
    """Rewire the readers of node's output to its input (or rename the producer) and drop it."""
    src, dst = node.input[0], node.output[0]
    outputs = {out.name for out in graph.output}
    if dst in outputs:
        producer = producers(graph).get(src)
        if producer is None or src in outputs:
            return  # a graph input / initializer / second output: the name must stay, keep the node
        producer.output[list(producer.output).index(src)] = dst
        rename_uses(graph, src, dst)
    else:
        rename_uses(graph, dst, src)
    graph.node.remove(node)
