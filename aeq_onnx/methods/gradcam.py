"""Grad-CAM (Selvaraju et al., ICCV 2017) at the split tensor ``A``: ``cam = ReLU(Σ_c
mean_hw(∂ logit_t / ∂ A)_c · A_c)``, upsampled bilinearly (``pytorch_half_pixel``, i.e.
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``) to the input's H×W;
``relevance`` holds ``cam/C`` in each of the input's C channels (its channel sum is the cam),
``initial_relevance`` the cam at the split's resolution (``[N, 1, h, w]``).

At a token split ``[N, T, C]`` (ViT: the final LayerNorm's tokens) the tokens are first laid
out on the patch grid, ``[N, C, g, g]`` with ``g² = T`` or, with a class token first,
``g² = T - 1`` (the class token is dropped; its gradient still weighs the channels, as the
mean over the tokens includes it; ae-tokens issue 21, item 4).
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
        if shape is not None and len(shape) == 3:
            grid = _grid(shape[1])
            return {"initial_relevance": None if grid is None else [shape[0], 1, grid[0],
                                                                   grid[0]]}
        return {"initial_relevance": None if shape is None else [shape[0], 1, *shape[2:]]}

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        em, split = ctx.em, plan.split
        rank = ctx.view.rank(split)
        if rank not in (3, 4):
            raise LayerError(f"gradcam needs a rank-4 (NCHW) or token ([N, T, C]) split tensor, "
                             f"'{split}' has rank {rank}")
        dims = chains.image_dims(ctx, plan.input, "gradcam")
        chosen, one_hot = chains.seed(ctx, plan)
        grad = chains.split_gradient(ctx, plan, one_hot)
        if rank == 3:  # weights over every token (the class token's gradient included)
            channels = int(ctx.view.static_dims(split)[1])
            mean = em.op("Mul", [em.op("ReduceSum", [grad, em.ints([1], "t")], "g_t",
                                       keepdims=1),
                                 em.const(1.0 / float(ctx.view.static_dims(split)[0]))],
                         "g_mean_t")
            weights = em.op("Reshape", [mean, em.ints([0, channels, 1, 1], "w_shape")],
                            "gradcam_weights")
            split = _on_grid(ctx, split, split)
        else:
            area = float(np.prod(ctx.view.static_dims(split)[1:]))
            weights = em.op("Mul", [em.op("ReduceSum", [grad, em.ints([2, 3], "hw")], "g_hw",
                                          keepdims=1), em.const(1.0 / area)], "gradcam_weights")
        cam = em.op("Relu", [em.op("ReduceSum", [em.op("Mul", [split, weights], "weighted"),
                                                 em.ints([1], "axes")], "cam_sum", keepdims=1)],
                    "cam")
        return {"logits": plan.logits, "target_class": chosen,
                "relevance": _upsample_to_input(ctx, cam, plan.input, dims),
                "initial_relevance": cam, "split_gradient": grad}


def _grid(tokens: object) -> tuple[int, int] | None:
    """``(g, first)``: the patch grid's side and the first patch token (1 after a class
    token), or None when neither T nor T - 1 is a square."""
    if not isinstance(tokens, int):
        return None
    for first in (0, 1):
        side = round((tokens - first) ** 0.5)
        if side > 0 and side * side == tokens - first:
            return side, first
    return None


def _on_grid(ctx: EmitContext, tokens: str, split: str) -> str:
    """``[N, T, C]`` -> ``[N, C, g, g]``: the patch tokens (class token dropped) on their grid
    (raises :class:`LayerError` when the tokens form no square grid or the sample axis is not
    first)."""
    em = ctx.em
    count, channels = ctx.view.static_dims(split)
    grid = _grid(count)
    if grid is None or ctx.samples().sample_axis(split) not in (0, None):
        raise LayerError(f"gradcam at the token split '{split}' needs [N, T, C] tokens on a "
                         f"square grid (T or T - 1 a square), got {count} tokens")
    side, first = grid
    if first:
        tokens = em.op("Slice", [tokens, em.ints([1], "start"), em.ints([count], "end"),
                                 em.ints([1], "axis")], "patch_tokens")
    channels_first = em.op("Transpose", [tokens], "tokens_ct", perm=[0, 2, 1])
    return em.op("Reshape", [channels_first, em.ints([0, int(channels), side, side], "grid")],
                 "token_grid")


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
