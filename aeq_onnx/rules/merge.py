"""Add (bias, or the join of two branches: spec 4.7) and Concat (spec 4.9)."""

from __future__ import annotations

from collections.abc import Callable

import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.ir.emit import Emitter, sample_sum, sdiv
from aeq_onnx.rules import token_constants
from aeq_onnx.rules.base import EmitContext, Flows, JoinRule, OpRule, single
from aeq_onnx.rules.elementwise import constant_operand_problem, same_shape
from aeq_onnx.rules.registry import register


def z_split(em: Emitter, a: str, b: str, y: str, r: str) -> tuple[str, str]:
    """``Ra = a·sdiv(R, a+b)``, ``Rb = b·sdiv(R, a+b)`` (the z-rule, spec 4.7)."""
    ratio = sdiv(em, r, y)
    return em.op("Mul", [a, ratio], "Ra"), em.op("Mul", [b, ratio], "Rb")


def share_split(em: Emitter, a: str, b: str, y: str, r: str, rank: int,
                summed: Callable[[str], str] | None = None) -> tuple[str, str]:
    """The z-split rescaled so the branch totals split ``Σ R`` as ``|Σ Ra| : |Σ Rb|`` (4.7);
    ``summed``: the per-sample sum where the sample axis is not first (token models)."""
    total_of = summed or (lambda t: sample_sum(em, t, rank))
    ra, rb = z_split(em, a, b, y, r)
    sums = [total_of(t) for t in (ra, rb)]
    mags = [em.op("Abs", [s], "abs_total") for s in sums]
    total = total_of(r)
    both = em.op("Add", mags, "mag_sum")
    out = []
    for part, part_sum, mag in zip((ra, rb), sums, mags, strict=True):
        target = sdiv(em, em.op("Mul", [total, mag], "share_num"), both)
        out.append(em.op("Mul", [part, sdiv(em, target, part_sum)], "R_share"))
    return out[0], out[1]


def shortcut_index(ctx: EmitContext, node: gs.Node) -> int | None:
    """The operand whose longest path from the fork holds fewer Conv/Gemm/MatMul (None if
    equal): the shortcut of a residual join, even when a branch itself contains a join."""
    a, b = node.inputs[0].name, node.inputs[1].name
    fork = ctx.view.fork(a, b)
    if fork is None:
        return None
    counts = ctx.view.layer_counts(fork, longest=True)
    ca, cb = counts.get(a), counts.get(b)
    if ca is None or cb is None or ca == cb:
        return None
    return 0 if ca < cb else 1


def join_rule(ctx: EmitContext) -> JoinRule:
    """The method's join rule: the token one in a token model (ae-tokens T3)."""
    return ctx.method.token_join_rule() if ctx.token_model else ctx.method.join_rule()


def _summed(ctx: EmitContext, y: str) -> Callable[[str], str] | None:
    """In a token model, the per-sample sum at y's sample axis where it is not the first
    (None: first, or a CNN: spec 4.7's sums over the axes after the first)."""
    samples = ctx.samples()
    layout = samples.layout(y)
    single = samples.single_sample()
    if not ctx.token_model or layout is None or (samples.sample_axis(y) == 0 and not single):
        return None
    return lambda t: per_sample.sample_sum(ctx.em, t, layout, samples.single_sample())


@register("Add")
class AddRule(OpRule):
    """Add: a bias (pass-through; in a token model the constant absorbs its share) or a join
    of two tensors (residual, share or z; spec 4.7)."""

    vjp_name = "g to every operand"
    relevance_name = ("pass-through with a constant (absorbs in token models); "
                      "residual/share/z for two tensors (4.7)")

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) == 1:
            problem = constant_operand_problem(ctx, node)
            if problem is None and need == "relevance" and token_constants.absorbs(ctx, node):
                return token_constants.check(ctx, node)
            return problem
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if not (same_shape(ctx, a, y) and same_shape(ctx, b, y)):
            return "Add of two tensors with broadcasting"
        if need == "relevance" and join_rule(ctx) != "z" and _summed(ctx, y) is not None:
            return ctx.samples().reduction_problem(y)
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 1:
            if token_constants.absorbs(ctx, node):
                return token_constants.ABSORB_NAME
            return "pass-through (4.5)"
        if join_rule(ctx) == "residual" and shortcut_index(ctx, node) is not None:
            return "residual: all to the branch (4.7)"
        rule = "z" if join_rule(ctx) == "z" else "share"
        return f"{rule} (4.7)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {i: single(grad) for i in ctx.view.variable_inputs(node)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        variable, r = ctx.view.variable_inputs(node), single(rel)
        if len(variable) == 1:
            if token_constants.absorbs(ctx, node):
                return {variable[0]: token_constants.absorb(ctx, node, r)}
            return {variable[0]: r}
        rule = join_rule(ctx)
        if rule == "residual":
            shortcut = shortcut_index(ctx, node)
            if shortcut is not None:
                return {1 - shortcut: r}
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if rule == "z":
            ra, rb = z_split(ctx.em, a, b, y, r)
        else:
            ra, rb = share_split(ctx.em, a, b, y, r, ctx.view.rank(y), _summed(ctx, y))
        return {0: ra, 1: rb}


