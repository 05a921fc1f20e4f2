"""Compile a classifier into one explainer model: forward, VJP chain, R0, relevance chain.

No op-specific code lives here; every node is handled by its rule from :mod:`aeq_onnx.rules`.
AE and LRP are emitted here, the gradient family and Grad-CAM by :mod:`aeq_onnx.baselines`.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import onnx
import onnx.shape_inference
import onnx_graphsurgeon as gs

from aeq_onnx._version import __version__
from aeq_onnx.compile.assemble import assemble, free_reserved_names
from aeq_onnx.compile.precision import FP16, check_precision, to_float16
from aeq_onnx.converters import canonicalize_owned
from aeq_onnx.errors import LayerError, MethodError, UnsupportedModelError, UnsupportedOpError
from aeq_onnx.ir import emit
from aeq_onnx.ir.graph import Dim, GraphView
from aeq_onnx.ir.planning import Plan, find_logits, make_plan, resolve_layer
from aeq_onnx.load import protos
from aeq_onnx.load.loading import load_model
from aeq_onnx.methods import (
    DEFAULT_BLUR_SIGMA,
    DEFAULT_EPSILON,
    DEFAULT_STEPS,
    AddRule,
    Method,
    make_method,
)
from aeq_onnx.rules import lrp, registry
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


def needs(method: Method, plan: Plan) -> tuple[tuple[str, list[gs.Node]], ...]:
    """What each chain must support: AE a VJP on the head and relevance on the body; Grad-CAM
    only the head's VJP; the gradient family a VJP and LRP relevance on the whole network (its
    body, with the split at the logits)."""
    if method.is_gradient:
        return (("vjp", plan.body),)
    if method.is_lrp:
        return (("relevance", plan.body),)
    if method.name == "gradcam":
        return (("vjp", plan.head),)
    return (("vjp", plan.head), ("relevance", plan.body))


def unsupported_nodes(ctx: EmitContext, plan: Plan) -> list[tuple[str, str, int, str]]:
    """Every node of a chain without the rule the method needs there (see :func:`needs`)."""
    found = []
    for need, nodes in needs(ctx.method, plan):
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
    relevance = input_relevance(ctx, plan, rels)
    return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
            "initial_relevance": r0, "split_gradient": grads[plan.split]}


def input_relevance(ctx: EmitContext, plan: Plan, rels: dict[str, str]) -> str:
    """The relevance reaching the model input, or zeros when none does."""
    relevance = rels.get(plan.input)
    if relevance is None:
        relevance = ctx.em.op("Mul", [plan.input, ctx.em.const(0.0)], "no_relevance")
    return relevance


def emit_lrp(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """LRP: ``R = one_hot(t) · logits`` propagated by the relevance rules to the input."""
    chosen, one_hot = target_and_seed(ctx, plan.logits, ctx.view.static_dims(plan.logits)[0])
    seed = lrp.seed(ctx.em, plan.logits, one_hot)
    rels = propagate(ctx, plan.body, (plan.logits, seed), plan.body_tensors,
                     lambda rule, node, outs: rule.relevance(ctx, node, outs))
    relevance = input_relevance(ctx, plan, rels)
    return {"logits": plan.logits, "target_class": chosen, "relevance": relevance,
            "initial_relevance": seed}


def emit_method(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """The output tensors of ``ctx.method``."""
    if ctx.method.name == "ae":
        return emit_chains(ctx, plan)
    if ctx.method.is_lrp:
        return emit_lrp(ctx, plan)
    from aeq_onnx import baselines  # imports this module: load it only once this one is

    return baselines.emit(ctx, plan)


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
    if not method.uses_split:
        layer = find_logits(ctx.view, output)
    plan = make_plan(ctx.view, layer, output)
    ctx.input_layers = set(plan.input_layers)
    check_supported(ctx, plan)
    return ctx, plan, emit_method(ctx, plan)


def output_shapes(ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
    """Declared shapes of the outputs that differ from AE's (``initial_relevance``)."""
    if ctx.method.name == "ae":
        return {}
    if ctx.method.name == "gradcam":
        shape = ctx.view.shape(plan.split)
        return {"initial_relevance": None if shape is None else [shape[0], 1, *shape[2:]]}
    shape = ctx.view.shape(plan.logits)
    return {"initial_relevance": None if shape is None else list(shape)}


def check_options(method: Method, layer: str | None, expose_gradient: bool) -> None:
    """Refuse options that mean nothing for ``method``."""
    if layer is not None and not method.uses_split:
        raise MethodError(f"layer= picks the split tensor of ae and gradcam; {method.name} "
                          "explains from the logits")
    if expose_gradient and not method.uses_split:
        raise MethodError(f"expose_gradient adds the split tensor's gradient: ae and gradcam "
                          f"only, not {method.name}")


def load_canonical(model: str | os.PathLike[str] | bytes | onnx.ModelProto,
                   ) -> tuple[onnx.ModelProto, onnx.ModelProto, str]:
    """The checked, canonicalised model, a weight-free skeleton of the original (to resolve a
    user's layer name) and the sha256 of the source, holding the weights at most twice."""
    loaded = load_model(model)
    sha256, original, box = loaded.sha256, protos.skeleton(loaded.model), [loaded.model]
    del loaded  # canonicalize_owned frees each pass's input: no third copy of the weights
    return free_reserved_names(canonicalize_owned(box)), original, sha256


def compile_explainer(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    *,
    method: str = "ae",
    ratio: float = 2.0,
    layer: str | None = None,
    add_rule: AddRule = "residual",
    output: str | None = None,
    expose_gradient: bool = False,
    steps: int = DEFAULT_STEPS,
    baseline: str = "zero",
    blur_sigma: float = DEFAULT_BLUR_SIGMA,
    epsilon: float = DEFAULT_EPSILON,
    precision: str = "fp32",
) -> onnx.ModelProto:
    """Compile an ONNX classifier into its explainer model for ``method`` (one of
    :data:`~aeq_onnx.methods.METHOD_NAMES`; default Attribution Equilibrium).

    ``layer`` names the split tensor of ae/gradcam (default: spec section 2), ``output`` the
    model output to explain (default: the only one), ``expose_gradient`` adds the
    ``split_gradient`` output (ae, gradcam). ``ratio``/``add_rule`` are AE's, ``epsilon``
    LRP-ε's, ``steps``/``baseline`` ("zero" or "blur")/``blur_sigma`` (pixels) Integrated
    Gradients'. ``precision="fp16"`` returns the float16 explainer of
    :func:`aeq_onnx.compile.precision.to_float16` (for CUDA; float32 interface). Raises a typed
    :class:`~aeq_onnx.errors.AeqError` before emitting anything.
    """
    check_precision(precision)
    chosen = make_method(method, ratio=ratio, add_rule=add_rule, epsilon=epsilon, steps=steps,
                         baseline=baseline, blur_sigma=blur_sigma)
    check_options(chosen, layer, expose_gradient)
    canonical, original, sha256 = load_canonical(model)
    ctx, plan, flows = compile_chains(canonical, chosen, layer, output, original)
    del canonical  # the graph view holds what the rules need
    metadata = {
        "method": chosen.name, **chosen.parameters(),
        "split": plan.split, "input": plan.input, "version": __version__,
        "source_sha256": sha256,
    }
    extra = ("split_gradient",) if expose_gradient else ()
    explainer = assemble(ctx, plan, flows, metadata, extra, output_shapes(ctx, plan))
    try:
        protos.check(explainer, full=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(f"the explainer for this model fails ONNX validation (an "
                                    f"inconsistent model?): {first}") from exc
    return to_float16(explainer) if precision == FP16 else explainer
