"""The spec's relevance formulas as plain torch functions (section 4 of
``shared/docs/ae-rules.md``), shared by the op references of ``tests/rules/``.

Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024 (arXiv 2205.11109). This is half of "two implementations, one
truth": it shares no code with ``aeq_onnx``; every transposed convolution and pooling VJP comes
from torch autograd. Every tensor has a leading batch axis; every ``Σ``, normalisation, shift and
min/max bound is taken per sample over all non-batch axes (section 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
PoolFn = Callable[[Tensor], Tensor]

POOL_EPS = 1e-9


def sdiv(a: Tensor, b: Tensor) -> Tensor:
    """Safe division: ``a / b`` where ``b != 0`` and ``0`` where ``b == 0`` (never NaN/Inf)."""
    a, b = torch.broadcast_tensors(torch.as_tensor(a), torch.as_tensor(b))
    nz = b != 0
    return torch.where(nz, a / torch.where(nz, b, torch.ones_like(b)), torch.zeros_like(a))


def bsum(t: Tensor) -> Tensor:
    """Per-sample sum over all non-batch axes, kept broadcastable: shape ``[N, 1, ..., 1]``."""
    return t.sum(dim=tuple(range(1, t.dim())), keepdim=True)


def split_pos_neg(R: Tensor) -> tuple[Tensor, Tensor]:
    """``P = sdiv(max(R,0), Σ max(R,0))`` (sums to 1), ``N = -sdiv(min(R,0), Σ min(R,0))``
    (sums to -1); section 4.1."""
    rp, rn = R.clamp(min=0), R.clamp(max=0)
    return sdiv(rp, bsum(rp)), -sdiv(rn, bsum(rn))


@dataclass(frozen=True)
class ConvGeom:
    """Geometry of an ONNX 2-D Conv; ``pads`` in ONNX order ``[top, left, bottom, right]``."""

    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


def conv(x: Tensor, w: Tensor, g: ConvGeom) -> Tensor:
    """The node's own convolution without bias; asymmetric zero pads applied with ``F.pad``."""
    top, left, bottom, right = g.pads
    xp = F.pad(x, (left, right, top, bottom))
    return F.conv2d(xp, w, stride=g.stride, dilation=g.dilation, groups=g.groups)


