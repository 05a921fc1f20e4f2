"""Per-sample reductions wherever the sample axis lies (ae-tokens T1), and the signed
stabiliser of the token rules.

A layout (:mod:`aeq_onnx.ir.layout`) says which axis holds the sample index. A reduction over
every other axis keeps that axis; on a merged axis ``[outer·N·inner]`` the tensor is first
viewed with the axis split into ``[outer, N, inner]``, reduced there, and the result spread
back over ``outer`` and ``inner`` so that it broadcasts against the tensor again. A model whose
input batch is statically 1 reduces over every axis (a sample is the whole tensor).

``sdiv_ε(a, b) = a / (b + ε·sign(b))``, 0 where b = 0, with ``ε = EPS_REL · max|b|`` per
sample: never Inf or NaN, and scale-free (ae-tokens T3).
"""

from __future__ import annotations

from collections.abc import Sequence

from aeq_onnx.ir.emit import Emitter, sdiv
from aeq_onnx.ir.layout import Layout, Sample, sample_axis

#: The token rules' stabiliser relative to the per-sample max |b| of their denominator.
EPS_REL = 1e-6


def _reduce(em: Emitter, op: str, x: str, axes: Sequence[int]) -> str:
    """``op`` (ReduceSum/ReduceMax/ReduceMin) over ``axes`` with keepdims."""
    if op == "ReduceSum" or em.opset >= 18:
        return em.op(op, [x, em.ints(list(axes), "axes")], op.lower(), keepdims=1)
    return em.op(op, [x], op.lower(), axes=list(axes), keepdims=1)


def reduce(em: Emitter, x: str, layout: Layout, op: str, single: bool = False) -> str:
    """``op`` over every axis of ``x`` but its sample axis (``layout``: x's layout), shaped to
    broadcast against x; ``single``: the batch is statically 1 (reduce everything)."""
    rank = len(layout)
    k = sample_axis(layout)
    if single or k is None:
        return _reduce(em, op, x, list(range(rank)))
    dim = layout[k]
    assert isinstance(dim, Sample)
    if not dim.merged:
        return _reduce(em, op, x, [a for a in range(rank) if a != k])
    after = [int(d) for d in layout[k + 1:]]  # type: ignore[arg-type]  # static: checked
    split = em.ints([0] * k + [dim.outer, -1, dim.inner] + after, "unmerge_shape")
    parts = em.op("Reshape", [x, split], "unmerged")
    reduced = _reduce(em, op, parts, [a for a in range(rank + 2) if a != k + 1])
    spread = em.op("Expand", [reduced, em.ints([1] * k + [dim.outer, 1, dim.inner]
                                              + [1] * len(after), "spread_shape")], "spread")
    return em.op("Reshape", [spread, em.ints([1] * k + [-1] + [1] * len(after),
                                             "merged_shape")], "merged_back")


def sample_sum(em: Emitter, x: str, layout: Layout, single: bool = False) -> str:
    """``Σ`` over each sample of ``x``, broadcastable to x."""
    return reduce(em, x, layout, "ReduceSum", single)


def stabilised(em: Emitter, b: str, layout: Layout, single: bool = False) -> str:
    """``b + ε·sign(b)`` with ``ε = EPS_REL · max|b|`` per sample (0 stays 0)."""
    peak = reduce(em, em.op("Abs", [b], "abs_b"), layout, "ReduceMax", single)
    eps = em.op("Mul", [peak, em.const(EPS_REL)], "eps")
    return em.op("Add", [b, em.op("Mul", [em.op("Sign", [b], "sign_b"), eps], "eps_sign")],
                 "b_stab")


def sdiv_eps(em: Emitter, a: str, b: str, layout: Layout, single: bool = False) -> str:
    """``sdiv_ε(a, b) = a / (b + ε·sign(b))``, 0 where b = 0 (ae-tokens T3)."""
    return sdiv(em, a, stabilised(em, b, layout, single))


def split_signs(em: Emitter, r: str, layout: Layout, single: bool = False
                ) -> tuple[str, str]:
    """``P = sdiv(max(R,0), Σmax(R,0))`` and ``N = -sdiv(min(R,0), Σmin(R,0))`` per sample
    (spec 4.1) at any sample axis."""
    pos = em.op("Relu", [r], "relu")
    neg = em.op("Min", [r, em.const(0.0)], "neg_part")
    p = sdiv(em, pos, sample_sum(em, pos, layout, single))
    n = em.op("Neg", [sdiv(em, neg, sample_sum(em, neg, layout, single))], "N")
    return p, n


def normalise_abs_total(em: Emitter, x: str, layout: Layout, single: bool = False) -> str:
    """``x / |Σ x|`` per sample (spec section 3) at any sample axis; 0 for an all-zero one."""
    total = em.op("Abs", [sample_sum(em, x, layout, single)], "abs_total")
    return sdiv(em, x, total)
