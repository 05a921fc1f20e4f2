"""Independent torch reference implementation of Attribution Equilibrium (AE).

Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024 (arXiv 2205.11109). The rules are those of
``shared/docs/ae-rules.md``; section numbers below refer to that document.

This module is the second of "two implementations, one truth": it shares no code with
``aeq_onnx``. It runs an ONNX graph with plain torch ops, one sample at a time, takes every
transposed convolution and pooling VJP from torch autograd, and never touches onnxruntime.

Conventions: every tensor has a leading batch axis; every ``Σ``, normalisation, shift and
min/max bound is taken per sample over all non-batch axes (section 5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

Tensor = torch.Tensor
PoolFn = Callable[[Tensor], Tensor]

POOL_EPS = 1e-9
LINEAR_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
POOL_OPS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool"})
PASS_THROUGH_OPS = frozenset(
    {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "BatchNormalization", "Identity", "Dropout",
     "HardSigmoid", "HardSwish", "PRelu", "Elu", "Selu", "Gelu", "Softplus", "Mish",
     "InstanceNormalization"}
)
ARITH_OPS = frozenset({"Add", "Sub", "Mul", "Div"})
#: Ops that only move values (section 4.9): relevance takes the VJP of the linear mapping.
MAPPING_OPS = frozenset({"Transpose", "Squeeze", "Unsqueeze", "Pad", "Slice"})
SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax"})


# ----------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------- ONNX graph


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


@dataclass
class Graph:
    """A parsed ONNX graph: nodes in topological order, constants, producers, I/O names."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto] = field(init=False)
    inits: dict[str, np.ndarray] = field(init=False)
    const: set[str] = field(init=False)
    producer: dict[str, int] = field(init=False)
    input_name: str = field(init=False)
    output_name: str = field(init=False)
    opset: int = field(init=False)

    def __post_init__(self) -> None:
        g = self.model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.input_name = next(i.name for i in g.input if i.name not in self.inits)
        self.output_name = g.output[0].name
        opsets = self.model.opset_import
        self.opset = next((o.version for o in opsets if o.domain in ("", "ai.onnx")), 13)
        self.nodes = _toposort(list(g.node), {self.input_name, *self.inits})
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output}
        self.const = set(self.inits)
        for n in self.nodes:
            if n.op_type == "Constant" or all(i in self.const for i in n.input if i):
                self.const.update(n.output)

    def data_inputs(self, node: onnx.NodeProto) -> list[str]:
        """The node's non-constant inputs."""
        return [i for i in node.input if i and i not in self.const]

    def pos(self, name: str) -> int:
        """Topological position of a tensor (its producer's index; -1 for graph inputs)."""
        return self.producer.get(name, -1)