@register("Concat")
class ConcatRule(OpRule):
    """Concat: gradient and relevance are split back along the axis."""

    vjp_name = "split along the axis"
    relevance_name = "split along the axis (4.9)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        y = node.outputs[0].name
        axis = int(node.attrs["axis"]) % ctx.view.rank(y)
        if ctx.samples().along_sample_axis(y, axis):
            return "Concat along the sample axis"
        if any(not isinstance((ctx.samples().layout(t.name) or (None,) * (axis + 1))[axis], int)
               for t in node.inputs):
            return "Concat of inputs of unknown size along the axis"
        return None

    def _split(self, ctx: EmitContext, node: gs.Node, flow: str) -> Flows:
        rank = ctx.view.rank(node.outputs[0].name)
        axis = int(node.attrs["axis"]) % rank
        sizes = [int((ctx.samples().layout(t.name) or ())[axis]) for t in node.inputs]  # type: ignore[arg-type]
        parts = ctx.em.op_multi("Split", [flow, ctx.em.ints(sizes, "split")], len(sizes),
                                "concat_back", axis=axis)
        return {i: parts[i] for i in ctx.view.variable_inputs(node)}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return self._split(ctx, node, single(grad))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        return self._split(ctx, node, single(rel))


def nary_split(em: Emitter, parts: list[str], y: str, r: str, rank: int, share: bool
               ) -> list[str]:
    """``R_i = x_i · sdiv(R, Σ_j x_j)`` (z); with ``share`` each is rescaled so the totals
    split ``Σ R`` in the proportion ``|Σ R_1| : ... : |Σ R_n|`` (4.7 for n operands)."""
    ratio = sdiv(em, r, y)
    zs = [em.op("Mul", [x, ratio], "R_z") for x in parts]
    if not share:
        return zs
    sums = [sample_sum(em, z, rank) for z in zs]
    mags = [em.op("Abs", [s], "abs_total") for s in sums]
    total, all_mags = sample_sum(em, r, rank), em.op("Sum", mags, "mag_sum")
    out = []
    for z, part_sum, mag in zip(zs, sums, mags, strict=True):
        target = sdiv(em, em.op("Mul", [total, mag], "share_num"), all_mags)
        out.append(em.op("Mul", [z, sdiv(em, target, part_sum)], "R_share"))
    return out


@register("Sum")
class SumRule(AddRule):
    """Sum of n same-shaped tensors: ``g`` to every operand. Relevance: one tensor plus
    constants passes through; two tensors follow Add exactly (residual/share/z, 4.7); for
    n > 2 ``z`` is ``R_i = x_i·sdiv(R, y)`` (what pairwise z gives) and ``share`` (also the
    ``residual`` fallback: no single shortcut among n operands) rescales those to split
    ``Σ R`` as ``|Σ R_i|``. Constants next to several tensors are refused."""

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        variable, y = ctx.view.variable_inputs(node), node.outputs[0].name
        if len(variable) == 1:
            return constant_operand_problem(ctx, node)
        if len(variable) != len(node.inputs):
            return "Sum of several tensors and a constant"
        if not all(same_shape(ctx, t.name, y) for t in node.inputs):
            return "Sum of tensors with broadcasting"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(node.inputs) <= 2:
            return super().describe(ctx, node)
        return f"{'z' if join_rule(ctx) == 'z' else 'share'} over {len(node.inputs)} (4.7)"

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) <= 2:
            return super().relevance(ctx, node, rel)
        y = node.outputs[0].name
        parts = nary_split(ctx.em, [t.name for t in node.inputs], y, single(rel),
                           ctx.view.rank(y), share=join_rule(ctx) != "z")
        return dict(enumerate(parts))
