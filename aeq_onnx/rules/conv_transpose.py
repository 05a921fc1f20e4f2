"""ConvTranspose with a constant weight: VJP by the Conv with the same weight, relevance by
the AE rule of a hidden layer (spec 4.1, 4.2) or LRP over the node's own op and its adjoint; a
``linear`` layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.rules.base import EmitContext, Flows, OpRule, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared import equilibrium
from aeq_onnx.rules.shared.convolution import lrp_relevance
from aeq_onnx.rules.shared.equilibrium import WeightKind, WeightVariants


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
    traits = frozenset({"linear"})

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
