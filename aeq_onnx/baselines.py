"""Baseline methods compiled into the same explainer contract as AE (no op-specific code here).

- ``gradient``: ``∂ logit_t / ∂ x`` (saliency, Simonyan et al. 2014; raw and signed);
- ``gradient-x-input``: ``x · ∂ logit_t / ∂ x``;
- ``integrated-gradients`` (Sundararajan et al., ICML 2017): ``(x - x̄) · (1/m) Σ_k ∂ logit_t /
  ∂ x (x̄ + α_k (x - x̄))`` with the midpoint rule ``α_k = (k + ½)/m`` (Captum's
  ``riemann_middle``); the m path points of every sample run as ONE batch through the model's
  own forward graph, so the batch axis must be dynamic;
- ``gradcam`` (Selvaraju et al., ICCV 2017) at the split tensor ``A``: ``cam = ReLU(Σ_c
  mean_hw(∂ logit_t / ∂ A)_c · A_c)``, upsampled bilinearly (``pytorch_half_pixel``, i.e.
  ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``) to the input's
  H×W; ``relevance`` holds ``cam/C`` in each of the input's C channels (its channel sum is the
  cam).

``initial_relevance`` holds what the backward pass starts from: the one-hot seed on the logits
(gradient family, ``[N, K]``) or the cam at the split's resolution (Grad-CAM, ``[N, 1, h, w]``).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from aeq_onnx.compile.compiler import propagate, target_and_seed
from aeq_onnx.errors import BatchTilingError, LayerError, UnsupportedModelError
from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.planning import Plan
from aeq_onnx.rules.base import EmitContext

#: Integrated Gradients' forward batch holds the N samples, then m·N path points.
PATH_BATCH = "aeq_path_batch"


def _seed(ctx: EmitContext, plan: Plan, logits: str | None = None) -> tuple[str, str]:
    """The target class and its one-hot seed for ``[N, K]`` logits (default: the model's)."""
    return target_and_seed(ctx, logits or plan.logits, ctx.view.static_dims(plan.logits)[0])


def input_gradient(ctx: EmitContext, plan: Plan, seed: str) -> str:
    """``∂ (seed · logits) / ∂ input`` by the VJP of every node on the input→logits chain."""
    grads = propagate(ctx, plan.body, (plan.logits, seed), plan.body_tensors,
                      lambda rule, node, outs: rule.vjp(ctx, node, outs))
    grad = grads.get(plan.input)
    return grad if grad is not None else ctx.em.op("Mul", [plan.input, ctx.em.const(0.0)],
                                                   "no_gradient")


def emit_gradient(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """``gradient`` and ``gradient-x-input``."""
    chosen, one_hot = _seed(ctx, plan)
    grad = input_gradient(ctx, plan, one_hot)
    if ctx.method.name == "gradient-x-input":
        grad = ctx.em.op("Mul", [plan.input, grad], "grad_x_input")
    return {"logits": plan.logits, "target_class": chosen, "relevance": grad,
            "initial_relevance": one_hot}


# --------------------------------------------------------------------- layout and blur


def channel_axis(dims: tuple[int, ...]) -> int:
    """1 for an NCHW image, 3 for NHWC (last axis of 1, 3 or 4 channels, first one not)."""
    few = (1, 3, 4)
    return 3 if dims[-1] in few and dims[0] not in few else 1


def image_dims(ctx: EmitContext, x: str, what: str) -> tuple[int, ...]:
    """Per-sample dims of a rank-4 image, or an error naming what needs one."""
    if ctx.view.rank(x) != 4:
        raise UnsupportedModelError(f"{what} needs a rank-4 image input, '{x}' has rank "
                                    f"{ctx.view.rank(x)}")
    return ctx.view.static_dims(x)


def gaussian_taps(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps over ``±ceil(3σ)`` pixels."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (t / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _blur_axis(em: Emitter, x: str, taps: np.ndarray, channels: int, axis: int) -> str:
    """Depthwise Conv with ``taps`` along spatial ``axis`` (2: H, 3: W) of an NCHW tensor,
    on the input padded by edge replication (so the image border is not darkened)."""
    radius = (taps.size - 1) // 2
    pads = [0] * 8
    pads[axis], pads[axis + 4] = radius, radius
    padded = em.op("Pad", [x, em.ints(pads, "blur_pads")], "blur_pad", mode="edge")
    shape = [channels, 1, taps.size, 1] if axis == 2 else [channels, 1, 1, taps.size]
    kernel = em.const(np.broadcast_to(taps.reshape(shape[2:]), shape).copy(), "blur_taps")
    return em.op("Conv", [padded, kernel], "blur", group=channels, kernel_shape=shape[2:])


def blur(ctx: EmitContext, x: str) -> str:
    """The input blurred by a Gaussian of ``blur_sigma`` pixels (two separable depthwise
    Convs = the 2-D Gaussian with edge-replicated borders); NHWC inputs are transposed."""
    em, dims = ctx.em, image_dims(ctx, x, "the blur baseline")
    nhwc = channel_axis(dims) == 3
    image = em.op("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2]) if nhwc else x
    channels = dims[2] if nhwc else dims[0]
    taps = gaussian_taps(ctx.method.blur_sigma)
    out = _blur_axis(em, _blur_axis(em, image, taps, channels, 2), taps, channels, 3)
    return em.op("Transpose", [out], "to_nhwc", perm=[0, 2, 3, 1]) if nhwc else out


# --------------------------------------------------------------------- integrated gradients


def check_tileable(ctx: EmitContext, plan: Plan) -> None:
    """Raise :class:`BatchTilingError` unless every tensor on the path has a free batch axis."""
    name = ctx.method.name
    first = (ctx.view.shape(plan.input) or (None,))[0]
    if isinstance(first, int):
        raise BatchTilingError(
            f"{name} runs its {ctx.method.steps} path points as one batch, but the model input "
            f"'{plan.input}' has a static batch size {first}: export it with a dynamic batch axis")
    for node in plan.body:
        for out in node.outputs:
            dim = (ctx.view.shape(out.name) or (None,))[0]
            if isinstance(dim, int):
                raise BatchTilingError(
                    f"{name} needs a model whose batch size is free, but node '{node.name}' "
                    f"({node.op}) fixes it to {dim} (e.g. a Reshape to a hard-coded shape)")


def _rename_input(nodes: list[onnx.NodeProto], old: str, new: str) -> None:
    """Make ``nodes`` (NodeProtos) read ``new`` wherever they read ``old``, in place."""
    for node in nodes:
        if old in node.input:
            node.input[:] = [new if n == old else n for n in node.input]


def _hoist(ctx: EmitContext, first: int) -> None:
    """Move the nodes emitted since index ``first`` before the model's own nodes (they build
    the forward graph's input)."""
    graph, moved = ctx.view.model.graph, ctx.em.nodes[first:]
    del ctx.em.nodes[first:]
    kept = list(graph.node)
    del graph.node[:]
    graph.node.extend([*moved, *kept])


def _free_batch_dims(ctx: EmitContext, plan: Plan) -> None:
    """Name the batch axis of every recorded forward tensor ``aeq_path_batch`` (the forward
    graph now runs N·(m+1) rows, not the input's N: onnxruntime must not equate the two)."""
    for info in ctx.view.model.graph.value_info:
        dims = info.type.tensor_type.shape.dim
        if info.name in plan.body_tensors and len(dims) > 0:
            dims[0].Clear()
            dims[0].dim_param = PATH_BATCH


def path_points(ctx: EmitContext, x: str, start: str | None) -> tuple[str, str]:
    """``x̄ + α_k (x - x̄)`` for the midpoint ``α_k = (k+½)/m``, step-major as ``[m·N, ...]``,
    and ``x - x̄``. ``start`` is x̄ (None: the zero baseline)."""
    em, steps = ctx.em, ctx.method.steps
    dims = ctx.view.static_dims(x)
    diff = x if start is None else em.op("Sub", [x, start], "ig_diff")
    alphas = ((np.arange(steps) + 0.5) / steps).astype(np.float32)
    scaled = em.op("Mul", [em.const(alphas.reshape(steps, 1, *[1] * len(dims)), "ig_alphas"),
                           em.op("Unsqueeze", [diff, em.ints([0], "axes")], "ig_diff1")],
                   "ig_scaled")
    points = scaled if start is None else em.op("Add", [scaled, start], "ig_points")
    return em.op("Reshape", [points, em.ints([-1, *dims], "ig_flat")], "ig_path"), diff


def _rows(em: Emitter, x: str, begin: str, end: str) -> str:
    """``x[begin:end]`` along the batch axis (1-element int64 bounds)."""
    return em.op("Slice", [x, begin, end, em.ints([0], "axis0")], "rows")


def emit_integrated_gradients(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """Integrated Gradients with all path points of the batch in one forward/VJP pass."""
    check_tileable(ctx, plan)
    em, x, steps = ctx.em, plan.input, ctx.method.steps
    first_path = len(em.nodes)
    start = blur(ctx, x) if ctx.method.baseline == "blur" else None
    path, diff = path_points(ctx, x, start)
    batch = em.op("Concat", [x, path], "ig_batch", axis=0)
    _rename_input(list(ctx.view.model.graph.node), x, batch)
    _hoist(ctx, first_path)
    n = em.op("Shape", [x], "n", start=0, end=1)
    logits = _rows(em, plan.logits, em.ints([0], "zero"), n)
    chosen, one_hot = _seed(ctx, plan, logits)
    tiled = em.op("Tile", [one_hot, em.ints([steps, 1], "ig_tile")], "ig_seed_path")
    seed = em.op("Concat", [em.op("Mul", [one_hot, em.const(0.0)], "ig_seed0"), tiled],
                 "ig_seed", axis=0)
    first_vjp = len(em.nodes)
    grad = input_gradient(ctx, plan, seed)
    _rename_input(em.nodes[first_vjp:], x, batch)
    _free_batch_dims(ctx, plan)
    mean = _path_mean(ctx, _rows(em, grad, n, em.ints([2**62], "end")), x)
    return {"logits": logits, "target_class": chosen,
            "relevance": em.op("Mul", [diff, mean], "ig"), "initial_relevance": one_hot}


def _path_mean(ctx: EmitContext, on_path: str, x: str) -> str:
    """``(1/m) Σ_k g_k`` of the ``[m·N, ...]`` step-major path gradients, shaped like ``x``."""
    em, steps = ctx.em, ctx.method.steps
    dims = ctx.view.static_dims(x)
    stacked = em.op("Reshape", [on_path, em.ints([steps, -1, *dims], "ig_steps")], "ig_grads")
    total = em.op("ReduceSum", [stacked, em.ints([0], "axes")], "ig_sum", keepdims=0)
    return em.op("Mul", [total, em.const(1.0 / steps)], "ig_mean")


# --------------------------------------------------------------------- Grad-CAM


def emit_gradcam(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """Grad-CAM at the split tensor, upsampled to the input and split evenly over channels."""
    em, split = ctx.em, plan.split
    if ctx.view.rank(split) != 4:
        raise LayerError(f"gradcam needs a rank-4 (NCHW) split tensor, '{split}' has rank "
                         f"{ctx.view.rank(split)}")
    dims = image_dims(ctx, plan.input, "gradcam")
    chosen, one_hot = _seed(ctx, plan)
    grads = propagate(ctx, plan.head, (plan.logits, one_hot), plan.head_tensors | {split},
                      lambda rule, node, outs: rule.vjp(ctx, node, outs))
    if split not in grads:
        raise LayerError(f"no gradient reaches layer '{split}' from the logits")
    area = float(np.prod(ctx.view.static_dims(split)[1:]))
    weights = em.op("Mul", [em.op("ReduceSum", [grads[split], em.ints([2, 3], "hw")], "g_hw",
                                  keepdims=1), em.const(1.0 / area)], "gradcam_weights")
    cam = em.op("Relu", [em.op("ReduceSum", [em.op("Mul", [split, weights], "weighted"),
                                             em.ints([1], "axes")], "cam_sum", keepdims=1)],
                "cam")
    return {"logits": plan.logits, "target_class": chosen,
            "relevance": _upsample_to_input(ctx, cam, plan.input, dims),
            "initial_relevance": cam, "split_gradient": grads[split]}


def _upsample_to_input(ctx: EmitContext, cam: str, x: str, dims: tuple[int, ...]) -> str:
    """``cam`` resized bilinearly to the input's H×W, divided by C and spread over channels."""
    em = ctx.em
    nhwc = channel_axis(dims) == 3
    channels, hw = (dims[2], dims[:2]) if nhwc else (dims[0], dims[1:])
    sizes = em.op("Concat", [em.op("Shape", [cam], "nc", start=0, end=2),
                             em.ints(list(hw), "hw_size")], "cam_sizes", axis=0)
    up = em.op("Resize", [cam, "", "", sizes], "cam_up", mode="linear",
               coordinate_transformation_mode="pytorch_half_pixel")
    if nhwc:
        up = em.op("Transpose", [up], "cam_nhwc", perm=[0, 2, 3, 1])
    share = em.op("Mul", [up, em.const(1.0 / channels)], "cam_share")
    return em.op("Expand", [share, em.op("Shape", [x], "x_shape")], "gradcam")


def emit(ctx: EmitContext, plan: Plan) -> dict[str, str]:
    """The output tensors of a baseline method (not AE, not LRP)."""
    if ctx.method.name == "integrated-gradients":
        return emit_integrated_gradients(ctx, plan)
    if ctx.method.name == "gradcam":
        return emit_gradcam(ctx, plan)
    return emit_gradient(ctx, plan)
