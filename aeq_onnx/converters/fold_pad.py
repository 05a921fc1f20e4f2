"""Pad pass: merge a zero constant Pad of the spatial axes into the Conv nodes that read it."""

from __future__ import annotations

import numpy as np
import onnx

from aeq_onnx.converters._graph_utils import (
    DEFAULT_DOMAINS,
    ConstantLookup,
    attr_float,
    attr_ints,
    attr_str,
    consumers,
    copy_model,
    has_op,
    prune,
    set_ir_version,
)

_RANK = 4  # NCHW: only 2-D convolutions take the pads


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold a zero, spatial-only Pad into its Conv readers' pads so one Conv holds all padding."""
    if not has_op(model, "Pad"):
        return model
    model = copy_model(model)
    graph = model.graph
    consts = ConstantLookup(graph)
    readers = consumers(graph)
    outputs = {out.name for out in graph.output}
    for node in list(graph.node):
        if node.op_type != "Pad" or node.domain not in DEFAULT_DOMAINS:
            continue
        convs = readers.get(node.output[0], [])
        if node.output[0] in outputs or not convs:
            continue
        spatial = _spatial_pads(node, consts)
        if spatial is None or not all(_accepts(conv, node.output[0], consts) for conv in convs):
            continue
        for conv in convs:
            _merge(conv, node.input[0], spatial)
        graph.node.remove(node)
    prune(graph)
    return set_ir_version(model)


def _spatial_pads(pad: onnx.NodeProto, consts: ConstantLookup) -> list[int] | None:
    """[h_begin, w_begin, h_end, w_end] of a zero constant Pad of the H/W axes only, else None."""
    if attr_str(pad, "mode", "constant") != "constant":
        return None
    full = _full_pads(pad, consts)
    if full is None or len(full) != 2 * _RANK or min(full) < 0:
        return None
    if any(full[i] for i in (0, 1, _RANK, _RANK + 1)):  # batch or channel padded
        return None
    return [full[2], full[3], full[_RANK + 2], full[_RANK + 3]]


def _full_pads(pad: onnx.NodeProto, consts: ConstantLookup) -> list[int] | None:
    """The pads of every axis (begin..., end...), when they are constant and the value is 0."""
    if len(pad.input) < 2:  # attribute form (Pad-1 'paddings', Pad-2 'pads')
        pads = attr_ints(pad, "pads") or attr_ints(pad, "paddings")
        return pads if attr_float(pad, "value", 0.0) == 0.0 else None
    pads_value = consts.value(pad.input[1])
    if pads_value is None or not _is_zero(pad, consts):
        return None
    pads_list = [int(p) for p in pads_value.reshape(-1)]
    if len(pad.input) < 4 or not pad.input[3]:
        return pads_list
    axes = consts.value(pad.input[3])
    if axes is None or len(pads_list) != 2 * axes.size:
        return None
    full = [0] * (2 * _RANK)
    for k, axis in enumerate(int(a) % _RANK for a in axes.reshape(-1)):
        full[axis], full[_RANK + axis] = pads_list[k], pads_list[axes.size + k]
    return full


def _is_zero(pad: onnx.NodeProto, consts: ConstantLookup) -> bool:
    """True when the Pad's constant_value input is absent or a constant zero."""
    if len(pad.input) < 3 or not pad.input[2]:
        return True
    value = consts.value(pad.input[2])
    return value is not None and value.size <= 1 and not np.any(value)


def _accepts(conv: onnx.NodeProto, name: str, consts: ConstantLookup) -> bool:
    """True for a 2-D Conv that reads `name` only as its data input and has explicit pads."""
    if conv.op_type != "Conv" or conv.domain not in DEFAULT_DOMAINS:
        return False
    if conv.input[0] != name or name in conv.input[1:]:
        return False
    if attr_str(conv, "auto_pad", "NOTSET") != "NOTSET":
        return False
    kernel = attr_ints(conv, "kernel_shape")
    weight = consts.value(conv.input[1])
    if weight is not None:
        return weight.ndim == _RANK
    return kernel is not None and len(kernel) + 2 == _RANK


def _merge(conv: onnx.NodeProto, source: str, spatial: list[int]) -> None:
    """Make `conv` read `source` directly, adding the spatial pads to its own."""
    old = attr_ints(conv, "pads") or [0] * len(spatial)
    new = [a + b for a, b in zip(old, spatial, strict=True)]
    conv.input[0] = source
    kept = [a for a in conv.attribute if a.name not in ("pads", "auto_pad")]
    del conv.attribute[:]
    conv.attribute.extend([*kept, onnx.helper.make_attribute("pads", new)])
