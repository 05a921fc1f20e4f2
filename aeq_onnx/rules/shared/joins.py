"""Where tensors join (Add, Sum; spec 4.7): the z-rule, its ``share`` rescaling for two or n
operands, and which operand of a residual join is the shortcut."""

from __future__ import annotations

from collections.abc import Callable

import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.ir.emit import Emitter, sample_sum, sdiv
from aeq_onnx.rules.base import EmitContext, JoinRule


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


def shortcut_index(ctx: EmitContext, node: gs.Node) -> int | None:
    """The operand whose longest path from the fork holds fewer ``linear`` nodes (None if
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


def summed(ctx: EmitContext, y: str) -> Callable[[str], str] | None:
    """In a token model, the per-sample sum at y's sample axis where it is not the first
    (None: first, or a CNN: spec 4.7's sums over the axes after the first)."""
    samples = ctx.samples()
    layout = samples.layout(y)
    if not ctx.token_model or layout is None or (
            samples.sample_axis(y) == 0 and not samples.single_sample()):
        return None
    return lambda t: per_sample.sample_sum(ctx.em, t, layout, samples.single_sample())
