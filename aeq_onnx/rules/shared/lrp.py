"""LRP layer rules (Bach et al., PLoS ONE 2015), written as Zennit 0.5 computes them.

Per sample, for a layer ``z = conv(x, W) + b`` (Conv, ConvTranspose, Gemm) with relevance ``R``
at its output. Over a :class:`~aeq_onnx.rules.shared.equilibrium.LinearMap` (``fwd`` = the
layer's linear part without bias, ``bwd`` = its transpose) so that Conv and dense layers share
them. The input layer uses the bounded z^B rule of
:func:`aeq_onnx.rules.shared.equilibrium.bounded` (Zennit's ``ZBox`` with the sample's min and
max as bounds: the bias cancels out of its denominator).
"""

from __future__ import annotations

from collections.abc import Callable

from aeq_onnx.ir.emit import Emitter, div_killed_at_zero, late, neg_part, relu, sdiv, zero_after
from aeq_onnx.rules.shared.equilibrium import LinearMap

Back = Callable[[str], str]


def stabilise(em: Emitter, z: str, eps: float, zero: str) -> str:
    """``z + ε·sign(z)`` with ``sign(0) = +1`` (Zennit's ``stabilize``): never zero for ε > 0;
    ``zero`` (:func:`~aeq_onnx.ir.emit.zero_after` the relevance) runs it once R is there."""
    sign = em.op("Where", [em.op("Less", [z, zero], "z_lt0"), em.const(-1.0),
                           em.const(1.0)], "sign0")
    return em.op("Add", [z, em.op("Mul", [sign, em.const(float(eps))], "eps_sign")], "z_stab")


def epsilon(em: Emitter, lin: LinearMap, x: str, z: str, r: str, eps: float,
            back: Back) -> str:
    """LRP-ε (Bach et al. 2015; Zennit ``Epsilon``), with the bias inside ``z``::

        R_in = x · VJP( R / (z + ε·sign(z)) )      i.e.  R_i = Σ_j x_i w_ij R_j / (z_j ± ε)

    ``z`` is the layer's own output (its pre-activation, bias included) and ``back`` the VJP of
    the layer's linear part. ε = 0 is LRP-0, computed with the zero-safe ``sdiv``. x and z are
    read through :func:`~aeq_onnx.ir.emit.late` copies, so that onnxruntime computes what they
    alone give when the relevance reaches the layer, not next to the forward pass.
    """
    x_read, z_read = late(em, x, lin.rank_in), late(em, z, lin.rank_out)
    zero = zero_after(em, r)
    if eps == 0:
        ratio = sdiv(em, r, z_read, zero)
    else:
        ratio = em.op("Div", [r, stabilise(em, z_read, eps, zero)], "R_over_z")
    return em.op("Mul", [x_read, back(ratio)], "eps_R_in")


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
    z_read, pos_read = late(em, z, lin.rank_out), late(em, pos, lin.rank_in)  # see epsilon
    neg_read = None if neg is None else late(em, neg, lin.rank_in)
    ratio = div_killed_at_zero(em, r, z_read, zero_after(em, r))
    r_in = em.op("Mul", [pos_read, lin.bwd(ratio, wp)], "zplus_pos")
    if neg_read is None:
        return r_in
    r_neg = em.op("Mul", [neg_read, lin.bwd(ratio, lin.weight("neg"))], "zplus_neg")
    return em.op("Add", [r_in, r_neg], "zplus_R_in")


def seed(em: Emitter, logits: str, one_hot: str) -> str:
    """The relevance LRP starts from: ``R = one_hot(t) · logits`` (the target's logit)."""
    return em.op("Mul", [one_hot, logits], "lrp_seed")
