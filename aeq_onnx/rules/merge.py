"""Add (bias, or the join of two branches: spec 4.7) and Concat (spec 4.9)."""

from __future__ import annotations

import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter, sample_sum, sdiv
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.elementwise import constant_operand_problem, same_shape
from aeq_onnx.rules.registry import register


def z_split(em: Emitter, a: str, b: str, y: str, r: str) -> tuple[str, str]:
    """``Ra = a·sdiv(R, a+b)``, ``Rb = b·sdiv(R, a+b)`` (the z-rule, spec 4.7)."""
    ratio = sdiv(em, r, y)
    return em.op("Mul", [a, ratio], "Ra"), em.op("Mul", [b, ratio], "Rb")


def share_split(em: Emitter, a: str, b: str, y: str, r: str, rank: int) -> tuple[str, str]:
    """The z-split rescaled so the branch totals split ``Σ R`` as ``|Σ Ra| : |Σ Rb|`` (4.7)."""
    ra, rb = z_split(em, a, b, y, r)
    sums = [sample_sum(em, t, rank) for t in (ra, rb)]
    mags = [em.op("Abs", [s], "abs_total") for s in sums]
    total = sample_sum(em, r, rank)
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


@register("Add")
class AddRule(OpRule):
    """Add: a bias (pass-through) or a join of two tensors (residual, share or z; spec 4.7)."""

    vjp_name = "g to every operand"
    relevance_name = "pass-through with a constant; residual/share/z for two tensors (4.7)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if len(ctx.view.variable_inputs(node)) == 1:
            return constant_operand_problem(ctx, node)
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if not (same_shape(ctx, a, y) and same_shape(ctx, b, y)):
            return "Add of two tensors with broadcasting"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        if len(ctx.view.variable_inputs(node)) == 1:
            return "pass-through (4.5)"
        if ctx.method.join_rule() == "residual" and shortcut_index(ctx, node) is not None:
            return "residual: all to the branch (4.7)"
        rule = "z" if ctx.method.join_rule() == "z" else "share"
        return f"{rule} (4.7)"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        return {i: single(grad) for i in ctx.view.variable_inputs(node)}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        variable, r = ctx.view.variable_inputs(node), single(rel)
        if len(variable) == 1:
            return {variable[0]: r}
        if ctx.method.join_rule() == "residual":
            shortcut = shortcut_index(ctx, node)
            if shortcut is not None:
                return {1 - shortcut: r}
        a, b, y = (t.name for t in (*node.inputs, node.outputs[0]))
        if ctx.method.join_rule() == "z":
            ra, rb = z_split(ctx.em, a, b, y, r)
        else:
            ra, rb = share_split(ctx.em, a, b, y, r, ctx.view.rank(y))
        return {0: ra, 1: rb}


@register("Concat")
class ConcatRule(OpRule):
    """Concat: gradient and relevance are split back along the axis."""

    vjp_name = "split along the axis"
    relevance_name = "split along the axis (4.9)"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        axis = int(node.attrs["axis"])
        rank = ctx.view.rank(node.outputs[0].name)
        if axis % rank == 0:
            return "Concat along the batch axis"
        return None

    def _split(self, ctx: EmitContext, node: gs.Node, flow: str) -> Flows:
        rank = ctx.view.rank(node.outputs[0].name)
        axis = int(node.attrs["axis"]) % rank
        sizes = [ctx.view.static_dims(t.name)[axis - 1] for t in node.inputs]
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
        return f"{'z' if ctx.method.join_rule() == 'z' else 'share'} over {len(node.inputs)} (4.7)"

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        if len(ctx.view.variable_inputs(node)) <= 2:
            return super().relevance(ctx, node, rel)
        y = node.outputs[0].name
        parts = nary_split(ctx.em, [t.name for t in node.inputs], y, single(rel),
                           ctx.view.rank(y), share=ctx.method.join_rule() != "z")
        return dict(enumerate(parts))
