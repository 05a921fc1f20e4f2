"""BatchNorm pass: fold an inference BatchNormalization into the Conv right before it."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    ConstantLookup,
    attr_float,
    attr_int,
    consumers,
    copy_model,
    has_op,
    producers,
    prune,
    set_ir_version,
    unique_name,
)


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold Conv→BatchNormalization into one Conv (new weight and bias) so BN needs no rule."""
    if not has_op(model, "BatchNormalization"):
        return model
    model = copy_model(model)
    graph = model.graph
    consts = ConstantLookup(graph)
    readers = consumers(graph)
    writers = producers(graph)
    outputs = {out.name for out in graph.output}
    for bn in list(graph.node):
        conv = _foldable_conv(bn, writers, readers, outputs)
        folded = None if conv is None else _folded_params(conv, bn, consts)
        if conv is not None and folded is not None:
            _rewire(graph, conv, bn, *folded)
    prune(graph)
    return set_ir_version(model)


def _is_inference_bn(node: onnx.NodeProto) -> bool:
    """True for a BatchNormalization in inference form with a single used output."""
    if node.op_type != "BatchNormalization" or node.domain not in DEFAULT_DOMAINS:
        return False
    if len(node.input) != 5 or any(node.output[1:]):
        return False
    training = attr_int(node, "training_mode", 0) != 0 or attr_int(node, "is_test", 1) == 0
    return not training and attr_int(node, "spatial", 1) == 1


def _foldable_conv(
    bn: onnx.NodeProto,
    writers: dict[str, onnx.NodeProto],
    readers: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
) -> onnx.NodeProto | None:
    """The Conv feeding `bn` when its output goes only into that BN, else None."""
    if not _is_inference_bn(bn):
        return None
    conv = writers.get(bn.input[0])
    if conv is None or conv.op_type != "Conv" or conv.domain not in DEFAULT_DOMAINS:
        return None
    name = conv.output[0]
    if name in outputs or readers.get(name, []) != [bn] or name in bn.input[1:]:
        return None
    return conv


def _folded_params(
    conv: onnx.NodeProto, bn: onnx.NodeProto, consts: ConstantLookup
) -> tuple[np.ndarray, np.ndarray] | None:
    """Conv weight and bias with the BN's scale and shift folded in, or None if not constant."""
    weight = consts.value(conv.input[1])
    params = [consts.value(name) for name in bn.input[1:5]]
    has_bias = len(conv.input) > 2 and bool(conv.input[2])
    bias = consts.value(conv.input[2]) if has_bias else None
    if weight is None or weight.dtype != np.float32:  # fp16 weights: folding would round
        return None  # them differently from the deployed model (docs/deployed.md)
    if has_bias and bias is None:
        return None
    channels = weight.shape[0]
    if any(p is None or p.shape != (channels,) for p in params):
        return None
    scale, shift, mean, var = (np.asarray(p, dtype=np.float64) for p in params)
    factor = scale / np.sqrt(var + attr_float(bn, "epsilon", 1e-5))
    base = np.zeros(channels) if bias is None else bias.astype(np.float64)
    new_weight = weight.astype(np.float64) * factor.reshape(-1, *([1] * (weight.ndim - 1)))
    new_bias = (base - mean) * factor + shift
    return new_weight.astype(weight.dtype), new_bias.astype(weight.dtype)


def _rewire(
    graph: onnx.GraphProto,
    conv: onnx.NodeProto,
    bn: onnx.NodeProto,
    weight: np.ndarray,
    bias: np.ndarray,
) -> None:
    """Give `conv` the folded parameters and the BN's output name, then drop the BN."""
    weight_name = unique_name(graph, f"{conv.input[1]}_bnfold")
    graph.initializer.append(numpy_helper.from_array(weight, weight_name))
    bias_name = unique_name(graph, f"{conv.name or conv.output[0]}_bias_bnfold")
    graph.initializer.append(numpy_helper.from_array(bias, bias_name))
    conv.input[1] = weight_name
    if len(conv.input) > 2:
        conv.input[2] = bias_name
    else:
        conv.input.append(bias_name)
    conv.output[0] = bn.output[0]
    graph.node.remove(bn)
