"""Compile a classifier into one explainer model: the method's chains over the prepared plan,
the explainer contract around them.

No op-specific and no method-specific code lives here: every node is handled by its rule from
:mod:`aeq_onnx.rules`, every method emits its own part (:mod:`aeq_onnx.methods`).
"""

from __future__ import annotations

import os

import onnx
import onnx.shape_inference

from aeq_onnx._version import __version__
from aeq_onnx.compile.assemble import assemble
from aeq_onnx.compile.precision import FP16, check_precision, to_float16
from aeq_onnx.compile.prepare import Prepared, prepare
from aeq_onnx.errors import UnsupportedModelError, UnsupportedOpError
from aeq_onnx.ir import emit
from aeq_onnx.load import protos
from aeq_onnx.methods import Method, make_method
from aeq_onnx.rules import registry
from aeq_onnx.rules.base import EmitContext


def emit_context(prepared: Prepared, method: Method) -> EmitContext:
    """A fresh emitter over the prepared view, for ``method``."""
    view = prepared.view
    taken = set(view.tensors) | {n.name for n in view.nodes} | {"target"}
    plan = prepared.plan
    return EmitContext(emit.Emitter(max(view.opset, 17), taken), view, method,
                       set(plan.input_layers), plan.layouts, plan.token_model)


def unsupported_nodes(ctx: EmitContext, method: Method, prepared: Prepared,
                      ) -> list[tuple[str, str, int, str]]:
    """Every node of a chain without the rule the method needs there (:meth:`Method.needs`)."""
    found = []
    for need, nodes in method.needs(prepared.plan):
        for node in nodes:
            reason = registry.why_unsupported(ctx, node, need)
            if reason is not None:
                found.append((node.op, node.name, ctx.view.opset, reason))
    return found


def check_supported(ctx: EmitContext, method: Method, prepared: Prepared) -> None:
    """Raise one :class:`UnsupportedOpError` listing every node that has no rule."""
    found = unsupported_nodes(ctx, method, prepared)
    if found:
        raise UnsupportedOpError(
            [(op, f"{name}: {why}" if why != "no rule for this op" else name, opset)
             for op, name, opset, why in found],
            registry.supported_ops(),
        )


def compile_chains(prepared: Prepared, method: Method) -> tuple[EmitContext, dict[str, str]]:
    """Check every node and the model, then emit the method's chains; the output tensors."""
    ctx = emit_context(prepared, method)
    check_supported(ctx, method, prepared)
    method.check_model(ctx, prepared.plan)
    return ctx, method.emit(ctx, prepared.plan)


def compile_explainer(
    model: str | os.PathLike[str] | bytes | onnx.ModelProto,
    *,
    method: str | Method = "ae",
    layer: str | None = None,
    output: str | None = None,
    expose_gradient: bool = False,
    precision: str = "fp32",
    isolate: bool | None = None,
    **params: object,
) -> onnx.ModelProto:
    """Compile an ONNX classifier into its explainer model for ``method``: a name from
    :data:`~aeq_onnx.METHOD_NAMES` (default ``"ae"``, Attribution Equilibrium) with the
    method's parameters as keywords (``ratio`` and ``add_rule`` for AE, ``epsilon`` for
    LRP-ε, ``contrast`` and ``versus`` for AE and LRP (docs/contrast.md), ``steps``,
    ``baseline`` ("zero" or "blur") and ``blur_sigma`` (pixels) for Integrated Gradients:
    :mod:`aeq_onnx.methods`), or a method object.

    ``layer`` names the split tensor of ae/gradcam (default: spec section 2), ``output`` the
    model output to explain (default: the only one), ``expose_gradient`` adds the
    ``split_gradient`` output (ae, gradcam). ``precision="fp16"`` returns the float16
    explainer of :func:`aeq_onnx.compile.precision.to_float16` (for CUDA; float32 interface).
    ``isolate`` runs the model checks in a limited child process
    (:func:`aeq_onnx.load.load_model`). Raises a typed :class:`~aeq_onnx.errors.AeqError`
    before emitting anything.
    """
    check_precision(precision)
    chosen = make_method(method, **params)
    chosen.check_options(layer, expose_gradient)
    prepared = prepare(model, layer=layer, output=output, at_logits=not chosen.uses_split,
                       isolate=isolate)
    ctx, flows = compile_chains(prepared, chosen)
    plan = prepared.plan
    metadata = {
        "method": chosen.name, **chosen.metadata(), **chosen.plan_metadata(plan),
        "split": plan.split, "input": plan.input, "version": __version__,
        "source_sha256": prepared.sha256,
    }
    extra = (*(("split_gradient",) if expose_gradient else ()), *chosen.extra_outputs())
    del prepared  # the context's view holds what the assembly needs
    explainer = assemble(ctx, plan, flows, metadata, extra, chosen.output_shapes(ctx, plan))
    try:
        protos.check(explainer, full=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(f"the explainer for this model fails ONNX validation (an "
                                    f"inconsistent model?): {first}") from exc
    return to_float16(explainer) if precision == FP16 else explainer
