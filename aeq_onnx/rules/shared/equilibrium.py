"""The Attribution Equilibrium layer rules (Nam & Lee, IEEE T-PAMI 2024; spec 4.1-4.4).

Written once over a :class:`LinearMap` so that Conv (any stride, padding, dilation, group) and
dense layers (Gemm/MatMul, spec 4.4) share the same formulas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from aeq_onnx.ir.emit import (
    Emitter,
    add_all,
    div_killed_at_zero,
    late,
    positive_mask,
    relu,
    sample_max,
    sample_min,
    sample_sum,
    sdiv,
    split_signs,
    zero_after,
)

WeightKind = Literal["raw", "abs", "pos", "neg"]
#: W, |W|, W+ = max(W, 0), W- = min(W, 0).
WEIGHT_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "raw": lambda w: w,
    "abs": np.abs,
    "pos": lambda w: np.maximum(w, 0),
    "neg": lambda w: np.minimum(w, 0),
}


@dataclass
class WeightVariants:
    """W, |W|, W+ and W- of one layer as initializers, each emitted once; W itself is the
    node's own initializer when ``raw_name`` is given."""

    em: Emitter
    w: np.ndarray
    hint: str
    raw_name: str | None = None
    names: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, kind: WeightKind) -> str:
        """The initializer name of one variant (emitted on first use)."""
        if kind not in self.names:
            value = WEIGHT_TRANSFORMS[kind](self.w).astype(np.float32)
            raw = kind == "raw" and self.raw_name is not None
            name = self.raw_name if raw else self.em.const(value, f"{self.hint}_W{kind}")
            self.names[kind], self.arrays[str(name)] = str(name), value
        return self.names[kind]


class LinearMap(Protocol):
    """A layer's linear part without bias: ``fwd(x, W)`` and its transpose ``bwd(s, W)``."""

    w: np.ndarray

    @property
    def rank_in(self) -> int:
        """Rank of the layer's input."""
        ...

    @property
    def rank_out(self) -> int:
        """Rank of the layer's output."""
        ...

    def weight(self, kind: WeightKind) -> str:
        """The initializer holding W, |W|, W+ or W- (each emitted once)."""
        ...

    def fwd(self, x: str, w: str) -> str:
        """``conv(x, w)``."""
        ...

    def fwd_floored(self, x: str, w: str) -> str | None:
        """``conv(x, w) + zero_floor(w)`` with the floor as the product's own bias (free in
        onnxruntime), for ``w = |W|``; None where the map has no per-output-channel bias slot
        (the caller guards the division instead)."""
        ...

    def bwd(self, s: str, w: str) -> str:
        """``convT(s, w)``, shaped like the layer's input."""
        ...


#: Denominators conv(·,|W|) ≥ 0 are lifted by this fraction of the output channel's max |W|.
ZERO_FLOOR = 1e-30
#: Smallest floor, a normal float32 (no flush-to-zero surprises).
MIN_FLOOR = 1e-37


def zero_floor(absw: np.ndarray) -> np.ndarray:
    """Per output channel (W's axis 0) ``max(ZERO_FLOOR·max|W[c]|, MIN_FLOOR)`` (1 for an
    all-zero channel), one value per channel: the bias of the denominator's own Conv.

    ``num / (den + floor)`` equals the spec's sdiv wherever ``den ≥ 2^24·floor`` (the floor
    is below half an ulp of den: the same float32 value, bit for bit); where ``den = 0`` it is
    finite (|num| ≤ 2, so each term ``num/floor·|W|`` of the transposed product stays below
    2e30) and reaches only inputs that the rule multiplies by an exact zero. It differs from
    sdiv only for windows whose inputs are all below ~1e-23 in magnitude, by a relative
    ``floor/den``. An earlier ``max(den, floor)`` cost one full-size Max per denominator.
    """
    peak = absw.reshape(absw.shape[0], -1).max(axis=1).astype(np.float64)
    floor = np.where(peak > 0, np.maximum(ZERO_FLOOR * peak, MIN_FLOOR), 1.0)
    return floor.astype(np.float32)


def _ratio(em: Emitter, lin: LinearMap, num: str, m: str) -> str:
    """``num / conv(m, |W|)`` for ``m ≥ 0``: the denominator lifted by :func:`zero_floor` in
    its own product where the map allows, else guarded by :func:`div_killed_at_zero`."""
    absw = lin.weight("abs")
    den = lin.fwd_floored(m, absw)
    if den is None:
        return div_killed_at_zero(em, num, lin.fwd(m, absw))
    return em.op("Div", [num, den], "quot")


def _through_abs(em: Emitter, lin: LinearMap, x: str, num: str, x_read: str) -> str:
    """``x · convT(sdiv(num, conv(x, |W|)), |W|)``: mass shared in proportion to x·|W|
    (``x_read``: x again, read by the product; see :func:`_px_and_copy`).

    x ≥ 0 here, so conv(x,|W|) = 0 only where every input of the window has x·|W| = 0, and
    the factor x zeroes whatever such a window sends back: no mask needed (same values).
    """
    ratio = _ratio(em, lin, num, x)
    return em.op("Mul", [x_read, lin.bwd(ratio, lin.weight("abs"))], "through_abs")


def _px_and_copy(em: Emitter, x: str, nonneg: bool, rank: int) -> tuple[str, str]:
    """``(px, copy)``: ``px = max(x, 0)`` and px again through :func:`~aeq_onnx.ir.emit.late`,
    the tensor that the mask and the C product read (``px > 0`` exactly where ``x > 0``).

    Without it onnxruntime converts every layer's x to its NCHW layout right after the forward
    pass and keeps the copies until the backward pass reaches them (what that costs:
    docs/performance.md, "The explainer's schedule").
    """
    px = x if nonneg else relu(em, x)
    return px, late(em, px, rank)