def vjp(fn: Callable[[Tensor], Tensor], x: Tensor, s: Tensor) -> Tensor:
    """Vector-Jacobian product ``(∂fn/∂x)^T s`` at ``x`` by torch autograd."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(leaf), leaf, s)
    return grad


def conv_t(s: Tensor, w: Tensor, x_shape: Sequence[int], g: ConvGeom) -> Tensor:
    """``convT(s, w)``: the gradient of ``conv(., w)`` w.r.t. its input (shape ``x_shape``),
    applied to ``s``."""
    zeros = torch.zeros(tuple(x_shape), dtype=s.dtype)
    return vjp(lambda x: conv(x, w, g), zeros, s)


def _geom(
    stride: Sequence[int], pads: Sequence[int], dilation: Sequence[int], groups: int
) -> ConvGeom:
    return ConvGeom(tuple(stride), tuple(pads), tuple(dilation), int(groups))  # type: ignore[arg-type]


def _active_terms(x: Tensor, aw: Tensor, R: Tensor, P: Tensor, N: Tensor, g: ConvGeom) -> Tensor:
    """``Ap + Bn`` of section 4.1, shared by rules 4.1 and 4.2:

    ``Ap = a · convT(sdiv(P, conv(a,|W|)·1[R>=0]), |W|)``,   a = 1[X > 0]
    ``Bn = ā · convT(sdiv(N, conv(ā,|W|)·1[R<=0]), |W|)``,   ā = 1[X <= 0]
    """
    a = (x > 0).to(x.dtype)
    na = 1.0 - a
    za = conv(a, aw, g) * (R >= 0).to(x.dtype)
    zn = conv(na, aw, g) * (R <= 0).to(x.dtype)
    Ap = a * conv_t(sdiv(P, za), aw, x.shape, g)
    Bn = na * conv_t(sdiv(N, zn), aw, x.shape, g)
    return Ap + Bn


# ----------------------------------------------------------------------------- rules (section 4)


def conv_hidden(
    x: Tensor,
    w: Tensor,
    R: Tensor,
    *,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
    ratio: float = 2.0,
) -> Tensor:
    """Rule 4.1, the equilibrium rule for a hidden Conv with a kernel larger than 1×1
    (Nam & Lee, T-PAMI 2024)::

        P, N = split_pos_neg(R);  px = max(X,0)
        C    = px · convT(sdiv(r·P + N, conv(px,|W|)), |W|)
        C    = C - m / Σ m,  m = 1[C != 0]                 (shift: remove one unit)
        R_in = C + Ap + Bn                                  (Ap, Bn: see ``_active_terms``)

    With nothing lost to zero denominators ``Σ R_in = r - 2``.
    """
    g = _geom(stride, pads, dilation, groups)
    aw = w.abs()
    P, N = split_pos_neg(R)
    px = x.clamp(min=0)
    C = px * conv_t(sdiv(ratio * P + N, conv(px, aw, g)), aw, x.shape, g)
    m = (C != 0).to(x.dtype)
    C = C - sdiv(m, bsum(m))
    return C + _active_terms(x, aw, R, P, N, g)


def conv_pointwise(
    x: Tensor,
    w: Tensor,
    R: Tensor,
    *,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> Tensor:
    """Rule 4.2, Conv with a 1×1 kernel (no ratio, no shift; Nam & Lee, T-PAMI 2024)::

        R_in = px · convT(sdiv(P + N, conv(px,|W|)), |W|) + Ap + Bn
    """
    g = _geom(stride, pads, dilation, groups)
    aw = w.abs()
    P, N = split_pos_neg(R)
    px = x.clamp(min=0)
    C = px * conv_t(sdiv(P + N, conv(px, aw, g)), aw, x.shape, g)
    return C + _active_terms(x, aw, R, P, N, g)


def conv_bounded(
    x: Tensor,
    w: Tensor,
    R: Tensor,
    *,
    stride: Sequence[int] = (1, 1),
    pads: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> Tensor:
    """Rule 4.3, bounded z^B rule for the Conv fed by the model input (Nam & Lee, T-PAMI 2024)::

        l, h = min X, max X (per sample, broadcast to X's shape; zero padding as usual)
        Z    = conv(X, W) - conv(l, W+) - conv(h, W-)
        S    = sdiv(R, Z)
        R_in = X · convT(S, W) - l · convT(S, W+) - h · convT(S, W-)
    """
    g = _geom(stride, pads, dilation, groups)
    dims = tuple(range(1, x.dim()))
    lo = torch.ones_like(x) * x.amin(dim=dims, keepdim=True)
    hi = torch.ones_like(x) * x.amax(dim=dims, keepdim=True)
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    S = sdiv(R, conv(x, w, g) - conv(lo, wp, g) - conv(hi, wn, g))
    return (
        x * conv_t(S, w, x.shape, g)
        - lo * conv_t(S, wp, x.shape, g)
        - hi * conv_t(S, wn, x.shape, g)
    )


def pool_rule(x: Tensor, R: Tensor, pool_fn: PoolFn) -> Tensor:
    """Rule 4.6, z-rule on the positive part through the node's own pooling::

        xp   = max(X, 0) + 1e-9
        R_in = xp · VJP_pool(sdiv(R, pool(xp)))

    For max pooling the VJP routes each output to the first arg-max of its window.
    """
    xp = x.clamp(min=0) + POOL_EPS
    return xp * vjp(pool_fn, xp, sdiv(R, pool_fn(xp)))


def add_rule(a: Tensor, b: Tensor, R: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """Rule 4.7 for ``a + b`` (both non-constant)::

        z:     Ra = a · sdiv(R, a+b),  Rb = b · sdiv(R, a+b)
        share: the z split, then Ra *= sdiv(ΣR · |ΣRa| / (|ΣRa|+|ΣRb|), ΣRa)  (same for Rb),
               so the branch totals split ΣR in the proportion |ΣRa| : |ΣRb|.

    The ``residual`` choice is structural and is made by the graph walker.
    """
    s = sdiv(R, a + b)
    Ra, Rb = a * s, b * s
    if mode == "z":
        return Ra, Rb
    if mode != "share":
        raise ValueError(f"unknown add mode {mode!r}")
    sa, sb, total = bsum(Ra), bsum(Rb), bsum(R)
    denom = sa.abs() + sb.abs()
    Ra = Ra * sdiv(sdiv(sa.abs(), denom) * total, sa)
    Rb = Rb * sdiv(sdiv(sb.abs(), denom) * total, sb)
    return Ra, Rb


def layer_rule(x: Tensor, w: Tensor, R: Tensor, fwd: Callable[[Tensor, Tensor], Tensor],
               ratio: float, pointwise: bool) -> Tensor:
    """Rules 4.1 (``pointwise`` False) and 4.2 for any layer ``y = fwd(x, W)`` linear in x
    (used for ConvTranspose: ``conv`` is the node's op, ``convT`` its adjoint by autograd)::

        C    = px · T(sdiv(r·P + N, fwd(px,|W|)))   (4.2: P + N),  T = VJP of fwd(., |W|)
        C    = C - m / Σ m,  m = 1[C != 0]           (4.1 only)
        R_in = C + a · T(sdiv(P, fwd(a,|W|)·1[R>=0])) + ā · T(sdiv(N, fwd(ā,|W|)·1[R<=0]))
    """
    aw = w.abs()

    def back(s: Tensor) -> Tensor:
        return vjp(lambda t: fwd(t, aw), torch.zeros_like(x), s)

    P, N = split_pos_neg(R)
    px = x.clamp(min=0)
    C = px * back(sdiv((P if pointwise else ratio * P) + N, fwd(px, aw)))
    if not pointwise:
        m = (C != 0).to(x.dtype)
        C = C - sdiv(m, bsum(m))
    a = (x > 0).to(x.dtype)
    na = 1.0 - a
    Ap = a * back(sdiv(P, fwd(a, aw) * (R >= 0).to(x.dtype)))
    Bn = na * back(sdiv(N, fwd(na, aw) * (R <= 0).to(x.dtype)))
    return C + Ap + Bn


def sum_rule(xs: list[Tensor], R: Tensor, mode: str) -> list[Tensor]:
    """Rule 4.7 for a Sum of n > 2 tensors ("pairwise": the z-rule over n operands is what
    nesting the pairwise z-rule gives)::

        z:     R_i = x_i · sdiv(R, Σ_j x_j)
        share: then R_i *= sdiv(ΣR · |ΣR_i| / Σ_j |ΣR_j|, ΣR_i)
               (also used for ``residual``: there is no single shortcut among n operands)
    """
    s = sdiv(R, sum(xs[1:], xs[0]))
    parts = [x * s for x in xs]
    if mode == "z":
        return parts
    sums = [bsum(p) for p in parts]
    denom = sum((t.abs() for t in sums[1:]), sums[0].abs())
    return [p * sdiv(sdiv(t.abs(), denom) * bsum(R), t) for p, t in zip(parts, sums, strict=True)]


def gemm_rule(x: Tensor, w: Tensor, R: Tensor) -> Tensor:
    """Rule 4.4: a dense layer ``y = x Wᵀ`` (``x``: [N, in], ``w``: [out, in], ``R``: [N, out])
    treated as a 1×1 Conv over a 1×1 map, i.e. rule 4.2."""
    r_in = conv_pointwise(x[:, :, None, None], w[:, :, None, None], R[:, :, None, None])
    return r_in[:, :, 0, 0]
