"""Gelu (opset 20+, exact or tanh approximation): exact VJP, relevance passes through (4.5)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext, Flows, single
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.activation import PassThrough

GELU_K = 0.044715


@register("Gelu", since=20)
class GeluRule(PassThrough):
    """Exact: ``dX = g · (Φ(x) + x·φ(x))``; tanh approximation with ``u = √(2/π)(x + kx³)``,
    ``t = tanh(u)``: ``dX = g · (½(1+t) + ½x(1-t²)·√(2/π)(1+3kx²))``."""

    vjp_name = "g·(Φ(x)+x·φ(x))"

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        approx = node.attrs.get("approximate", "none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        slope = self._tanh_slope if approx == "tanh" else self._erf_slope
        local = slope(ctx, node.inputs[0].name)
        return {0: ctx.em.op("Mul", [single(grad), local], "gelu_vjp")}

    @staticmethod
    def _erf_slope(ctx: EmitContext, x: str) -> str:
        em = ctx.em
        erf = em.op("Erf", [em.op("Mul", [x, em.const(float(1 / np.sqrt(2)))], "x_rt2")], "erf")
        cdf = em.op("Mul", [em.op("Add", [erf, em.const(1.0)]), em.const(0.5)], "gelu_cdf")
        x2 = em.op("Mul", [x, x], "x2")
        pdf = em.op("Mul", [em.op("Exp", [em.op("Mul", [x2, em.const(-0.5)])], "gelu_e"),
                            em.const(float(1 / np.sqrt(2 * np.pi)))], "gelu_pdf")
        return em.op("Add", [cdf, em.op("Mul", [x, pdf], "x_pdf")], "dgelu")

    @staticmethod
    def _tanh_slope(ctx: EmitContext, x: str) -> str:
        em, c = ctx.em, float(np.sqrt(2 / np.pi))
        x2 = em.op("Mul", [x, x], "x2")
        inner = em.op("Add", [em.const(1.0), em.op("Mul", [x2, em.const(GELU_K)])], "gelu_in")
        t = em.op("Tanh", [em.op("Mul", [em.op("Mul", [x, inner]), em.const(c)], "gelu_u")])
        half = em.op("Mul", [em.op("Add", [t, em.const(1.0)]), em.const(0.5)], "gelu_half")
        sech2 = em.op("Sub", [em.const(1.0), em.op("Mul", [t, t])], "gelu_sech2")
        du = em.op("Mul", [em.op("Add", [em.const(1.0),
                                         em.op("Mul", [x2, em.const(3 * GELU_K)])]),
                           em.const(c)], "gelu_du")
        rest = em.op("Mul", [em.op("Mul", [x, sech2]), em.op("Mul", [du, em.const(0.5)])])
        return em.op("Add", [half, rest], "dgelu")
