"""What the compiler would do with a model, node by node, without emitting anything.

For every method the compiler knows (:data:`~aeq_onnx.METHOD_NAMES`) each node gets the role
and rule that method gives it (:meth:`~aeq_onnx.methods.Method.needs`): AE the VJP on the head
(split tensor -> logits) and its relevance rule on the body; Grad-CAM the head's VJP only; the
gradient family a VJP on the whole network; LRP its relevance variant on the whole network.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.compile.compiler import emit_context, unsupported_nodes
from aeq_onnx.compile.precision import check_precision
from aeq_onnx.compile.prepare import prepare
from aeq_onnx.errors import AeqError
from aeq_onnx.methods import Method, make_method
from aeq_onnx.rules import registry
from aeq_onnx.rules.base import EmitContext


@dataclass(frozen=True)
class NodeReport:
    """One node: its op, name, role (relevance / gradient / forward only) and rule."""

    op: str
    name: str
    role: str
    rule: str


@dataclass
class Inspection:
    """The split tensor, every node's rule, and the unsupported nodes (if any).

    ``split`` equals ``logits`` for the methods that explain from the logits (gradient family,
    LRP); ``problems`` lists what else would stop the compiler (e.g. Integrated Gradients on a
    model with a static batch size)."""

    split: str
    logits: str
    opset: int
    method: str = "ae"
    parameters: dict[str, str] = field(default_factory=dict)
    nodes: list[NodeReport] = field(default_factory=list)
    unsupported: list[tuple[str, str, int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def op_table(self) -> list[tuple[str, int, str]]:
        """``(op_type, count, rule or UNSUPPORTED: names)`` rows, one per op type and rule."""
        bad = {name for _, name, _, _ in self.unsupported}
        counts = Counter((n.op, n.rule if n.name not in bad else "UNSUPPORTED")
                         for n in self.nodes)
        rows = []
        for (op, rule), count in sorted(counts.items()):
            if rule == "UNSUPPORTED":
                names = [n for o, n, _, _ in self.unsupported if o == op]
                rule = "UNSUPPORTED: " + ", ".join(names)
            rows.append((op, count, rule))
        return rows


def _rule(ctx: EmitContext, node: gs.Node, role: str) -> str:
    """What ``role`` means at ``node``: its relevance rule, its VJP or nothing."""
    if role == "forward":
        return "forward only"
    found = registry.lookup(node.op, ctx.view.opset)
    return found.describe(ctx, node) if role == "relevance" else f"VJP: {found.vjp_name}"


def inspect_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto, *,
                  method: str | Method = "ae", layer: str | None = None,
                  output: str | None = None, precision: str = "fp32",
                  isolate: bool | None = None, **params: object) -> Inspection:
    """Plan the explainer of ``method`` for ``model`` (the options of
    :func:`aeq_onnx.compile_explainer`) and report the rule it gives every node."""
    check_precision(precision)
    chosen = make_method(method, **params)
    chosen.check_options(layer, False)
    prepared = prepare(model, layer=layer, output=output, at_logits=not chosen.uses_split,
                       isolate=isolate)
    ctx, plan = emit_context(prepared, chosen), prepared.plan
    problems = []
    try:
        chosen.check_model(ctx, plan)
    except AeqError as exc:
        problems.append(str(exc))
    report = Inspection(plan.split, plan.logits, ctx.view.opset, chosen.name,
                        {**chosen.metadata(), "precision": precision},
                        unsupported=unsupported_nodes(ctx, chosen, prepared), problems=problems)
    bad = {name for _, name, _, _ in report.unsupported}
    roles: dict[int, str] = {}
    for need, nodes in chosen.needs(plan):
        for node in nodes:
            roles[id(node)] = "relevance" if need == "relevance" else "gradient"
    for node in ctx.view.nodes:
        role = roles.get(id(node), "forward")
        rule = "forward only" if node.name in bad else _rule(ctx, node, role)
        report.nodes.append(NodeReport(node.op, node.name, role, rule))
    return report
