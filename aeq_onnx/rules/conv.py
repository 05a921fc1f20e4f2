"""Conv: VJP by ConvTranspose, relevance by the AE layer rules (spec 4.1-4.3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.geometry import ConvGeometry, conv, conv_t, flip_transpose
from aeq_onnx.rules import equilibrium, lrp
from aeq_onnx.rules.base import EmitContext, Flows, LayerRule, OpRule, geometry, single
from aeq_onnx.rules.equilibrium import WeightKind, WeightVariants
from aeq_onnx.rules.registry import register


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


def positive_bias(ctx: EmitContext, node: gs.Node, spatial: int) -> str | None:
    """``max(b, 0)`` of a Conv/ConvTranspose bias, shaped ``[C, 1, ...]`` (None: no bias)."""
    if len(node.inputs) < 3 or not node.inputs[2].name:
        return None
    bias = np.maximum(ctx.view.constant(node.inputs[2].name), 0).astype(np.float32)
    return ctx.em.const(bias.reshape(-1, *[1] * spatial), "bias_pos")


def lrp_relevance(ctx: EmitContext, node: gs.Node, lin: ConvMap | ConvTransposeMap,
                  rule: LayerRule, r: str) -> str:
    """LRP-ε (bias inside z = the node's output) or LRP-z⁺ for a Conv/ConvTranspose."""
    x = node.inputs[0].name
    if rule.variant == "epsilon":
        raw = lin.weight("raw")
        return lrp.epsilon(ctx.em, lin, x, node.outputs[0].name, r, rule.epsilon,
                           lambda s: lin.bwd(s, raw))
    bias = positive_bias(ctx, node, lin.rank_in - 2)
    return lrp.zplus(ctx.em, lin, x, r, bias, ctx.view.is_nonnegative(x))


@register("Conv", since=1)
class ConvRule(OpRule):
    """Conv with a constant weight; bias (if any) is ignored by the relevance rules."""

    data_inputs = (0,)
    vjp_name = "ConvTranspose with W"
    relevance_name = "AE: bounded z^B at the input layer (4.3), 1x1 rule (4.2), equilibrium (4.1)"

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


@dataclass
class ConvTransposeMap:
    """The linear part of a ConvTranspose node (no bias): ``fwd`` is the node's own transposed
    convolution, ``bwd`` its adjoint, the Conv with the same weight tensor and attributes."""

    em: Emitter
    w: np.ndarray
    w_name: str
    attrs: dict[str, object]
    in_spatial: tuple[int, ...]
    hint: str

    def __post_init__(self) -> None:
        self.weights = WeightVariants(self.em, self.w, self.hint, self.w_name)

    @property
    def rank_in(self) -> int:
        return 2 + len(self.in_spatial)

    @property
    def rank_out(self) -> int:
        return self.rank_in

    def weight(self, kind: WeightKind) -> str:
        return self.weights.get(kind)

    def fwd(self, x: str, w: str) -> str:
        return self.em.op("ConvTranspose", [x, w], "convtr", **self.attrs)

    def fwd_floored(self, x: str, w: str) -> str | None:
        return None

    def bwd(self, s: str, w: str) -> str:
        conv_attrs = {k: v for k, v in self.attrs.items() if k != "output_padding"}
        return self.em.op("Conv", [s, w], "convtr_adjoint", **conv_attrs)


def conv_transpose_map(ctx: EmitContext, node: gs.Node) -> ConvTransposeMap:
    """The :class:`ConvTransposeMap` of a ConvTranspose node with a constant weight."""
    w = ctx.view.constant(node.inputs[1].name)
    dims = len(w.shape) - 2
    attrs: dict[str, object] = {
        "kernel_shape": list(node.attrs.get("kernel_shape", w.shape[2:])),
        "strides": list(node.attrs.get("strides", [1] * dims)),
        "pads": list(node.attrs.get("pads", [0] * (2 * dims))),
        "dilations": list(node.attrs.get("dilations", [1] * dims)),
        "group": int(node.attrs.get("group", 1)),
        "output_padding": list(node.attrs.get("output_padding", [0] * dims)),
    }
    in_spatial = tuple(ctx.view.static_dims(node.inputs[0].name)[1:])
    return ConvTransposeMap(ctx.em, w, node.inputs[1].name, attrs, in_spatial,
                            node.name or node.outputs[0].name)


@register("ConvTranspose")
class ConvTransposeRule(OpRule):
    """ConvTranspose with a constant weight ``W [Cin, Cout/g, k...]``, read as a layer whose
    ``conv`` is the node's own op and whose ``convT`` is its adjoint, the Conv with the same
    weight tensor, strides, pads, dilations and group. VJP: ``dX = conv(g, W)``. Relevance:
    the AE rule of a hidden layer (4.1, 4.2 for 1×1 kernels) with those two maps; refused
    where the input reaches it without a Conv/Gemm/MatMul (the bounded rule 4.3 is not
    implemented for it)."""

    data_inputs = (0,)
    vjp_name = "Conv with W"
    relevance_name = "AE conv rule with convT/Conv swapped"

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        if not ctx.view.is_constant(node.inputs[1].name):
            return "ConvTranspose weight is not a constant"
        auto_pad = node.attrs.get("auto_pad", "NOTSET")
        if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
            return "ConvTranspose with auto_pad"
        if "output_shape" in node.attrs:
            return "ConvTranspose with output_shape"
        if need == "relevance" and self._fed_by_input(ctx, node):
            return "ConvTranspose fed by the model input (no bounded rule for it)"
        return None

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        w_shape = ctx.view.constant(node.inputs[1].name).shape
        rule = ctx.method.conv_rule(False, tuple(node.attrs.get("kernel_shape", w_shape[2:])))
        return rule.label if rule.variant in ("epsilon", "zplus") else self.relevance_name

    @staticmethod
    def _fed_by_input(ctx: EmitContext, node: gs.Node) -> bool:
        counts = ctx.view.layer_counts(ctx.view.data_inputs()[0])
        return counts.get(node.inputs[0].name) == 0

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        lin = conv_transpose_map(ctx, node)
        return {0: lin.bwd(single(grad), lin.weight("raw"))}

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        lin = conv_transpose_map(ctx, node)
        x, r = node.inputs[0].name, single(rel)
        rule = ctx.method.conv_rule(False, tuple(lin.attrs["kernel_shape"]))  # type: ignore[arg-type]
        if rule.variant in ("epsilon", "zplus"):
            return {0: lrp_relevance(ctx, node, lin, rule, r)}
        nonneg = ctx.view.is_nonnegative(x)
        if all(k == 1 for k in lin.attrs["kernel_shape"]):  # type: ignore[attr-defined]
            return {0: equilibrium.pointwise(ctx.em, lin, x, r, nonneg)}
        return {0: equilibrium.equilibrium(ctx.em, lin, x, r, rule.ratio, nonneg)}
