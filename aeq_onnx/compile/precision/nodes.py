"""Rewriting one node for the float16 graph: renamed inputs and outputs, float32-only inputs
fed from float32 tensors, spec-fixed float32 outputs rejected, float attributes converted (or
the whole node run as a float32 island)."""

from __future__ import annotations

import math

import onnx

from aeq_onnx.compile.precision._common import FLOAT, PrecisionError, State, float32_source
from aeq_onnx.compile.precision.islands import float32_island, runs_in_float32
from aeq_onnx.compile.precision.schema import fixed_output, formal_param, op_schema, slot_kind
from aeq_onnx.compile.precision.values import rewrite_attributes

#: Constants up to this many elements keep float32 where their input type is free of T.
SMALL_CONSTANT = 4096


def _keeps_float32(kind: str, source: str, state: State) -> bool:
    """Fixed inputs always; free ones when fed by a small constant (exact values, no copy of a
    large weight)."""
    if kind == "fixed":
        return True
    const = state.consts.get(source)
    return kind == "free" and const is not None and math.prod(const.dims) <= SMALL_CONSTANT


def _rewrite_inputs(node: onnx.NodeProto, schema: onnx.defs.OpSchema,
                    state: State) -> list[onnx.NodeProto]:
    """Rename the inputs, point float32-only ones at float32 tensors; return the Casts that
    must run before ``node``."""
    before: list[onnx.NodeProto] = []
    for i, source in enumerate(node.input):
        node.input[i] = state.renames.get(source, source)
        formal = formal_param(list(schema.inputs), i)
        if not source or formal is None or state.dtypes.get(source) != FLOAT:
            continue
        kind = slot_kind(schema, formal.type_str)
        if kind == "none":
            raise PrecisionError(f"node '{node.name}': {node.op_type} (opset "
                                 f"{schema.since_version}) has no float16 variant for "
                                 f"'{formal.name}'")
        if _keeps_float32(kind, source, state):
            node.input[i], casts = float32_source(source, state, node)
            before.extend(casts)
    return before


def _check_outputs(node: onnx.NodeProto, schema: onnx.defs.OpSchema,
                   dtypes: dict[str, int]) -> None:
    for i, name in enumerate(node.output):
        formal = formal_param(list(schema.outputs), i)
        if name and formal is not None and fixed_output(schema, formal.type_str) and (
                dtypes.get(name, FLOAT) == FLOAT):
            raise PrecisionError(f"node '{node.name}': {node.op_type} output '{formal.name}' is "
                                 "float32 by the ONNX spec; the float16 conversion cannot keep it")


def convert_node(node: onnx.NodeProto, opset: int, state: State,
                 in_float32: bool) -> list[onnx.NodeProto]:
    """``node`` rewritten for the float16 graph, with the Casts it needs around it."""
    if in_float32 or runs_in_float32(node):
        return float32_island(node, state)
    schema = op_schema(node, opset)
    _check_outputs(node, schema, state.dtypes)
    before = _rewrite_inputs(node, schema, state)
    node.output[:] = [state.renames.get(n, n) for n in node.output]
    rewrite_attributes(node)
    return [*before, node]