def _uniform_shift(em: Emitter, c: str, rank: int) -> str:
    """``C - m / Σ m`` with ``m = 1[C != 0]``: removes one unit evenly from the non-zeros."""
    nonzero = positive_mask(em, em.op("Abs", [c], "abs_C"))  # 1[C != 0] as float
    return em.op("Sub", [c, sdiv(em, nonzero, sample_sum(em, nonzero, rank))], "C_shift")


def _active_inactive(em: Emitter, lin: LinearMap, x: str, p: str, n: str,
                     zero: str) -> tuple[str, str]:
    """``Ap = a·convT(sdiv(P, conv(a,|W|)), |W|)`` and ``Bn`` likewise with ``ā`` and N;
    ``zero`` (:func:`zero_after` the relevance) schedules the masks after R reaches the layer.

    The spec's masks ``1[R>=0]`` / ``1[R<=0]`` change nothing: P vanishes where R < 0 and N
    where R > 0, and sdiv turns a masked denominator into zero anyway. ``conv(ā,|W|)`` is
    computed directly: the cheaper ``conv(1,|W|) - conv(a,|W|)`` (with ``conv(1,|W|)`` exact
    in float64) cancels where the inactive inputs hold a small share of a window's |W|, and
    moved the relevance far more than the direct form does (tests/rules/test_conv.py,
    tests/rules/test_conv_transpose.py). The products with the masks beat one
    ``Where(a, ·, ·)``, and ``Cast(Greater)`` beats ``Sign`` (the figures:
    docs/performance.md, "Emission changes, measured").
    """
    active = positive_mask(em, x, zero)  # Cast(Greater), not Sign
    inactive = em.op("Sub", [em.const(1.0), active], "inactive")
    absw = lin.weight("abs")
    ap = lin.bwd(_ratio(em, lin, p, active), absw)
    bn = lin.bwd(_ratio(em, lin, n, inactive), absw)
    return em.op("Mul", [active, ap], "Ap"), em.op("Mul", [inactive, bn], "Bn")


def equilibrium(em: Emitter, lin: LinearMap, x: str, r: str, ratio: float,
                nonneg: bool = False) -> str:
    """Spec 4.1, a hidden Conv with a kernel larger than 1x1::

        C = px·convT(sdiv(r·P + N, conv(px,|W|)), |W|);  C = C - m/Σm
        R_in = C + Ap + Bn

    ``nonneg`` says x ≥ 0 already (a ReLU output), so px = x needs no node.
    """
    px, copy = _px_and_copy(em, x, nonneg, lin.rank_in)
    p, n, total = split_signs(em, r, lin.rank_out)
    weighted = em.op("Add", [em.op("Mul", [p, em.const(float(ratio))], "rP"), n], "rP_plus_N")
    c = _uniform_shift(em, _through_abs(em, lin, px, weighted, copy), lin.rank_in)
    ap, bn = _active_inactive(em, lin, copy, p, n, zero_after(em, total))
    return add_all(em, [c, ap, bn], "R_in")


def pointwise(em: Emitter, lin: LinearMap, x: str, r: str, nonneg: bool = False) -> str:
    """Spec 4.2 (1x1 kernels) and 4.4 (dense layers)::

        R_in = px·convT(sdiv(P + N, conv(px,|W|)), |W|) + Ap + Bn
    """
    px, copy = _px_and_copy(em, x, nonneg, lin.rank_in)
    p, n, total = split_signs(em, r, lin.rank_out)
    c = _through_abs(em, lin, px, em.op("Add", [p, n], "P_plus_N"), copy)
    ap, bn = _active_inactive(em, lin, copy, p, n, zero_after(em, total))
    return add_all(em, [c, ap, bn], "R_in")


def bounded(em: Emitter, lin: LinearMap, x: str, r: str) -> str:
    """Spec 4.3, the bounded z^B rule at the input layer, with per-sample bounds l, h::

        Z = conv(X,W) - conv(l,W+) - conv(h,W-);  S = sdiv(R, Z)
        R_in = X·convT(S,W) - l·convT(S,W+) - h·convT(S,W-)

    emitted in the equal form ``Z = conv(X-l, W+) + conv(X-h, W-)`` and
    ``R_in = (X-l)·convT(S,W+) + (X-h)·convT(S,W-)`` (W = W+ + W-; zero padding is the same
    on both sides): two products fewer, and Z is a sum of non-negative terms, exactly 0 for a
    constant image instead of float32 cancellation noise.
    """
    zero = zero_after(em, r)  # everything below runs once R is here
    low = em.op("Add", [sample_min(em, x, lin.rank_in), zero], "low")
    high = em.op("Add", [sample_max(em, x, lin.rank_in), zero], "high")
    wp, wn = lin.weight("pos"), lin.weight("neg")
    above = em.op("Sub", [x, low], "x_minus_l")
    below = em.op("Sub", [x, high], "x_minus_h")
    z = em.op("Add", [lin.fwd(above, wp), lin.fwd(below, wn)], "Z")
    s = div_killed_at_zero(em, r, z)  # Z = 0: every (x-l)·W+ and (x-h)·W- of the window is 0
    return em.op("Add", [em.op("Mul", [above, lin.bwd(s, wp)], "l_term"),
                         em.op("Mul", [below, lin.bwd(s, wn)], "h_term")], "R_in")
