"""Per-token linear layers (ae-tokens T3): a Gemm/MatMul with a constant weight on token
tensors ``[..., C]`` (rank >= 3, or rank 2 with the sample axis merged into the rows), with
its bias inside (Gemm's C) or in the Add right after a MatMul, read as one layer
``z = x·W + b``. The method picks the rule (``token_linear``):

- ``conservative``, LRP-ε with the bias in the denominator (conservative propagation, Ali et
  al. ICML 2022; the bias absorbs its share)::

      R_in = x ⊙ (sdiv_ε(R, z) Wᵀ)

- ``equilibrium``, AE's rule 4.2 with the bias as one more always-active input of value 1 and
  weight b, whose share is dropped (P, N: the per-sample split of R, spec 4.1)::

      R_in = px ⊙ (sdiv(P + N, px|W| + |b|) |W|ᵀ) + a ⊙ (sdiv(P, a|W| + |b|) |W|ᵀ)
             + ā ⊙ (sdiv(N, ā|W|) |W|ᵀ)

LRP methods keep their own ε / z⁺ rules there, with the bias inside z as well.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir import per_sample
from aeq_onnx.ir.emit import Emitter, sdiv
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.layout import Sample, sample_axis
from aeq_onnx.rules.base import EmitContext, LayerRule

Back = Callable[[str], str]


def is_token_layer(ctx: EmitContext, node: gs.Node) -> bool:
    """A Gemm/MatMul whose input is a token tensor: rank >= 3, or a merged sample axis."""
    layout = ctx.samples().layout(node.inputs[0].name)
    if layout is None:
        return False
    if len(layout) >= 3:
        return True
    k = sample_axis(layout)
    return k is not None and isinstance(layout[k], Sample) and layout[k].merged  # type: ignore[union-attr]


def _bias_vector(view: GraphView, node: gs.Node, width: int) -> np.ndarray | None:
    """The constant operand of an Add node as a length-``width`` vector along the last axis
    (None when it is not a bias of that shape)."""
    variable = view.variable_inputs(node)
    if node.op != "Add" or len(variable) != 1:
        return None
    c = view.constant(node.inputs[1 - variable[0]].name)
    if c.size != width or (c.ndim and c.shape[-1] != width):
        return None
    return c.reshape(-1).astype(np.float32)


def bias_add(view: GraphView, node: gs.Node) -> gs.Node | None:
    """The Add right after a MatMul with a constant weight that adds its bias (its output's
    only consumer, a constant along the last axis), or None."""
    if node.op != "MatMul" or not view.is_constant(node.inputs[1].name):
        return None
    users = view.consumers(node.outputs[0].name)
    width = view.constant(node.inputs[1].name).shape[-1]
    if len(users) != 1 or _bias_vector(view, users[0], width) is None:
        return None
    return users[0]


def biased_layer(ctx: EmitContext, node: gs.Node) -> gs.Node | None:
    """The per-token MatMul whose bias ``node`` (an Add) adds, or None."""
    for index in ctx.view.variable_inputs(node):
        producer = ctx.view.producer(node.inputs[index].name)
        if producer is not None and bias_add(ctx.view, producer) is node and is_token_layer(
                ctx, producer):
            return producer
    return None


def layer_output_and_bias(ctx: EmitContext, node: gs.Node, weight: np.ndarray
                          ) -> tuple[str, np.ndarray | None]:
    """``z`` (the tensor holding x·W + b) and ``b`` of the layer (None: no bias)."""
    width = weight.shape[-1]
    if node.op == "Gemm":
        if len(node.inputs) > 2 and node.inputs[2].name:
            c = float(node.attrs.get("beta", 1.0)) * ctx.view.constant(node.inputs[2].name)
            return node.outputs[0].name, np.broadcast_to(c, (width,)).astype(np.float32)
        return node.outputs[0].name, None
    add = bias_add(ctx.view, node)
    if add is None:
        return node.outputs[0].name, None
    return add.outputs[0].name, _bias_vector(ctx.view, add, width)


def check(ctx: EmitContext, node: gs.Node, rule: LayerRule) -> str | None:
    """Why this token layer cannot get ``rule``'s variant (per-sample reductions)."""
    samples = ctx.samples()
    if rule.variant in ("conservative", "equilibrium-bias"):
        return samples.reduction_problem(node.outputs[0].name)
    if rule.variant == "bounded" and samples.sample_axis(node.inputs[0].name) not in (0, None):
        return "bounded input rule on a token layer whose sample axis is not first"
    return None


def conservative(ctx: EmitContext, x: str, z: str, r: str, back: Back) -> str:
    """``R_in = x ⊙ VJP(sdiv_ε(R, z))`` (``back``: the layer's VJP, ``s -> s Wᵀ``)."""
    samples = ctx.samples()
    layout = samples.layout(z)
    assert layout is not None
    ratio = per_sample.sdiv_eps(ctx.em, r, z, layout, samples.single_sample())
    return ctx.em.op("Mul", [x, back(ratio)], "cons_R_in")


def _times_t(em: Emitter, s: str, w: str, rank: int) -> str:
    """``s @ wᵀ``."""
    if rank == 2:
        return em.op("Gemm", [s, w], "tl_T", transB=1)
    return em.op("MatMul", [s, em.op("Transpose", [w], "tl_W_T")], "tl_T")


def equilibrium(ctx: EmitContext, x: str, y: str, r: str, weight: np.ndarray,
                bias: np.ndarray | None) -> str:
    """Rule 4.2 with the bias as an always-active input of value 1 whose share is dropped."""
    em, samples = ctx.em, ctx.samples()
    layout = samples.layout(y)
    assert layout is not None
    rank = len(layout)
    absw = em.const(np.abs(weight).astype(np.float32), "tl_absW")
    p, n = per_sample.split_signs(em, r, layout, samples.single_sample())
    px = em.op("Relu", [x], "tl_px")
    active = em.op("Cast", [em.op("Greater", [x, em.const(0.0)], "tl_gt0")], "tl_a", to=1)
    inactive = em.op("Sub", [em.const(1.0), active], "tl_na")
    absb = None if bias is None else em.const(np.abs(bias), "tl_absb")

    def share(mass: str, inputs: str, with_bias: bool) -> str:
        den = em.op("MatMul", [inputs, absw], "tl_den")
        if with_bias and absb is not None:
            den = em.op("Add", [den, absb], "tl_den_b")
        back = _times_t(em, sdiv(em, mass, den), absw, rank)
        return em.op("Mul", [inputs, back], "tl_share")

    c = share(em.op("Add", [p, n], "tl_PN"), px, True)
    return em.op("Add", [em.op("Add", [c, share(p, active, True)], "tl_CA"),
                         share(n, inactive, False)], "tl_R_in")
