"""What the compiler would do with a model, node by node, without emitting anything."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import onnx

from aeq_onnx.assemble import free_reserved_names
from aeq_onnx.compiler import build_context, unsupported_nodes
from aeq_onnx.converters import canonicalize
from aeq_onnx.loading import load_model
from aeq_onnx.methods import AddRule, Method
from aeq_onnx.planning import make_plan, resolve_layer
from aeq_onnx.rules import registry


@dataclass(frozen=True)
class NodeReport:
    """One node: its op, name, role (relevance / gradient / forward only) and rule."""

    op: str
    name: str
    role: str
    rule: str


@dataclass
class Inspection:
    """The split tensor, every node's rule, and the unsupported nodes (if any)."""

    split: str
    logits: str
    opset: int
    nodes: list[NodeReport] = field(default_factory=list)
    unsupported: list[tuple[str, str, int, str]] = field(default_factory=list)

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


def inspect_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto, *,
                  ratio: float = 2.0, layer: str | None = None,
                  add_rule: AddRule = "residual", output: str | None = None) -> Inspection:
    """Plan the explainer for ``model`` and report the rule chosen for every node."""
    original = load_model(model).model
    canonical = free_reserved_names(canonicalize(original))
    ctx = build_context(canonical, Method(ratio=ratio, add_rule=add_rule))
    plan = make_plan(ctx.view, None if layer is None else resolve_layer(original, ctx.view, layer),
                     output)
    ctx.input_layers = set(plan.input_layers)
    report = Inspection(plan.split, plan.logits, ctx.view.opset,
                        unsupported=unsupported_nodes(ctx, plan))
    bad = {name for _, name, _, _ in report.unsupported}
    head, body = {id(n) for n in plan.head}, {id(n) for n in plan.body}
    for node in ctx.view.nodes:
        role = "relevance" if id(node) in body else "gradient" if id(node) in head else "forward"
        rule = "forward only"
        if node.name not in bad and role != "forward":
            found = registry.lookup(node.op, ctx.view.opset)
            rule = found.describe(ctx, node) if role == "relevance" else f"VJP: {found.vjp_name}"
        report.nodes.append(NodeReport(node.op, node.name, role, rule))
    return report
