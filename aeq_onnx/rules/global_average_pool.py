"""GlobalAveragePool: ``VJP(g) = expand(g) / (H·W)``, relevance by the z-rule on x+ (spec
4.6)."""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from aeq_onnx.rules.base import EmitContext
from aeq_onnx.rules.registry import register
from aeq_onnx.rules.shared.pooling import Back, Pool


@register("GlobalAveragePool")
class GlobalAveragePoolRule(Pool):
    """GlobalAveragePool: ``VJP(g) = expand(g) / (H·W)``."""

    vjp_name = "expand(g)/HW"

    def pool_and_back(self, ctx: EmitContext, node: gs.Node, x: str) -> tuple[str, Back]:
        em = ctx.em
        pooled = em.op("GlobalAveragePool", [x], "gap")
        area = float(np.prod(ctx.view.static_dims(node.inputs[0].name)[1:]))

        def back(g: str) -> str:
            spread = em.op("Expand", [g, em.op("Shape", [x], "x_shape")], "gap_expand")
            return em.op("Mul", [spread, em.const(1.0 / area)], "gap_vjp")

        return pooled, back
