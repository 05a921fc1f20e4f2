"""Float32 islands inside the float16 graph: which nodes run in float32 between Casts (the
quotient region of ``keep_ratios_fp32``, accumulating scatters), how such a node is rewritten,
and the pruning of the float16 Casts nothing reads."""

from __future__ import annotations

import onnx
from onnx import helper

from aeq_onnx.compile.precision._common import FLOAT, HALF, State, float32_source

#: Ops that stay float32 (between Casts) when they accumulate: see runs_in_float32.
FLOAT32_OPS = frozenset({"ScatterElements", "ScatterND"})
#: Ops that make a quotient, and ops that carry one along unchanged in scale (their outputs are
#: quotients too): with ``keep_ratios_fp32`` they run in float32, see float32_nodes.
RATIO_SEEDS = frozenset({"Div", "Reciprocal"})
RATIO_TRANSPORT = frozenset({
    "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Expand", "Identity", "Tile",
    "Concat", "Slice", "Split", "Gather", "GatherElements", "ScatterElements", "ScatterND",
    "Where", "Neg", "Abs", "Add", "Sub", "Sum", "ReduceSum", "Max", "Min", "Conv",
    "ConvTranspose", "MatMul", "Gemm", "GlobalAveragePool", "AveragePool", "Resize", "Pad",
})


def runs_in_float32(node: onnx.NodeProto) -> bool:
    """Scatters that accumulate (``reduction`` add/mul/min/max): onnxruntime's CPU provider has
    no float16 kernel for them, and float32 accumulation is the more exact anyway."""
    if node.op_type not in FLOAT32_OPS:
        return False
    return any(a.name == "reduction" and a.s not in (b"", b"none") for a in node.attribute)


def float32_island(node: onnx.NodeProto, state: State) -> list[onnx.NodeProto]:
    """``node`` run in float32: float inputs from float32 sources; each float output stays
    available in float32 (for float32 consumers) and is cast to float16 under its own name (a
    cast no float16 consumer reads is pruned at the end)."""
    before: list[onnx.NodeProto] = []
    for i, source in enumerate(node.input):
        node.input[i] = state.renames.get(source, source)
        if source and state.dtypes.get(source) == FLOAT:
            node.input[i], casts = float32_source(source, state, node)
            before.extend(casts)
    after: list[onnx.NodeProto] = []
    for i, name in enumerate(node.output):
        inside = state.renames.get(name, name)
        node.output[i] = inside
        if name and state.dtypes.get(name) == FLOAT:
            node.output[i] = state.fresh(f"{name}__fp32")
            state.casts[name] = node.output[i]
            after.append(helper.make_node("Cast", [node.output[i]], [inside], to=HALF,
                                          name=state.fresh(f"aeq/fp16/{name}")))
    return [*before, node, *after]


# --------------------------------------------------------------------------- float32 ratios


def _region_step(node: onnx.NodeProto, ratios: set[str], consts: set[str]) -> tuple[bool, bool]:
    """(runs in float32, its outputs are ratios) for ``node`` given the ratio tensors so far."""
    if node.op_type in RATIO_SEEDS:
        return True, True
    fed = [n for n in node.input if n in ratios]
    if not fed:
        return False, False
    if node.op_type in RATIO_TRANSPORT:
        return True, True
    if node.op_type == "Mul":
        others = [n for n in node.input if n not in ratios and n not in consts]
        return True, not others
    return True, False


def float32_nodes(graph: onnx.GraphProto, state: State) -> list[bool]:
    """Which nodes run in float32 to keep quotients out of float16's range (see
    ``keep_ratios_fp32`` in :func:`aeq_onnx.compile.precision.to_float16`): every Div/Reciprocal
    with a float output, ops that carry a quotient along (RATIO_TRANSPORT), and the op that
    consumes it last (usually the Mul by the activations, whose product is back in range)."""
    ratios: set[str] = set()
    consts = set(state.consts)
    flags = []
    for node in graph.node:
        floats = [o for o in node.output if state.dtypes.get(o) == FLOAT]
        run32, carries = _region_step(node, ratios, consts)
        run32 = run32 and bool(floats or node.op_type in RATIO_TRANSPORT)
        flags.append(run32)
        if carries:
            ratios.update(floats)
    return flags


def prune_casts(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """Drop the float16 Casts of float32 results that nothing reads."""
    used = set(outputs) | {n for node in nodes for n in node.input}
    return [n for n in nodes
            if not (n.op_type == "Cast" and n.name.startswith("aeq/fp16/") and
                    n.output[0] not in used)]