def _toposort(nodes: list[onnx.NodeProto], known: set[str]) -> list[onnx.NodeProto]:
    """Kahn's algorithm; keeps the file order where it is already topological."""
    done, ordered, pending = set(known), [], list(nodes)
    while pending:
        ready = [n for n in pending if all(not i or i in done for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an undefined input")
        for n in ready:
            done.update(n.output)
        ordered += ready
        pending = [n for n in pending if n not in ready]
    return ordered


# ----------------------------------------------------------------------------- forward ops


def _resolve_pads(at: dict, hw: Sequence[int], k: Sequence[int], s: Sequence[int],
                  d: Sequence[int]) -> tuple[int, int, int, int]:
    """ONNX pads ``[top, left, bottom, right]`` from ``pads`` or ``auto_pad``."""
    mode = at.get("auto_pad", "NOTSET")
    if mode == "NOTSET":
        return tuple(at.get("pads", [0, 0, 0, 0]))  # type: ignore[return-value]
    if mode == "VALID":
        return (0, 0, 0, 0)
    begin, end = [], []
    for n, kk, ss, dd in zip(hw, k, s, d, strict=True):
        total = max((math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def conv_geom(at: dict, x_shape: Sequence[int], w_shape: Sequence[int]) -> ConvGeom:
    """ConvGeom of an ONNX Conv node."""
    k = list(at.get("kernel_shape", w_shape[2:]))
    s = list(at.get("strides", [1, 1]))
    d = list(at.get("dilations", [1, 1]))
    pads = _resolve_pads(at, x_shape[2:], k, s, d)
    return ConvGeom(tuple(s), pads, tuple(d), int(at.get("group", 1)))  # type: ignore[arg-type]


def make_pool(op: str, at: dict, x_shape: Sequence[int]) -> PoolFn:
    """A torch callable computing the ONNX pooling node ``op`` (NCHW, 2-D)."""
    if op == "GlobalAveragePool":
        return lambda x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
    if len(x_shape) != 4:
        raise NotImplementedError(f"{op} on a rank-{len(x_shape)} tensor")
    k = list(at["kernel_shape"])
    s = list(at.get("strides", [1, 1]))
    d = list(at.get("dilations", [1, 1]))
    top, left, bottom, right = _resolve_pads(at, x_shape[2:], k, s, d)
    extra = [_ceil_extra(n, kk, ss, dd, pb, pe, bool(at.get("ceil_mode", 0)))
             for n, kk, ss, dd, pb, pe in zip(x_shape[2:], k, s, d, (top, left),
                                              (bottom, right), strict=True)]
    if op == "MaxPool":
        pad = (left, right + extra[1], top, bottom + extra[0])
        return lambda x: F.max_pool2d(F.pad(x, pad, value=-math.inf), k, s, dilation=d)
    if op != "AveragePool":
        raise NotImplementedError(op)
    # Average = windowed sum / number of counted cells; sums as a depthwise conv with ones.
    c = x_shape[1]
    ones_w = torch.ones((c, 1, *k), dtype=torch.float64)
    one = torch.ones((1, 1, *x_shape[2:]), dtype=torch.float64)
    if at.get("count_include_pad", 0):
        one = F.pad(one, (left, right, top, bottom), value=1.0)
        one = F.pad(one, (0, extra[1], 0, extra[0]))
    else:
        one = F.pad(one, (left, right + extra[1], top, bottom + extra[0]))
    count = F.conv2d(one, ones_w[:1], stride=s, dilation=d)
    pad = (left, right + extra[1], top, bottom + extra[0])

    def avg(x: Tensor) -> Tensor:
        w = ones_w.to(x.dtype)
        total = F.conv2d(F.pad(x, pad), w, stride=s, dilation=d, groups=c)
        return sdiv(total, count.to(x.dtype))

    return avg


def _ceil_extra(n: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool) -> int:
    """Extra end padding that makes the last ONNX ``ceil_mode`` window fit (0 without it).

    As in torch (and onnxruntime), a last window that would start inside the end padding is
    dropped; cells of the extra padding never count, not even with ``count_include_pad``.
    """
    eff = (k - 1) * d + 1
    span = n + pb + pe - eff
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    return max((out - 1) * s + eff - (n + pb + pe), 0)


def _gemm_operands(ins: list, at: dict) -> tuple[Tensor, Tensor]:
    """Gemm's ``A'`` and ``alpha·B'`` (after transA/transB) so that ``Y = A' @ (alpha·B') + βC``."""
    a, b = ins[0], ins[1]
    a = a.T if at.get("transA", 0) else a
    b = b.T if at.get("transB", 0) else b
    return a, b * float(at.get("alpha", 1.0))


def _fwd_gemm(ins: list, at: dict) -> Tensor:
    a, b = _gemm_operands(ins, at)
    y = a @ b
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(at.get("beta", 1.0)) * ins[2]
    return y


def _fwd_clip(ins: list, at: dict) -> Tensor:
    lo = ins[1] if len(ins) > 1 and ins[1] is not None else at.get("min")
    hi = ins[2] if len(ins) > 2 and ins[2] is not None else at.get("max")
    return torch.clamp(ins[0], min=lo, max=hi)


def _fwd_bn(ins: list, at: dict) -> Tensor:
    x, scale, bias, mean, var = ins[:5]
    shape = (1, -1) + (1,) * (x.dim() - 2)
    inv = scale / torch.sqrt(var + float(at.get("epsilon", 1e-5)))
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


def _fwd_instance_norm(ins: list, at: dict) -> Tensor:
    x, scale, bias = ins[:3]
    dims = tuple(range(2, x.dim()))
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + float(at.get("epsilon", 1e-5)))
    return y * scale.reshape(shape) + bias.reshape(shape)


def _fwd_hard_sigmoid(x: Tensor, alpha: float, beta: float) -> Tensor:
    return torch.clamp(alpha * x + beta, 0.0, 1.0)


def _fwd_elu(x: Tensor, alpha: float, gamma: float = 1.0) -> Tensor:
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0.0)))


def _fwd_gelu(x: Tensor, at: dict) -> Tensor:
    return F.gelu(x, approximate="tanh" if at.get("approximate") == "tanh" else "none")


