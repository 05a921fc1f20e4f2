"""Einsum pass: a batched matrix product written as Einsum becomes Transpose + MatMul.

``einsum('...ir,...jr->...ij')`` (q·kᵀ) and ``einsum('...ir,...rj->...ij')`` (P·v), with the
same batch letters in the same order in front of both operands and the output (MaxViT's
attention), are ``MatMul(a, b)`` with b's last two axes swapped in the first form: the ops the
rules know (attention mixing, ae-tokens T3). Any other equation stays an Einsum.
"""

from __future__ import annotations

import onnx
from onnx import helper

from aeq_onnx.converters._graph_utils import (
    attr_str,
    copy_model,
    has_op,
    prune_value_info,
    set_ir_version,
    unique_name,
)


def run(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite each batched-matrix-product Einsum as MatMul (b transposed where needed)."""
    if not has_op(model, "Einsum"):
        return model
    model = copy_model(model)
    graph = model.graph
    for node in list(graph.node):
        swap = _matmul_form(node)
        if swap is not None:
            _replace(graph, node, swap)
    prune_value_info(graph)
    return set_ir_version(model)


def _matmul_form(node: onnx.NodeProto) -> bool | None:
    """For an Einsum that is ``a @ b`` (False) or ``a @ bᵀ`` (True) over shared leading batch
    letters; None for anything else."""
    if node.op_type != "Einsum" or len(node.input) != 2:
        return None
    equation = attr_str(node, "equation", "").replace(" ", "")
    if "->" not in equation or "." in equation:
        return None
    ins, out = equation.split("->")
    parts = ins.split(",")
    if len(parts) != 2:
        return None
    a, b = parts
    if not (len(a) == len(b) == len(out) >= 2) or len(set(out)) != len(out):
        return None
    batch = out[:-2]
    if a[:-2] != batch or b[:-2] != batch:
        return None
    i, j = out[-2], out[-1]
    if a[-2] != i or a[-1] in (i, j) or a[-1] in batch:
        return None
    r = a[-1]
    if b[-2:] == r + j:
        return False
    if b[-2:] == j + r:
        return True
    return None


def _replace(graph: onnx.GraphProto, node: onnx.NodeProto, swap: bool) -> None:
    """The MatMul (after a Transpose of b when ``swap``) in the Einsum's place."""
    index = list(graph.node).index(node)
    a, b = node.input
    added = []
    if swap:
        rank = len(attr_str(node, "equation", "").replace(" ", "").split(",")[0])
        perm = [*range(rank - 2), rank - 1, rank - 2]
        b_t = unique_name(graph, f"{b}_T")
        added.append(helper.make_node("Transpose", [b], [b_t], perm=perm,
                                      name=unique_name(graph, f"{node.name}_T")))
        b = b_t
    added.append(helper.make_node("MatMul", [a, b], list(node.output),
                                  name=node.name or unique_name(graph, "einsum_matmul")))
    graph.node.remove(node)
    for offset, new in enumerate(added):
        graph.node.insert(index + offset, new)
