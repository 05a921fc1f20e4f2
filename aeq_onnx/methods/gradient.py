"""The gradient family: a VJP from the target logit to the input, compiled into the same
explainer contract as AE (no op-specific code here).

- ``gradient``: ``∂ logit_t / ∂ x`` (saliency, Simonyan et al. 2014; raw and signed);
- ``gradient-x-input``: ``x · ∂ logit_t / ∂ x``;
- ``integrated-gradients`` (Sundararajan et al., ICML 2017): ``(x - x̄) · (1/m) Σ_k ∂ logit_t /
  ∂ x (x̄ + α_k (x - x̄))`` with the midpoint rule ``α_k = (k + ½)/m`` (Captum's
  ``riemann_middle``) over ``steps`` path points from a ``zero`` or ``blur`` baseline; the m
  path points of every sample run as ONE batch through the model's own forward graph, so the
  batch axis must be dynamic.

``initial_relevance`` holds the one-hot seed on the logits (``[N, K]``).
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from aeq_onnx.errors import BatchTilingError
from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.methods import chains
from aeq_onnx.methods.base import Method, Needs, Param, register_method
from aeq_onnx.rules.base import EmitContext

#: Integrated Gradients' forward batch holds the N samples, then m·N path points.
PATH_BATCH = "aeq_path_batch"


class GradientFamily(Method):
    """A VJP from the logits through the whole network."""

    def needs(self, plan: Plan) -> Needs:
        return (("vjp", plan.body),)

    def output_shapes(self, ctx: EmitContext, plan: Plan) -> dict[str, list[Dim] | None]:
        return chains.logits_shape(ctx, plan)


class InputGradient(GradientFamily):
    """One VJP of the target's one-hot seed to the input, then :meth:`weigh`."""

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        chosen, one_hot = chains.seed(ctx, plan)
        grad = self.weigh(ctx, plan, chains.input_gradient(ctx, plan, one_hot))
        return {"logits": plan.logits, "target_class": chosen, "relevance": grad,
                "initial_relevance": one_hot}

    def weigh(self, ctx: EmitContext, plan: Plan, grad: str) -> str:
        """The relevance made of the input gradient: the gradient itself."""
        return grad


@register_method
class Gradient(InputGradient):
    """Saliency: the raw, signed input gradient of the target logit."""

    name = "gradient"
    aliases = ("grad", "saliency")
    order = 10


@register_method
class GradientXInput(InputGradient):
    """The input times its gradient."""

    name = "gradient-x-input"
    aliases = ("gxi",)
    order = 11

    def weigh(self, ctx: EmitContext, plan: Plan, grad: str) -> str:
        return ctx.em.op("Mul", [plan.input, grad], "grad_x_input")


