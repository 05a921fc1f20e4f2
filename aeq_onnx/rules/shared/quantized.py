"""What the rules of quantized ops share: the straight-through VJP of a quantization (rounding and
saturation are the identity, save for the ReLU a range from zero stands for), and QOperator
nodes read as their float counterpart over the float view (docs/deployed.md).

A QOperator node (QLinearConv, QGemm, QLinearAdd ...) is, in the float view, its float op on
dequantized operands followed by a quantization of the output: its rule builds that float
node (a :class:`StandIn`: the dequantized weights as float32 constants, each integer operand
as its dequantized value) and hands it to the float op's own rule, then maps the flows back to
the QOperator node's inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import onnx_graphsurgeon as gs
from onnx import helper

from aeq_onnx.rules import registry
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.shared import quantization as quant


def zero_mask(ctx: EmitContext, q: str) -> str | None:
    """``1[q > qmin]`` as float32 where ``q``'s range starts at zero (zero point = the type's
    minimum: a quantization that replaces a ReLU, which onnxruntime's quantizer removes
    before such a QuantizeLinear), 1 elsewhere; None when no element has such a range (or the
    zero point is not a constant, or the type is int4, whose comparisons onnxruntime lacks)."""
    elem = ctx.view.elem_type(q)
    params = quant.params_of(ctx.view, q)
    if elem not in quant.QUANTIZED_TYPES - {quant.TensorProto.INT4, quant.TensorProto.UINT4}:
        return None
    low = quant.integer_range(elem)[0]
    zero = None if params is None else params.zero_point
    if zero is not None and not ctx.view.is_constant(zero):
        return None
    at_min = np.asarray(low == 0) if zero is None else ctx.view.constant(zero) == low
    if not at_min.any():
        return None
    em = ctx.em
    dtype = helper.tensor_dtype_to_np_dtype(elem)
    above = em.op_raw("Greater", [ctx.floats.shadow(q), em.const(np.array(low, dtype), "qmin")],
                      "above_zero")
    if not at_min.all():  # per channel: only the channels whose range starts at zero
        axis = params.axis % ctx.view.rank(q) if params is not None else 1
        shape = [1] * ctx.view.rank(q)
        shape[axis] = -1
        other = em.const((~at_min).reshape(shape), "other_channels")
        above = em.op_raw("Or", [above, other], "above_zero_or_other")
    return em.op_raw("Cast", [above], "above_zero_mask", to=quant.TensorProto.FLOAT)


def through_quantization(ctx: EmitContext, q: str, g: str) -> str:
    """The straight-through VJP at a quantized output ``q``: ``g`` (rounding and saturation
    are the identity), times ``1[q > qmin]`` where q's range starts at zero (see
    :func:`zero_mask`: the ReLU such a quantization stands for)."""
    mask = zero_mask(ctx, q)
    return g if mask is None else ctx.em.op("Mul", [g, mask], "ste_vjp")


# ------------------------------------------------------------------------- stand-in nodes


@dataclass
class Ref:
    """A tensor of a stand-in node: just its name (all a rule reads of it)."""

    name: str


@dataclass
class StandIn:
    """A float node standing in for a QOperator node (duck-types ``gs.Node`` for the rules:
    ``op``, ``name``, ``attrs``, ``inputs``, ``outputs``, ``domain``)."""

    op: str
    name: str
    attrs: dict[str, Any]
    inputs: list[Ref]
    outputs: list[Ref]
    domain: str = ""
    back: dict[int, int] = field(default_factory=dict)  # stand-in input -> node input

    @property
    def node(self) -> gs.Node:
        """This stand-in, typed as the node the rules take."""
        return cast(gs.Node, self)


def dequantized(ctx: EmitContext, node: gs.Node, value: int, scale: int, zero: int | None,
                hint: str, axis: int = 1) -> Ref:
    """Input ``value`` of ``node`` dequantized with its ``scale`` and ``zero`` inputs (per
    channel along ``axis``): a float32 constant when all three are constants, else a fresh
    DequantizeLinear (registered in the view with the input's shape)."""
    names = [_input(node, i) for i in (value, scale, zero)]
    key = f"dq|{'|'.join(names)}|{axis}"
    memo = ctx.floats.memo.get(key)
    if memo is not None:
        return Ref(memo)
    view = ctx.view
    if all(not n or view.is_constant(n) for n in names):
        zero_point = view.constant(names[2]) if names[2] else None
        array = quant.dequantize(view.constant(names[0]), view.constant(names[1]), zero_point,
                                 axis)
        memo = ctx.floats.constant(array, hint)
    else:
        fresh = ctx.em.op_raw("DequantizeLinear", [n for n in names if n], f"{hint}_dq")
        memo = ctx.floats.variable(fresh, names[0])
    ctx.floats.memo[key] = memo
    return Ref(memo)


def _input(node: gs.Node, index: int | None) -> str:
    """The name of input ``index`` ('' when absent)."""
    if index is None or index >= len(node.inputs):
        return ""
    return node.inputs[index].name or ""


def integer_units(ctx: EmitContext, node: gs.Node, value: int, zero: int | None,
                  hint: str, axis: int = 0) -> Ref:
    """Input ``value`` of ``node`` as float32 in integer units, ``x - zero_point`` (what
    ConvInteger and MatMulInteger multiply; a per-channel zero point along ``axis``): a
    constant or an emitted tensor."""
    name, zp = _input(node, value), _input(node, zero)
    key = f"units|{name}|{zp}|{axis}"
    memo = ctx.floats.memo.get(key)
    if memo is not None:
        return Ref(memo)
    view = ctx.view
    if view.is_constant(name) and (not zp or view.is_constant(zp)):
        q = view.constant(name)
        offset = view.constant(zp) if zp else None
        ones = np.ones(() if offset is None or offset.size <= 1 else offset.shape, np.float32)
        memo = ctx.floats.constant(quant.dequantize(q, ones, offset, axis), hint)
    else:
        em = ctx.em
        memo = em.op_raw("Cast", [name], f"{hint}_int", to=quant.TensorProto.FLOAT)
        if zp:
            memo = em.op_raw("Sub", [memo, em.op_raw("Cast", [zp], f"{hint}_zp",
                                                     to=quant.TensorProto.FLOAT)], f"{hint}_units")
        memo = ctx.floats.variable(memo, name)
    ctx.floats.memo[key] = memo
    return Ref(memo)


def stand_in(node: gs.Node, op: str, inputs: Sequence[tuple[Ref, int | None]],
             attrs: dict[str, Any] | None = None) -> StandIn:
    """The float ``op`` over ``inputs`` ``(tensor, index of the node input it stands for or
    None)`` with ``node``'s outputs."""
    refs = [ref for ref, _ in inputs]
    back = {i: index for i, (_, index) in enumerate(inputs) if index is not None}
    outs = [Ref(t.name) for t in node.outputs]
    return StandIn(op, node.name, dict(attrs or {}), refs, outs[:1], back=back)


class Delegating(OpRule):
    """A QOperator op whose rules are its float counterpart's over a :class:`StandIn`;
    subclasses give ``float_op`` and :meth:`stand_in`, and ``output_quantized`` (False for a
    float output, as QGemm without ``y_scale``)."""

    float_op = ""

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        raise NotImplementedError

    def output_quantized(self, ctx: EmitContext, node: gs.Node) -> bool:
        return ctx.view.elem_type(node.outputs[0].name) in quant.QUANTIZED_TYPES

    def float_rule(self, ctx: EmitContext) -> OpRule:
        return registry.lookup(self.float_op, ctx.view.opset)

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        problem = self.own_problem(ctx, node)
        if problem is not None:
            return problem
        return self.float_rule(ctx).check(ctx, self.stand_in(ctx, node).node, need)

    def own_problem(self, ctx: EmitContext, node: gs.Node) -> str | None:
        """What the op itself does not support (None: the float rule decides)."""
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        rule = self.float_rule(ctx)
        return f"as {self.float_op}: {rule.describe(ctx, self.stand_in(ctx, node).node)}"

    def _back(self, standin: StandIn, flows: Flows) -> Flows:
        return {standin.back[i]: flow for i, flow in flows.items() if i in standin.back}

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        standin = self.stand_in(ctx, node)
        g = single(grad)
        if self.output_quantized(ctx, node):
            g = through_quantization(ctx, node.outputs[0].name, g)
        return self._back(standin, self.float_rule(ctx).vjp(ctx, standin.node, [g]))

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        standin = self.stand_in(ctx, node)
        flows = self.float_rule(ctx).relevance(ctx, standin.node, [single(rel)])
        return self._back(standin, flows)


def bias(ctx: EmitContext, node: gs.Node, index: int, scales: Sequence[int]) -> Ref | None:
    """An int32 bias (input ``index``) as float32, ``b · Π scales`` (the product of the input
    and weight scales it was quantized with); None when absent or not constant."""
    names = [_input(node, i) for i in (index, *scales)]
    if not names[0] or not all(ctx.view.is_constant(n) for n in names):
        return None
    key = f"bias|{'|'.join(names)}"
    if key not in ctx.floats.memo:
        value = ctx.view.constant(names[0]).astype(np.float64)
        for name in names[1:]:
            value = value * ctx.view.constant(name).astype(np.float64).reshape(-1)
        ctx.floats.memo[key] = ctx.floats.constant(value.astype(np.float32), "bias")
    return Ref(ctx.floats.memo[key])


def same_parameters(ctx: EmitContext, node: gs.Node, value: int, scale: int,
                    zero: int | None) -> bool:
    """True when input ``value`` is read with the scale and zero point it was produced with
    (the float view reads a tensor once, with its producer's parameters)."""
    found = quant.params_of(ctx.view, _input(node, value))
    if found is None:
        return False
    pairs = [(found.scale, _input(node, scale)), (found.zero_point or "", _input(node, zero))]
    for produced, read in pairs:
        if produced == read:
            continue
        if not produced or not read or not (ctx.view.is_constant(produced)
                                             and ctx.view.is_constant(read)):
            return False
        if not np.array_equal(ctx.view.constant(produced), ctx.view.constant(read)):
            return False
    return True


def activation(ctx: EmitContext, node: gs.Node, first: int, hint: str) -> Ref:
    """Input ``first`` of ``node`` dequantized with the two inputs after it (scale, zero)."""
    return dequantized(ctx, node, first, first + 1, first + 2, hint)


class IntegerDelegating(Delegating):
    """ConvInteger / MatMulInteger: the float op in integer units, ``(x - x_zp)`` and
    ``(w - w_zp)``, whose int32 output the graph scales afterwards (a Cast and a Mul by
    ``x_scale · w_scale``). The float view of x is ``x_scale · (x - x_zp)``, so the VJP at x is
    the float op's divided by ``x_scale``; relevance needs no unit (AE's rules do not change
    when an input or a weight is scaled by a positive factor)."""

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        flows = super().vjp(ctx, node, grad)
        params = quant.params_of(ctx.view, node.inputs[0].name)
        if params is None or 0 not in flows:
            return flows
        return {**flows, 0: ctx.em.op("Div", [flows[0], params.scale], "per_x_scale")}


class JoinDelegating(Delegating):
    """QLinearAdd / QLinearMul ``(A, A_s, A_zp, B, B_s, B_zp, C_s, C_zp)``: the float op of
    the two operands. A tensor operand stays the model's own tensor (the join rules ask where
    it comes from: the residual fork, spec 4.7; the gate, 4.8), read with its producer's
    parameters, which must be the ones the op reads it with; a constant operand is
    dequantized."""

    def operand(self, ctx: EmitContext, node: gs.Node, first: int) -> Ref:
        name = _input(node, first)
        if ctx.view.is_constant(name):
            return activation(ctx, node, first, f"{self.float_op.lower()}_const")
        return Ref(name)

    def own_problem(self, ctx: EmitContext, node: gs.Node) -> str | None:
        for first in (0, 3):
            name = _input(node, first)
            if not ctx.view.is_constant(name) and not same_parameters(
                    ctx, node, first, first + 1, first + 2):
                return (f"{node.op} reads '{name}' with a scale or zero point other than the "
                        "one it was quantized with")
        return None

    def stand_in(self, ctx: EmitContext, node: gs.Node) -> StandIn:
        return stand_in(node, self.float_op, [(self.operand(ctx, node, 0), 0),
                                              (self.operand(ctx, node, 3), 3)])
