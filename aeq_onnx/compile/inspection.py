"""What the compiler would do with a model, node by node, without emitting anything.

For every method the compiler knows (:data:`~aeq_onnx.methods.METHOD_NAMES`) each node gets the
role and rule that method gives it (:func:`aeq_onnx.compile.compiler.needs`): AE the VJP on the head
(split tensor -> logits) and its relevance rule on the body; Grad-CAM the head's VJP only; the
gradient family a VJP on the whole network; LRP its relevance variant on the whole network.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import onnx
import onnx_graphsurgeon as gs

from aeq_onnx.compile.assemble import free_reserved_names
from aeq_onnx.compile.compiler import build_context, check_options, needs, unsupported_nodes
from aeq_onnx.compile.precision import check_precision
from aeq_onnx.converters import canonicalize
from aeq_onnx.errors import AeqError
from aeq_onnx.ir.planning import Plan, find_logits, make_plan, resolve_layer
from aeq_onnx.load.loading import load_model
from aeq_onnx.methods import (
    DEFAULT_BLUR_SIGMA,
    DEFAULT_EPSILON,
    DEFAULT_STEPS,
    AddRule,
    Method,
    make_method,
)
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


def _problems(ctx: EmitContext, plan: Plan) -> list[str]:
    """Model-level refusals the compiler would raise while emitting (not per node)."""
    if ctx.method.name != "integrated-gradients":
        return []
    from aeq_onnx.baselines import check_tileable

    try:
        check_tileable(ctx, plan)
    except AeqError as exc:
        return [str(exc)]
    return []


def _rule(ctx: EmitContext, node: gs.Node, role: str) -> str:
    """What ``role`` means at ``node``: its relevance rule, its VJP or nothing."""
    if role == "forward":
        return "forward only"
    found = registry.lookup(node.op, ctx.view.opset)
    return found.describe(ctx, node) if role == "relevance" else f"VJP: {found.vjp_name}"


def inspect_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto, *,
                  method: str = "ae", ratio: float = 2.0, layer: str | None = None,
                  add_rule: AddRule = "residual", output: str | None = None,
                  steps: int = DEFAULT_STEPS, baseline: str = "zero",
                  blur_sigma: float = DEFAULT_BLUR_SIGMA, epsilon: float = DEFAULT_EPSILON,
                  precision: str = "fp32") -> Inspection:
    """Plan the explainer of ``method`` for ``model`` (the options of
    :func:`aeq_onnx.compile_explainer`) and report the rule it gives every node."""
    check_precision(precision)
    chosen: Method = make_method(method, ratio=ratio, add_rule=add_rule, epsilon=epsilon,
                                 steps=steps, baseline=baseline, blur_sigma=blur_sigma)
    check_options(chosen, layer, False)
    original = load_model(model).model
    canonical = free_reserved_names(canonicalize(original))
    ctx = build_context(canonical, chosen)
    split = None if layer is None else resolve_layer(original, ctx.view, layer)
    if not chosen.uses_split:
        split = find_logits(ctx.view, output)
    plan = make_plan(ctx.view, split, output)
    ctx.input_layers = set(plan.input_layers)
    report = Inspection(plan.split, plan.logits, ctx.view.opset, chosen.name,
                        {**chosen.parameters(), "precision": precision},
                        unsupported=unsupported_nodes(ctx, plan), problems=_problems(ctx, plan))
    bad = {name for _, name, _, _ in report.unsupported}
    roles: dict[int, str] = {}
    for need, nodes in needs(chosen, plan):
        for node in nodes:
            roles[id(node)] = "relevance" if need == "relevance" else "gradient"
    for node in ctx.view.nodes:
        role = roles.get(id(node), "forward")
        rule = "forward only" if node.name in bad else _rule(ctx, node, role)
        report.nodes.append(NodeReport(node.op, node.name, role, rule))
    return report
