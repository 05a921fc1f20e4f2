"""Compile a classifier into one AE explainer model: forward, VJP chain, R0, relevance chain.

No op-specific code lives here; every node is handled by its rule from :mod:`aeq_onnx.rules`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnx
import onnx.shape_inference
import onnx_graphsurgeon as gs

from aeq_onnx import __version__, emit, protos
from aeq_onnx.assemble import assemble, free_reserved_names
from aeq_onnx.converters import canonicalize
from aeq_onnx.errors import LayerError, UnsupportedModelError, UnsupportedOpError
from aeq_onnx.graph import GraphView
from aeq_onnx.loading import load_model
from aeq_onnx.methods import AddRule, Method
from aeq_onnx.planning import Plan, make_plan, resolve_layer
from aeq_onnx.rules import registry
from aeq_onnx.rules.base import EmitContext, Flows, OpRule

Step = Callable[[OpRule, gs.Node, list[str | None]], Flows]


def rule_data_edges(view: GraphView) -> Callable[[gs.Node], list[int]]:
    """Data inputs of a node according to its rule (every variable input for unknown ops)."""

    def edges(node: gs.Node) -> list[int]:
        try:
            rule = registry.lookup(node.op, view.opset)
        except registry.RuleNotFound:
            return view.variable_inputs(node)
        return rule.data_indices_of(view, node)

    return edges


def unsupported_nodes(ctx: EmitContext, plan: Plan) -> list[tuple[str, str, int, str]]:
    """Every node of the head without a VJP and of the body without a relevance rule."""
    found = []
    for need, nodes in (("vjp", plan.head), ("relevance", plan.body)):
        for node in nodes:
            reason = registry.why_unsupported(ctx, node, need)
            if reason is not None:
                found.append((node.op, node.name, ctx.view.opset, reason))
    return found


def check_supported(ctx: EmitContext, plan: Plan) -> None:
    """Raise one :class:`UnsupportedOpError` listing every node that has no rule."""
    found = unsupported_nodes(ctx, plan)
    if found:
        raise UnsupportedOpError(
            [(op, f"{name}: {why}" if why != "no rule for this op" else name, opset)
             for op, name, opset, why in found],
            registry.supported_ops(),
        )


def propagate(ctx: EmitContext, nodes: list[gs.Node], seed: tuple[str, str],
              keep: frozenset[str], step: Step) -> dict[str, str]:
    """Run ``step`` over ``nodes`` in reverse order from ``seed``; fan-outs are summed."""
    pending: dict[str, list[str]] = {seed[0]: [seed[1]]}
    done: dict[str, str] = {}

    def total(name: str) -> str | None:
        values = pending.pop(name, None)
        if values is not None:
            done[name] = emit.add_all(ctx.em, values, "fanout_sum")
        return done.get(name)

    for node in reversed(nodes):
        outs = [total(t.name) for t in node.outputs]
        if all(o is None for o in outs):
            continue
        rule = registry.lookup(node.op, ctx.view.opset)
        for index, value in step(rule, node, outs).items():
            name = node.inputs[index].name
            if name in keep:
                pending.setdefault(name, []).append(value)
    for name in list(pending):
        total(name)
    return done


def target_and_seed(ctx: EmitContext, logits: str, classes: int) -> tuple[str, str]:
    """``t = target < 0 ? argmax(logits) : target`` and its one-hot seed on the logits."""
    em = ctx.em
    top1 = em.op("ArgMax", [logits], "top1", axis=1, keepdims=0)
    chosen = em.op("Where", [em.op("Less", ["target", em.const(np.int64(0), "zero_i")]), top1,
                             "target"], "target_class")
    one_hot = em.op("OneHot", [chosen, em.const(np.int64(classes), "depth"),
                               em.const(np.array([0.0, 1.0], np.float32), "onehot_values")],
                    "one_hot", axis=-1)
    return chosen, one_hot


def initial_relevance(ctx: EmitContext, split: str, grad: str) -> str:
    """``R0 = A · mean_hw(g)``, then ``R0 / |Σ R0|`` per sample (spec section 3)."""
    em, rank = ctx.em, ctx.view.rank(split)
    weights = grad
    if rank > 2:
        dims = ctx.view.static_dims(split)
        axes = em.ints(list(range(2, rank)), "hw_axes")
        total = em.op("ReduceSum", [grad, axes], "g_sum_hw", keepdims=1)
        weights = em.op("Mul", [total, em.const(1.0 / float(np.prod(dims[1:])))], "g_mean_hw")
    r0 = em.op("Mul", [split, weights], "R0_raw")
    return emit.normalise_abs_total(em, r0, rank)


def emit_chains(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """Emit target, gradient chain, R0 and relevance chain; return the output tensors."""
    classes = ctx.view.static_dims(plan.logits)[0]
    chosen, one_hot = target_and_seed(ctx, plan.logits, classes)
    grads = propagate(ctx, plan.head, (plan.logits, one_hot), plan.head_tensors | {plan.split},
                      lambda rule, node, outs: rule.vjp(ctx, node, outs))
    if plan.split not in grads:
        raise LayerError(f"no gradient reaches layer '{plan.split}' from the logits")
    r0 = initial_relevance(ctx, plan.split, grads[plan.split])
    rels = propagate(ctx, plan.body, (plan.split, r0), plan.body_tensors,
                     lambda rule, node, outs: rule.relevance(ctx, node, outs))
    relevance = rels.get(plan.input)
    if relevance is None:
        relevance = ctx.em.op("Mul", [plan.input, ctx.em.const(0.0)], "no_relevance")
    return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
            "initial_relevance": r0, "split_gradient": grads[plan.split]}


def build_context(model: onnx.ModelProto, method: Method) -> EmitContext:
    """A graph view with rule-aware data edges and a fresh emitter."""
    view = GraphView(model)
    view.data_edges = rule_data_edges(view)
    taken = set(view.tensors) | {n.name for n in view.nodes} | {"target"}
    return EmitContext(emit.Emitter(max(view.opset, 17), taken), view, method)


def compile_chains(model: onnx.ModelProto, method: Method, layer: str | None = None,
                   output: str | None = None, original: onnx.ModelProto | None = None,
                   ) -> tuple[EmitContext, Plan, dict[str, str]]:
    """Plan, check and emit everything for a canonical model (shapes inferred); ``layer``
    may name a tensor of the ``original`` model that canonicalisation renamed away."""
    ctx = build_context(model, method)
    if layer is not None and original is not None:
        layer = resolve_layer(original, ctx.view, layer)
    plan = make_plan(ctx.view, layer, output)
    ctx.input_layers = set(plan.input_layers)
    check_supported(ctx, plan)
    return ctx, plan, emit_chains(ctx, plan)


def compile_explainer(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    *,
    ratio: float = 2.0,
    layer: str | None = None,
    add_rule: AddRule = "residual",
    output: str | None = None,
    expose_gradient: bool = False,
) -> onnx.ModelProto:
    """Compile an ONNX classifier into its Attribution Equilibrium explainer model.

    ``layer`` names the split tensor (default: spec section 2), ``output`` the model output
    to explain (default: the only one), ``expose_gradient`` adds the ``split_gradient`` output.
    Raises a typed :class:`~aeq_onnx.errors.AeqError` before emitting anything on failure.
    """
    method = Method(ratio=ratio, add_rule=add_rule)
    loaded = load_model(model)
    canonical = free_reserved_names(canonicalize(loaded.model))
    ctx, plan, flows = compile_chains(canonical, method, layer, output, loaded.model)
    metadata = {
        "method": method.name, "ratio": f"{ratio:g}", "add_rule": add_rule,
        "split": plan.split, "input": plan.input, "version": __version__,
        "source_sha256": loaded.sha256,
    }
    extra = ("split_gradient",) if expose_gradient else ()
    explainer = assemble(ctx, plan, flows, metadata, extra)
    try:
        protos.check(explainer, full=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(f"the explainer for this model fails ONNX validation (an "
                                    f"inconsistent model?): {first}") from exc
    return explainer