def _ints_arg(ins: list, index: int, at: dict, key: str) -> list[int] | None:
    """An int list from input ``index`` (newer opsets) or attribute ``key``."""
    if len(ins) > index and ins[index] is not None:
        return [int(v) for v in ins[index].reshape(-1).tolist()]
    value = at.get(key)
    return None if value is None else [int(v) for v in value]  # type: ignore[attr-defined]


def _fwd_squeeze(ins: list, at: dict) -> Tensor:
    axes = _ints_arg(ins, 1, at, "axes")
    if not axes:
        raise NotImplementedError("Squeeze without axes")
    x = ins[0]
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _fwd_unsqueeze(ins: list, at: dict) -> Tensor:
    axes = _ints_arg(ins, 1, at, "axes") or []
    x, rank = ins[0], ins[0].dim() + len(axes)
    for a in sorted(a % rank for a in axes):
        x = x.unsqueeze(a)
    return x


def _fwd_pad(ins: list, at: dict) -> Tensor:
    if at.get("mode", "constant") != "constant":
        raise NotImplementedError("Pad mode other than constant")
    x, pads = ins[0], _ints_arg(ins, 1, at, "pads") or []
    value = float(ins[2]) if len(ins) > 2 and ins[2] is not None else float(at.get("value", 0.0))
    axes = [a % x.dim() for a in (_ints_arg(ins, 3, at, "axes") or range(x.dim()))]
    full = [0] * (2 * x.dim())
    for i, a in enumerate(axes):
        full[a], full[a + x.dim()] = pads[i], pads[i + len(axes)]
    torch_pads: list[int] = []
    for a in reversed(range(x.dim())):
        torch_pads += [full[a], full[a + x.dim()]]
    return F.pad(x, torch_pads, value=value)


def _fwd_slice(ins: list, at: dict) -> Tensor:
    x = ins[0]
    starts, ends = _ints_arg(ins, 1, at, "starts") or [], _ints_arg(ins, 2, at, "ends") or []
    axes = _ints_arg(ins, 3, at, "axes") or list(range(len(starts)))
    steps = _ints_arg(ins, 4, at, "steps") or [1] * len(starts)
    for a, st, en, sp in zip(axes, starts, ends, steps, strict=True):
        a = a % x.dim()
        idx = np.arange(x.shape[a])[slice(st, en, sp)]
        x = x.index_select(a, torch.from_numpy(idx.astype(np.int64)))
    return x


