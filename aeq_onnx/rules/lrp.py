"""LRP layer rules (Bach et al., PLoS ONE 2015), written as Zennit 0.5 computes them.

Per sample, for a layer ``z = conv(x, W) + b`` (Conv, ConvTranspose, Gemm) with relevance ``R``
at its output. Over a :class:`~aeq_onnx.rules.equilibrium.LinearMap` (``fwd`` = the layer's
linear part without bias, ``bwd`` = its transpose) so that Conv and dense layers share them. The
input layer uses the bounded z^B rule of :func:`aeq_onnx.rules.equilibrium.bounded` (Zennit's
``ZBox`` with the sample's min and max as bounds: the bias cancels out of its denominator).
"""

from __future__ import annotations

from collections.abc import Callable

from aeq_onnx.emit import Emitter, div_killed_at_zero, neg_part, relu, sdiv
from aeq_onnx.rules.equilibrium import LinearMap

Back = Callable[[str], str]


def stabilise(em: Emitter, z: str, eps: float) -> str:
    """``z + ε·sign(z)`` with ``sign(0) = +1`` (Zennit's ``stabilize``): never zero for ε > 0."""
    sign = em.op("Where", [em.op("Less", [z, em.const(0.0)], "z_lt0"), em.const(-1.0),
                           em.const(1.0)], "sign0")
    return em.op("Add", [z, em.op("Mul", [sign, em.const(float(eps))], "eps_sign")], "z_stab")


def epsilon(em: Emitter, x: str, z: str, r: str, eps: float, back: Back) -> str:
    """LRP-ε (Bach et al. 2015; Zennit ``Epsilon``), with the bias inside ``z``::

        R_in = x · VJP( R / (z + ε·sign(z)) )      i.e.  R_i = Σ_j x_i w_ij R_j / (z_j ± ε)

    ``z`` is the layer's own output (its pre-activation, bias included) and ``back`` the VJP of
    the layer's linear part. ε = 0 is LRP-0, computed with the zero-safe ``sdiv``.
    """
    ratio = sdiv(em, r, z) if eps == 0 else em.op("Div", [r, stabilise(em, z, eps)], "R_over_z")
    return em.op("Mul", [x, back(ratio)], "eps_R_in")


def zplus(em: Emitter, lin: LinearMap, x: str, r: str, bias_pos: str | None,
          nonneg: bool = False) -> str:
    """LRP-z⁺ = LRP-αβ with α=1, β=0 (Bach et al. 2015; Zennit ``ZPlus``)::

        z    = conv(x⁺, W⁺) + conv(x⁻, W⁻) + max(b, 0)          (every term ≥ 0)
        R_in = x⁺ · convT(R/z, W⁺) + x⁻ · convT(R/z, W⁻)

    ``z = 0`` only where every term of the window is 0, so the rule sends nothing back from
    there (Zennit divides by ``z + 1e-6``; the two agree to that stabiliser). ``nonneg`` says
    x ≥ 0 already (a ReLU output), so the x⁻ term vanishes and is not emitted.
    """
    pos = x if nonneg else relu(em, x)
    wp = lin.weight("pos")
    terms = [lin.fwd(pos, wp)]
    neg = None if nonneg else neg_part(em, x)
    if neg is not None:
        terms.append(lin.fwd(neg, lin.weight("neg")))
    if bias_pos is not None:
        terms.append(bias_pos)
    z = terms[0] if len(terms) == 1 else em.op("Sum", terms, "zplus_z")
    ratio = div_killed_at_zero(em, r, z)
    r_in = em.op("Mul", [pos, lin.bwd(ratio, wp)], "zplus_pos")
    if neg is None:
        return r_in
    r_neg = em.op("Mul", [neg, lin.bwd(ratio, lin.weight("neg"))], "zplus_neg")
    return em.op("Add", [r_in, r_neg], "zplus_R_in")


def seed(em: Emitter, logits: str, one_hot: str) -> str:
    """The relevance LRP starts from: ``R = one_hot(t) · logits`` (the target's logit)."""
    return em.op("Mul", [one_hot, logits], "lrp_seed")