@register_method
class IntegratedGradients(GradientFamily):
    """Integrated Gradients with all path points of the batch in one forward/VJP pass."""

    name = "integrated-gradients"
    aliases = ("ig",)
    order = 12

    steps = Param(32, "integrated-gradients: path steps (default 32)", low=1,
                  invalid="steps must be a positive integer, got {value!r}")
    baseline = Param("zero", "integrated-gradients: baseline (default zero)",
                     choices=("zero", "blur"), invalid="baseline must be one of {choices}, got "
                     "'{value}'")
    #: The blur baseline's Gaussian sigma in pixels (5 px: removes the detail of a 224-pixel
    #: image but keeps its coarse layout; blurred baselines are discussed by Sturmfels et al.,
    #: Distill 2020). The kernel spans ±ceil(3σ) pixels, borders replicated.
    blur_sigma = Param(5.0, "integrated-gradients: the blur baseline's sigma in pixels",
                       low=0.0, low_open=True, cli=False, aliases=("sigma",),
                       invalid="blur sigma must be > 0 pixels, got {value}")

    def metadata(self) -> dict[str, str]:
        blur = {"blur_sigma": f"{self.blur_sigma:g}"} if self.baseline == "blur" else {}
        return {"steps": str(self.steps), "baseline": self.baseline,
                "integration": "riemann-midpoint", **blur}

    def check_model(self, ctx: EmitContext, plan: Plan) -> None:
        """Raise :class:`BatchTilingError` unless every tensor on the path has a free batch
        axis (wherever the layout tracking finds the sample axis: token models move it)."""
        first = (ctx.view.shape(plan.input) or (None,))[0]
        if isinstance(first, int):
            raise BatchTilingError(
                f"{self.name} runs its {self.steps} path points as one batch, but the model "
                f"input '{plan.input}' has a static batch size {first}: export it with a dynamic "
                "batch axis")
        samples = ctx.samples()
        for node in plan.body:
            for out in node.outputs:
                dim = (ctx.view.shape(out.name) or (None,))[0]
                if samples.sample_axis(out.name) is not None:
                    continue  # the sample index lies on a tracked (free) axis
                if isinstance(dim, int):
                    raise BatchTilingError(
                        f"{self.name} needs a model whose batch size is free, but node "
                        f"'{node.name}' ({node.op}) fixes it to {dim} (e.g. a Reshape to a "
                        "hard-coded shape)")

    def emit(self, ctx: EmitContext, plan: Plan) -> dict[str, str]:
        em, x, steps = ctx.em, plan.input, self.steps
        first_path = len(em.nodes)
        start = blur(ctx, x, self.blur_sigma) if self.baseline == "blur" else None
        path, diff = path_points(ctx, x, start, steps)
        batch = em.op("Concat", [x, path], "ig_batch", axis=0)
        _rename_input(list(ctx.view.model.graph.node), x, batch)
        _hoist(ctx, first_path)
        n = em.op("Shape", [x], "n", start=0, end=1)
        logits = _rows(em, plan.logits, em.ints([0], "zero"), n)
        chosen, one_hot = chains.seed(ctx, plan, logits)
        tiled = em.op("Tile", [one_hot, em.ints([steps, 1], "ig_tile")], "ig_seed_path")
        seed = em.op("Concat", [em.op("Mul", [one_hot, em.const(0.0)], "ig_seed0"), tiled],
                     "ig_seed", axis=0)
        first_vjp = len(em.nodes)
        grad = chains.input_gradient(ctx, plan, seed)
        _rename_input(em.nodes[first_vjp:], x, batch)
        _free_batch_dims(ctx, plan)
        mean = _path_mean(ctx, _rows(em, grad, n, em.ints([2**62], "end")), x, steps)
        return {"logits": logits, "target_class": chosen,
                "relevance": em.op("Mul", [diff, mean], "ig"), "initial_relevance": one_hot}


# --------------------------------------------------------------------- the blur baseline


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


def blur(ctx: EmitContext, x: str, sigma: float) -> str:
    """The input blurred by a Gaussian of ``sigma`` pixels (two separable depthwise Convs =
    the 2-D Gaussian with edge-replicated borders); NHWC inputs are transposed."""
    em, dims = ctx.em, chains.image_dims(ctx, x, "the blur baseline")
    nhwc = chains.channel_axis(dims) == 3
    image = em.op("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2]) if nhwc else x
    channels = dims[2] if nhwc else dims[0]
    taps = gaussian_taps(sigma)
    out = _blur_axis(em, _blur_axis(em, image, taps, channels, 2), taps, channels, 3)
    return em.op("Transpose", [out], "to_nhwc", perm=[0, 2, 3, 1]) if nhwc else out


# --------------------------------------------------------------------- the path batch


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


def path_points(ctx: EmitContext, x: str, start: str | None, steps: int) -> tuple[str, str]:
    """``x̄ + α_k (x - x̄)`` for the midpoint ``α_k = (k+½)/m``, step-major as ``[m·N, ...]``,
    and ``x - x̄``. ``start`` is x̄ (None: the zero baseline)."""
    em = ctx.em
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


def _path_mean(ctx: EmitContext, on_path: str, x: str, steps: int) -> str:
    """``(1/m) Σ_k g_k`` of the ``[m·N, ...]`` step-major path gradients, shaped like ``x``."""
    em = ctx.em
    dims = ctx.view.static_dims(x)
    stacked = em.op("Reshape", [on_path, em.ints([steps, -1, *dims], "ig_steps")], "ig_grads")
    total = em.op("ReduceSum", [stacked, em.ints([0], "axes")], "ig_sum", keepdims=0)
    return em.op("Mul", [total, em.const(1.0 / steps)], "ig_mean")
