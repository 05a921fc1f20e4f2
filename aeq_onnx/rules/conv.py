"""Conv: VJP by ConvTranspose, relevance by the AE layer rules (spec 4.1-4.3) or LRP; a
``linear`` layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.geometry import ConvGeometry, conv, conv_t, flip_transpose
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, geometry, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared import equilibrium
from aeq_onnx.rules.shared.convolution import lrp_relevance
from aeq_onnx.rules.shared.equilibrium import WeightKind, WeightVariants


@dataclass
class ConvMap:
    """The linear part of one Conv node (no bias), with its weight variants as initializers.

    ``bwd`` runs a stride-1 transposed convolution as a Conv with flipped, transposed weights
    (stored once per variant), and uses ConvTranspose for strided layers.
    """

    em: Emitter
    w: np.ndarray
    w_name: str
    geom: ConvGeometry
    hint: str
    _flipped: dict[str, str] = field(default_factory=dict)
    _floor: str | None = None

    def __post_init__(self) -> None:
        self.weights = WeightVariants(self.em, self.w, self.hint, self.w_name)

    @property
    def rank_in(self) -> int:
        return 2 + len(self.geom.kernel)

    @property
    def rank_out(self) -> int:
        return self.rank_in

    def weight(self, kind: WeightKind) -> str:
        return self.weights.get(kind)

    def fwd(self, x: str, w: str) -> str:
        return conv(self.em, x, w, self.geom)

    def fwd_floored(self, x: str, w: str) -> str | None:
        if self._floor is None:
            self._floor = self.em.const(equilibrium.zero_floor(self.weights.arrays[w]),
                                        f"{self.hint}_zero_floor")
        return self.em.op("Conv", [x, w, self._floor], "conv_floored",
                          **self.geom.conv_attrs())

    def bwd(self, s: str, w: str) -> str:
        attrs = self.geom.transpose_as_conv_attrs()
        if attrs is None:
            return conv_t(self.em, s, w, self.geom)
        if w not in self._flipped:
            flipped = flip_transpose(self.weights.arrays[w], self.geom.group)
            self._flipped[w] = self.em.const(flipped, f"{self.hint}_flipT")
        return self.em.op("Conv", [s, self._flipped[w]], "convT_as_conv", **attrs)


def conv_map(ctx: EmitContext, node: gs.Node) -> ConvMap:
    """The :class:`ConvMap` of a Conv node with a constant weight."""
    w = ctx.view.constant(node.inputs[1].name)
    kernel = tuple(node.attrs.get("kernel_shape", w.shape[2:]))
    geom = geometry(ctx, node, kernel, int(node.attrs.get("group", 1)))
    return ConvMap(ctx.em, w, node.inputs[1].name, geom, node.name or node.outputs[0].name)


@register("Conv", since=1)
class ConvRule(OpRule):
    """Conv with a constant weight; bias (if any) is ignored by the relevance rules."""

    data_inputs = (0,)
    vjp_name = "ConvTranspose with W"
    relevance_name = "AE: bounded z^B at the input layer (4.3), 1x1 rule (4.2), equilibrium (4.1)"
    traits = frozenset({"linear"})

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if not ctx.view.is_constant(node.inputs[1].name):
            return "Conv weight is not a constant"
        w_shape = ctx.view.constant(node.inputs[1].name).shape
        group = int(node.attrs.get("group", 1))
        in_shape = ctx.view.shape(node.inputs[0].name)
        channels = in_shape[1] if in_shape is not None and len(in_shape) > 1 else None
        if group < 1 or len(w_shape) < 3 or w_shape[0] % group:
            return f"Conv with group={group} and weight shape {list(w_shape)}"
        if isinstance(channels, int) and channels != w_shape[1] * group:
            return f"Conv input has {channels} channels, its weight expects {w_shape[1] * group}"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        w_shape = ctx.view.constant(node.inputs[1].name).shape
        kernel = tuple(node.attrs.get("kernel_shape", w_shape[2:]))
        return ctx.method.conv_rule(node.outputs[0].name in ctx.input_layers, kernel).label

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        lin = conv_map(ctx, node)
        return {0: lin.bwd(single(grad), lin.weight("raw"))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        lin = conv_map(ctx, node)
        x, r = node.inputs[0].name, single(rel)
        rule = ctx.method.conv_rule(node.outputs[0].name in ctx.input_layers, lin.geom.kernel)
        if rule.variant == "bounded":
            return {0: equilibrium.bounded(ctx.em, lin, x, r)}
        if rule.variant in ("epsilon", "zplus"):
            return {0: lrp_relevance(ctx, node, lin, rule, r)}
        nonneg = ctx.view.is_nonnegative(x)
        if rule.variant == "pointwise":
            return {0: equilibrium.pointwise(ctx.em, lin, x, r, nonneg)}
        return {0: equilibrium.equilibrium(ctx.em, lin, x, r, rule.ratio, nonneg)}
