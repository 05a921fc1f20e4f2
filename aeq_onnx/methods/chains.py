"""What the methods' emission shares: running the op rules backwards over a chain of nodes, the
target class and its one-hot seed, the gradient at the split tensor, the relevance reaching the
input, and the image layout of the model input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.errors import LayerError, UnsupportedModelError
from aeq_onnx.ir import emit
from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.rules import registry
from aeq_onnx.rules.base import EmitContext, Flows, OpRule

Step = Callable[[OpRule, gs.Node, list[str | None]], Flows]


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


def vjp(ctx: EmitContext) -> Step:
    """The step of a gradient chain: each rule's VJP."""
    return lambda rule, node, outs: rule.vjp(ctx, node, outs)


def relevance(ctx: EmitContext) -> Step:
    """The step of a relevance chain: each rule's relevance."""
    return lambda rule, node, outs: rule.relevance(ctx, node, outs)


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


def seed(ctx: EmitContext, plan: Plan, logits: str | None = None) -> tuple[str, str]:
    """The target class and its one-hot seed for ``[N, K]`` logits (default: the model's)."""
    return target_and_seed(ctx, logits or plan.logits, ctx.view.static_dims(plan.logits)[0])


def split_gradient(ctx: EmitContext, plan: Plan, one_hot: str) -> str:
    """``∂ (one_hot · logits) / ∂ split`` by the VJP of every node of the head."""
    grads = propagate(ctx, plan.head, (plan.logits, one_hot), plan.head_tensors | {plan.split},
                      vjp(ctx))
    if plan.split not in grads:
        raise LayerError(f"no gradient reaches layer '{plan.split}' from the logits")
    return grads[plan.split]


def input_relevance(ctx: EmitContext, plan: Plan, start: tuple[str, str]) -> str:
    """The relevance ``start`` (tensor, value) propagates through the body to the model input,
    or zeros when none reaches it."""
    rels = propagate(ctx, plan.body, start, plan.body_tensors, relevance(ctx))
    found = rels.get(plan.input)
    if found is None:
        found = ctx.em.op("Mul", [plan.input, ctx.em.const(0.0)], "no_relevance")
    return found


def input_gradient(ctx: EmitContext, plan: Plan, one_hot: str) -> str:
    """``∂ (one_hot · logits) / ∂ input`` by the VJP of every node on the input→logits chain."""
    grads = propagate(ctx, plan.body, (plan.logits, one_hot), plan.body_tensors, vjp(ctx))
    grad = grads.get(plan.input)
    return grad if grad is not None else ctx.em.op("Mul", [plan.input, ctx.em.const(0.0)],
                                                   "no_gradient")


def logits_shape(ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
    """``initial_relevance`` shaped like the logits (a method that starts there)."""
    shape = ctx.view.shape(plan.logits)
    return {"initial_relevance": None if shape is None else list(shape)}


def channel_axis(dims: tuple[int, ...]) -> int:
    """1 for an NCHW image, 3 for NHWC (last axis of 1, 3 or 4 channels, first one not)."""
    few = (1, 3, 4)
    return 3 if dims[-1] in few and dims[0] not in few else 1


def image_dims(ctx: EmitContext, x: str, what: str) -> tuple[int, ...]:
    """Per-sample dims of a rank-4 image, or an error naming what needs one."""
    if ctx.view.rank(x) != 4:
        raise UnsupportedModelError(f"{what} needs a rank-4 image input, '{x}' has rank "
                                    f"{ctx.view.rank(x)}")
    return ctx.view.static_dims(x)
