"""Grad-CAM (Selvaraju et al., ICCV 2017) at the split tensor ``A``: ``cam = ReLU(Σ_c
mean_hw(∂ logit_t / ∂ A)_c · A_c)``, upsampled bilinearly (``pytorch_half_pixel``, i.e.
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``) to the input's H×W;
``relevance`` holds ``cam/C`` in each of the input's C channels (its channel sum is the cam),
``initial_relevance`` the cam at the split's resolution (``[N, 1, h, w]``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from aeq_onnx.errors import LayerError
from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.methods import chains
from aeq_onnx.methods.base import Method, Needs, register_method
from aeq_onnx.rules.base import EmitContext


@register_method
class GradCAM(Method):
    """Grad-CAM at the split tensor, upsampled to the input and split evenly over channels."""

    name = "gradcam"
    aliases = ("grad-cam",)
    order = 20
    uses_split = True
    facts: ClassVar[dict[str, str]] = {"upsample": "bilinear-pytorch_half_pixel",
                                       "channel_split": "cam/C"}

    def needs(self, plan: Plan) -> Needs:
        return (("vjp", plan.head),)

    def output_shapes(self, ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
        shape = ctx.view.shape(plan.split)
        return {"initial_relevance": None if shape is None else [shape[0], 1, *shape[2:]]}

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        em, split = ctx.em, plan.split
        if ctx.view.rank(split) != 4:
            raise LayerError(f"gradcam needs a rank-4 (NCHW) split tensor, '{split}' has rank "
                             f"{ctx.view.rank(split)}")
        dims = chains.image_dims(ctx, plan.input, "gradcam")
        chosen, one_hot = chains.seed(ctx, plan)
        grad = chains.split_gradient(ctx, plan, one_hot)
        area = float(np.prod(ctx.view.static_dims(split)[1:]))
        weights = em.op("Mul", [em.op("ReduceSum", [grad, em.ints([2, 3], "hw")], "g_hw",
                                      keepdims=1), em.const(1.0 / area)], "gradcam_weights")
        cam = em.op("Relu", [em.op("ReduceSum", [em.op("Mul", [split, weights], "weighted"),
                                                 em.ints([1], "axes")], "cam_sum", keepdims=1)],
                    "cam")
        return {"logits": plan.logits, "target_class": chosen,
                "relevance": _upsample_to_input(ctx, cam, plan.input, dims),
                "initial_relevance": cam, "split_gradient": grad}


def _upsample_to_input(ctx: EmitContext, cam: str, x: str, dims: tuple[int, ...]) -> str:
    """``cam`` resized bilinearly to the input's H×W, divided by C and spread over channels."""
    em = ctx.em
    nhwc = chains.channel_axis(dims) == 3
    channels, hw = (dims[2], dims[:2]) if nhwc else (dims[0], dims[1:])
    sizes = em.op("Concat", [em.op("Shape", [cam], "nc", start=0, end=2),
                             em.ints(list(hw), "hw_size")], "cam_sizes", axis=0)
    up = em.op("Resize", [cam, "", "", sizes], "cam_up", mode="linear",
               coordinate_transformation_mode="pytorch_half_pixel")
    if nhwc:
        up = em.op("Transpose", [up], "cam_nhwc", perm=[0, 2, 3, 1])
    share = em.op("Mul", [up, em.const(1.0 / channels)], "cam_share")
    return em.op("Expand", [share, em.op("Shape", [x], "x_shape")], "gradcam")