def _fwd_split(ins: list, at: dict, n_out: int) -> tuple[Tensor, ...]:
    x, axis = ins[0], int(at.get("axis", 0))
    sizes = _ints_arg(ins, 1, at, "split")
    if not sizes:
        dim = x.shape[axis]
        each = -(-dim // n_out)
        sizes = [min(each, dim - i * each) for i in range(n_out)]
    return torch.split(x, sizes, dim=axis)


def _fwd_reduce_max(ins: list, at: dict) -> Tensor:
    """ReduceMax as a gather of the first arg-max (row-major over the reduced axes), so that
    autograd sends the gradient there only (torch's amax would split ties evenly)."""
    x = ins[0]
    axes = sorted(a % x.dim() for a in (_ints_arg(ins, 1, at, "axes") or range(x.dim())))
    keep = [a for a in range(x.dim()) if a not in axes]
    flat = x.permute(*keep, *axes).reshape(*[x.shape[a] for a in keep], -1)
    top = flat.gather(-1, flat.argmax(dim=-1, keepdim=True))
    if at.get("keepdims", 1):
        return top.reshape([1 if a in axes else x.shape[a] for a in range(x.dim())])
    return top.reshape([x.shape[a] for a in keep])


def _fwd_reduce_mean(ins: list, at: dict) -> Tensor:
    """ReduceMean over the given axes (all when none; axes from the input at opset 18+)."""
    x = ins[0]
    axes = sorted(a % x.dim() for a in (_ints_arg(ins, 1, at, "axes") or range(x.dim())))
    return x.mean(dim=axes, keepdim=bool(at.get("keepdims", 1)))


def _fwd_conv_transpose(ins: list, at: dict) -> Tensor:
    """ONNX ConvTranspose (2-D, explicit pads): the full transposed convolution, output
    padding appended at the end, then the pads cropped off each side."""
    x, w = ins[0], ins[1]
    s = list(at.get("strides", [1, 1]))
    d = list(at.get("dilations", [1, 1]))
    top, left, bottom, right = list(at.get("pads", [0, 0, 0, 0]))
    oph, opw = list(at.get("output_padding", [0, 0]))
    y = F.conv_transpose2d(x, w, stride=s, dilation=d, groups=int(at.get("group", 1)))
    y = F.pad(y, (0, opw, 0, oph))
    y = y[:, :, top : y.shape[2] - bottom, left : y.shape[3] - right]
    return y if len(ins) < 3 or ins[2] is None else y + ins[2].reshape(1, -1, 1, 1)


#: (mode, coordinate_transformation_mode, nearest_mode) -> F.interpolate mode, align_corners
_RESIZE_MODES = {
    ("nearest", "asymmetric", "floor"): ("nearest", None),
    ("nearest", "half_pixel", "round_prefer_floor"): ("nearest-exact", None),
    ("linear", "half_pixel", None): ("linear", False),
    ("linear", "pytorch_half_pixel", None): ("linear", False),
    ("linear", "align_corners", None): ("linear", True),
}


def _fwd_resize(ins: list, at: dict) -> Tensor:
    """ONNX Resize (integer scales or sizes) with ``F.interpolate``, for the mode combinations
    that torch has."""
    x = ins[0]
    mode = str(at.get("mode", "nearest"))
    ctm = str(at.get("coordinate_transformation_mode", "half_pixel"))
    nearest = str(at.get("nearest_mode", "round_prefer_floor")) if mode == "nearest" else None
    key = (mode, ctm, nearest)
    if key not in _RESIZE_MODES:
        raise NotImplementedError(f"Resize {key}")
    tmode, align = _RESIZE_MODES[key]
    if len(ins) > 3 and ins[3] is not None:
        size = [int(v) for v in ins[3].tolist()[2:]]
    else:
        scales = ins[2].tolist()[2:]
        size = [math.floor(n * float(s)) for n, s in zip(x.shape[2:], scales, strict=True)]
    if tmode == "linear":
        tmode = {3: "linear", 4: "bilinear"}[x.dim()]
    return F.interpolate(x, size=size, mode=tmode, align_corners=align)


def _fwd_reshape(ins: list, at: dict) -> Tensor:
    x, shape = ins[0], [int(v) for v in ins[1].tolist()]
    if not at.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return x.reshape(shape)


def _fwd_flatten(ins: list, at: dict) -> Tensor:
    x = ins[0]
    axis = int(at.get("axis", 1)) % max(x.dim(), 1) if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


def _fwd_softmax(ins: list, at: dict, log: bool, opset: int) -> Tensor:
    axis = int(at.get("axis", -1 if opset >= 13 else 1))
    return (F.log_softmax if log else F.softmax)(ins[0], dim=axis)


def _fwd_constant(at: dict) -> np.ndarray:
    if "value" in at:
        return numpy_helper.to_array(at["value"])  # type: ignore[arg-type]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in at:
            return np.asarray(at[key], dtype=dtype)
    raise NotImplementedError(f"Constant with attributes {sorted(at)}")


def forward_node(node: onnx.NodeProto, ins: list, opset: int) -> Tensor:
    """Evaluate one ONNX node with torch ops (single output)."""
    op, at = node.op_type, _attrs(node)
    x = ins[0] if ins else None
    if op == "Conv":
        g = conv_geom(at, x.shape, ins[1].shape)
        y = conv(x, ins[1], g)
        return y if len(ins) < 3 or ins[2] is None else y + ins[2].reshape(1, -1, 1, 1)
    simple: dict[str, Callable[[], Tensor]] = {
        "Relu": lambda: F.relu(x),
        "LeakyRelu": lambda: F.leaky_relu(x, float(at.get("alpha", 0.01))),
        "Sigmoid": lambda: torch.sigmoid(x),
        "Tanh": lambda: torch.tanh(x),
        "Identity": lambda: x,
        "Dropout": lambda: x,
        "HardSigmoid": lambda: _fwd_hard_sigmoid(x, float(at.get("alpha", 0.2)),
                                                 float(at.get("beta", 0.5))),
        "HardSwish": lambda: x * _fwd_hard_sigmoid(x, 1.0 / 6.0, 0.5),
        "PRelu": lambda: torch.where(x > 0, x, ins[1] * x),
        "Elu": lambda: _fwd_elu(x, float(at.get("alpha", 1.0))),
        "Selu": lambda: _fwd_elu(x, float(at.get("alpha", 1.67326319217681884765625)),
                                 float(at.get("gamma", 1.05070102214813232421875))),
        "Gelu": lambda: _fwd_gelu(x, at),
        "Softplus": lambda: F.softplus(x),
        "Mish": lambda: x * torch.tanh(F.softplus(x)),
        "InstanceNormalization": lambda: _fwd_instance_norm(ins, at),
        "Clip": lambda: _fwd_clip(ins, at),
        "BatchNormalization": lambda: _fwd_bn(ins, at),
        "Flatten": lambda: _fwd_flatten(ins, at),
        "Reshape": lambda: _fwd_reshape(ins, at),
        "Gemm": lambda: _fwd_gemm(ins, at),
        "MatMul": lambda: torch.matmul(ins[0], ins[1]),
        "Add": lambda: ins[0] + ins[1],
        "Sub": lambda: ins[0] - ins[1],
        "Mul": lambda: ins[0] * ins[1],
        "Div": lambda: ins[0] / ins[1],
        "Concat": lambda: torch.cat(ins, dim=int(at["axis"])),
        "Transpose": lambda: x.permute(*at.get("perm", range(x.dim())[::-1])),
        "Squeeze": lambda: _fwd_squeeze(ins, at),
        "Unsqueeze": lambda: _fwd_unsqueeze(ins, at),
        "Pad": lambda: _fwd_pad(ins, at),
        "Slice": lambda: _fwd_slice(ins, at),
        "ReduceMax": lambda: _fwd_reduce_max(ins, at),
        "ReduceMean": lambda: _fwd_reduce_mean(ins, at),
        "Resize": lambda: _fwd_resize(ins, at),
        "Upsample": lambda: _fwd_resize([x, None, ins[1]], {
            "mode": at.get("mode", "nearest"), "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor"}),
        "Erf": lambda: torch.erf(x),
        "Pow": lambda: torch.pow(x, ins[1]),
        "ConvTranspose": lambda: _fwd_conv_transpose(ins, at),
        "Sum": lambda: sum(ins[1:], ins[0]),
        "Softmax": lambda: _fwd_softmax(ins, at, False, opset),
        "LogSoftmax": lambda: _fwd_softmax(ins, at, True, opset),
    }
    if op in simple:
        return simple[op]()
    if op in POOL_OPS:
        if op == "MaxPool" and len(node.output) > 1 and node.output[1]:
            raise NotImplementedError("MaxPool with an Indices output")
        return make_pool(op, at, x.shape)(x)
    raise NotImplementedError(f"reference interpreter does not support {op}")


def run_forward(graph: Graph, x: Tensor) -> dict[str, Tensor]:
    """Run the graph on ``x`` (autograd on: every activation depends on ``x``)."""
    dtype = x.dtype
    env: dict[str, Tensor] = {}
    for name, arr in graph.inits.items():
        t = torch.from_numpy(np.array(arr))
        env[name] = t.to(dtype) if t.is_floating_point() else t
    env[graph.input_name] = x
    for node in graph.nodes:
        if node.op_type == "Constant":
            t = torch.from_numpy(np.array(_fwd_constant(_attrs(node))))
            env[node.output[0]] = t.to(dtype) if t.is_floating_point() else t
            continue
        ins = [env[i] if i else None for i in node.input]
        if node.op_type == "Split":
            env.update(zip(node.output, _fwd_split(ins, _attrs(node), len(node.output)),
                           strict=True))
            continue
        env[node.output[0]] = forward_node(node, ins, graph.opset)
        if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
            env[node.output[1]] = torch.ones_like(env[node.output[0]], dtype=torch.bool)
    return env


# ----------------------------------------------------------------------------- split, R0


def logits_name(graph: Graph) -> str:
    """The logits: the model output, or the input of a final Softmax/LogSoftmax (section 3)."""
    idx = graph.producer.get(graph.output_name)
    if idx is not None and graph.nodes[idx].op_type in SOFTMAX_OPS:
        return graph.nodes[idx].input[0]
    return graph.output_name


def _is_spatial_collapse(x: Tensor, y: Tensor) -> bool:
    """Input rank 4 with H·W > 1, output of rank < 4 or with H = W = 1 (section 2)."""
    if x.dim() != 4 or x.shape[2] * x.shape[3] <= 1:
        return False
    return y.dim() < 4 or (y.dim() == 4 and y.shape[2] == 1 and y.shape[3] == 1)


def find_split(graph: Graph, env: dict[str, Tensor]) -> str:
    """Default split tensor (section 2): the input of the last node that collapses a spatial
    map, stepped back over MaxPool/AveragePool; an MLP uses the input of its last Gemm/MatMul."""
    for node in reversed(graph.nodes):
        data = graph.data_inputs(node)
        if data and _is_spatial_collapse(env[data[0]], env[node.output[0]]):
            name = data[0]
            while name in graph.producer:
                prod = graph.nodes[graph.producer[name]]
                if prod.op_type not in ("MaxPool", "AveragePool"):
                    break
                name = graph.data_inputs(prod)[0]
            return name
    for node in reversed(graph.nodes):
        if node.op_type in ("Gemm", "MatMul"):
            return graph.data_inputs(node)[0]
    raise ValueError("no split tensor found: no spatial stage and no Gemm/MatMul")


def initial_map(A: Tensor, g: Tensor) -> Tensor:
    """Section 3: ``R0 = A · mean_{h,w}(g)`` (rank 4; no mean otherwise), ``R0 /= |Σ R0|``."""
    weights = g.mean(dim=(2, 3), keepdim=True) if A.dim() == 4 else g
    R0 = A * weights
    return sdiv(R0, bsum(R0).abs())


# ----------------------------------------------------------------------------- structure


def _raw_tensors(graph: Graph) -> set[str]:
    """Tensors reached from the model input without passing a Conv/Gemm/MatMul (rule 4.3
    applies to a Conv whose data input is one of them)."""
    raw = {graph.input_name}
    for node in graph.nodes:
        if node.op_type not in LINEAR_OPS and any(i in raw for i in graph.data_inputs(node)):
            raw.update(node.output)
    return raw


def _ancestors(graph: Graph, name: str) -> set[str]:
    """``name`` and every non-constant tensor it depends on."""
    seen, stack = set(), [name]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        if t in graph.producer:
            stack += graph.data_inputs(graph.nodes[graph.producer[t]])
    return seen


def _linear_counts_from(graph: Graph, fork: str) -> dict[str, int]:
    """For every tensor downstream of ``fork``: the largest number of Conv/Gemm/MatMul nodes
    on a path from ``fork`` to it."""
    counts = {fork: 0}
    for node in graph.nodes[graph.pos(fork) + 1:]:
        seen = [counts[i] for i in node.input if i in counts]
        if seen:
            c = max(seen) + (node.op_type in LINEAR_OPS)
            counts.update({o: c for o in node.output})
    return counts


def residual_choice(graph: Graph, a: str, b: str) -> str:
    """Rule 4.7 ``residual``: ``'a'`` or ``'b'`` (the operand that receives all of R: the one
    with more Conv/Gemm/MatMul nodes from the nearest common ancestor), or ``'share'``."""
    common = _ancestors(graph, a) & _ancestors(graph, b)
    if not common:
        return "share"
    fork = max(common, key=graph.pos)
    counts = _linear_counts_from(graph, fork)
    ca, cb = counts[a], counts[b]
    return "share" if ca == cb else ("a" if ca > cb else "b")


# ----------------------------------------------------------------------------- relevance walk


@dataclass
class _Walk:
    graph: Graph
    env: dict[str, Tensor]
    ratio: float
    add_mode: str
    raw: set[str]

    def value(self, name: str) -> Tensor:
        return self.env[name].detach()

    def backward(self, node: onnx.NodeProto, R: Tensor) -> list[tuple[str, Tensor]]:
        """Relevance that ``node`` sends to its non-constant inputs, given R at its output."""
        op, data = node.op_type, self.graph.data_inputs(node)
        if op == "Conv":
            return [(data[0], self._conv(node, R))]
        if op in ("Gemm", "MatMul"):
            return [(data[0], self._dense(node, R))]
        if op == "ConvTranspose":
            return [(data[0], self._conv_transpose(node, R))]
        if op in POOL_OPS:
            x = self.value(data[0])
            return [(data[0], pool_rule(x, R, make_pool(op, _attrs(node), x.shape)))]
        if op in ("ReduceMax", "ReduceMean"):
            x, rest = self.value(data[0]), [self.value(i) if i else None for i in node.input[1:]]
            at = _attrs(node)
            reduce = _fwd_reduce_max if op == "ReduceMax" else _fwd_reduce_mean
            return [(data[0], pool_rule(x, R, lambda t: reduce([t, *rest], at)))]
        if op == "Sum" and len(data) == 2 and len(node.input) == 2:
            return self._add(data, R)
        if op == "Sum" and len(data) > 2 and len(node.input) == len(data):
            return list(zip(data, sum_rule([self.value(d) for d in data], R, self.add_mode),
                            strict=True))
        if op in ("Flatten", "Reshape"):
            return [(data[0], R.reshape(self.env[data[0]].shape))]
        if op in MAPPING_OPS:
            return [(data[0], self._mapping(node, R))]
        if op in ("Resize", "Upsample"):
            x = self.value(data[0])
            return [(data[0], x * self._mapping(node, sdiv(R, self.value(node.output[0]))))]
        if op == "Concat":
            return self._concat(node, R)
        if op == "Add" and len(data) == 2:
            return self._add(data, R)
        if op == "Mul" and len(data) == 2:
            return [(self._gate_signal(data, R), R)]
        if op in PASS_THROUGH_OPS or (op in (*ARITH_OPS, "Sum") and len(data) == 1):
            return [(data[0], R.sum_to_size(self.env[data[0]].shape))]
        raise NotImplementedError(f"no relevance rule for {op} with {len(data)} data inputs")

    def _conv(self, node: onnx.NodeProto, R: Tensor) -> Tensor:
        x, w = self.value(node.input[0]), self.value(node.input[1])
        g = conv_geom(_attrs(node), x.shape, w.shape)
        kw = {"stride": g.stride, "pads": g.pads, "dilation": g.dilation, "groups": g.groups}
        if node.input[0] in self.raw:
            return conv_bounded(x, w, R, **kw)
        if tuple(w.shape[2:]) == (1, 1):
            return conv_pointwise(x, w, R, **kw)
        return conv_hidden(x, w, R, ratio=self.ratio, **kw)

    def _conv_transpose(self, node: onnx.NodeProto, R: Tensor) -> Tensor:
        if node.input[0] in self.raw:
            raise NotImplementedError("ConvTranspose fed by the model input")
        x, w, at = self.value(node.input[0]), self.value(node.input[1]), _attrs(node)
        pointwise = all(k == 1 for k in w.shape[2:])
        return layer_rule(x, w, R, lambda t, v: _fwd_conv_transpose([t, v], at), self.ratio,
                          pointwise)

    def _dense(self, node: onnx.NodeProto, R: Tensor) -> Tensor:
        if node.input[0] in self.graph.const or node.input[1] not in self.graph.const:
            raise NotImplementedError(f"{node.op_type} needs a constant weight as 2nd operand")
        ins = [self.value(i) if i else None for i in node.input]
        if node.op_type == "MatMul":
            if ins[0].dim() != 2 or ins[1].dim() != 2:
                raise NotImplementedError("MatMul relevance needs a 2-D input and weight")
            return gemm_rule(ins[0], ins[1].T, R)
        a, b = _gemm_operands(ins, _attrs(node))
        r_in = gemm_rule(a, b.T, R)
        return r_in.T if _attrs(node).get("transA", 0) else r_in

    def _concat(self, node: onnx.NodeProto, R: Tensor) -> list[tuple[str, Tensor]]:
        axis = int(_attrs(node)["axis"])
        sizes = [self.env[i].shape[axis] for i in node.input]
        parts = torch.split(R, sizes, dim=axis)
        return [(i, p) for i, p in zip(node.input, parts, strict=True)
                if i not in self.graph.const]

    def _mapping(self, node: onnx.NodeProto, R: Tensor) -> Tensor:
        """Section 4.9: a value-moving op sends R back along its own transpose (crop for Pad,
        scatter into zeros for Slice, inverse permutation, reshape), i.e. its VJP. Resize:
        the z-rule through it, ``R_in = x · VJP(sdiv(R, resize(x)))``."""
        ins = [self.value(i) if i else None for i in node.input]
        return vjp(lambda t: forward_node(node, [t, *ins[1:]], self.graph.opset), ins[0], R)

    def split_back(self, node: onnx.NodeProto, Rs: list[Tensor | None]) -> Tensor:
        """Section 4.9: Split's relevances concatenated back, zeros for outputs without any."""
        parts = [torch.zeros_like(self.env[o]) if r is None else r
                 for o, r in zip(node.output, Rs, strict=True)]
        return torch.cat(parts, dim=int(_attrs(node).get("axis", 0)))

    def _gate_signal(self, data: list[str], R: Tensor) -> str:
        """Rule 4.8: the operand of a two-tensor Mul that is not a Sigmoid/HardSigmoid output
        (the signal) receives all of R; the gate receives nothing."""
        graph = self.graph
        gates = [d for d in data if d in graph.producer
                 and graph.nodes[graph.producer[d]].op_type in ("Sigmoid", "HardSigmoid")]
        if len(gates) != 1:
            raise NotImplementedError("Mul of two tensors without exactly one gate")
        signal = next(d for d in data if d != gates[0])
        if self.env[signal].shape != R.shape:
            raise NotImplementedError("gating Mul with a broadcast signal")
        return signal

    def _add(self, data: list[str], R: Tensor) -> list[tuple[str, Tensor]]:
        a, b = data
        mode = self.add_mode
        if mode == "residual":
            choice = residual_choice(self.graph, a, b)
            if choice in ("a", "b"):
                return [(a if choice == "a" else b, R)]
            mode = "share"
        Ra, Rb = add_rule(self.value(a), self.value(b), R, mode)
        return [(a, Ra), (b, Rb)]


def _propagate(walk: _Walk, split: str, R0: Tensor) -> Tensor:
    """Section 1 step 4: reverse topological walk from the split to the model input, summing
    relevance where a tensor fans out."""
    graph = walk.graph
    rel: dict[str, Tensor] = {split: R0}
    for node in reversed(graph.nodes[: graph.pos(split) + 1]):
        if node.op_type == "Split":
            outs = [rel.pop(o, None) for o in node.output]
            if any(r is not None for r in outs):
                x_name = graph.data_inputs(node)[0]
                r_in = walk.split_back(node, outs)
                rel[x_name] = rel[x_name] + r_in if x_name in rel else r_in
            continue
        if any(o in rel for o in node.output[1:]):
            raise NotImplementedError(f"relevance on a secondary output of {node.op_type}")
        R = rel.pop(node.output[0], None)
        if R is None:
            continue
        if node.op_type in SOFTMAX_OPS:
            raise NotImplementedError(f"{node.op_type} on the relevance path")
        for name, r_in in walk.backward(node, R):
            rel[name] = rel[name] + r_in if name in rel else r_in
    x = walk.env[graph.input_name]
    return rel.get(graph.input_name, torch.zeros_like(x)).reshape(x.shape)


def explain_one(
    graph: Graph, x: Tensor, target: int | None, ratio: float, split: str | None,
    add_mode: str,
) -> dict[str, object]:
    """Explain one sample ``x`` ([1, ...]); see ``reference_explain``."""
    env = run_forward(graph, x.requires_grad_(True))
    split = split or find_split(graph, env)
    logits = env[logits_name(graph)]
    t = int(logits[0].argmax()) if target is None else int(target)
    (g,) = torch.autograd.grad(logits[0, t], env[split], allow_unused=True)
    A = env[split].detach()
    g = torch.zeros_like(A) if g is None else g
    R0 = initial_map(A, g)
    with torch.no_grad():
        walk = _Walk(graph, env, ratio, add_mode, _raw_tensors(graph))
        R = _propagate(walk, split, R0)
    return {"logits": logits.detach(), "target": t, "R0": R0, "R": R, "split": split}


def reference_explain(
    model: onnx.ModelProto,
    x: np.ndarray,
    target: int | None = None,
    ratio: float = 2.0,
    split: str | None = None,
    add_rule: str = "residual",
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Attribution Equilibrium (Nam & Lee, T-PAMI 2024) for every sample of ``x``.

    Runs the ONNX ``model`` with torch ops one sample at a time, picks the split tensor
    (section 2) unless ``split`` is given, forms ``R0`` (section 3) from the gradient of the
    target logit (top-1 when ``target`` is None), and propagates it to the input with the
    section-4 rules. ``add_rule`` is ``'residual'``, ``'share'`` or ``'z'``.

    Returns numpy float32 ``logits`` [N, K], int64 ``target`` [N], ``R0`` [N, ...] at the
    split tensor, ``R`` (the input's shape) and the ``split`` name.
    """
    if add_rule not in ("residual", "share", "z"):
        raise ValueError(f"unknown add_rule {add_rule!r}")
    graph = Graph(model)
    xs = torch.from_numpy(np.asarray(x)).to(dtype)
    outs = [explain_one(graph, xs[i : i + 1].clone(), target, ratio, split, add_rule)
            for i in range(xs.shape[0])]

    def cat(key: str) -> np.ndarray:
        return torch.cat([o[key] for o in outs]).numpy().astype(np.float32)

    return {
        "logits": cat("logits"),
        "target": np.array([o["target"] for o in outs], dtype=np.int64),
        "R0": cat("R0"),
        "R": cat("R"),
        "split": outs[0]["split"],
    }
