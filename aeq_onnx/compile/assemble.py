"""Turn the emitted chains into the explainer ModelProto: inputs, outputs, metadata, checks."""

from __future__ import annotations

from typing import Any

import onnx
from onnx import TensorProto, helper

from aeq_onnx.errors import UnsupportedModelError
from aeq_onnx.ir.graph import Dim
from aeq_onnx.ir.planning import Plan
from aeq_onnx.rules.base import EmitContext

#: Output names of the explainer contract (plus the optional ``split_gradient`` and, for
#: ``contrast="versus"``, ``versus_class``).
OUTPUTS = ("logits", "target_class", "relevance", "initial_relevance")
RESERVED = (*OUTPUTS, "target", "split_gradient", "versus_class")
META_PREFIX = "aeq_onnx."
#: the metadata that describes an explainer in one line (``aeq build``'s summary, warnings)
SUMMARY_KEYS = ("method", "split", "ratio", "contrast", "versus", "precision")


def explainer_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The metadata aeq_onnx wrote into ``model``, keys without the ``aeq_onnx.`` prefix."""
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props
            if p.key.startswith(META_PREFIX)}


def summary(metadata: dict[str, str]) -> str:
    """``method ae, split X, ratio 2, ...``: the :data:`SUMMARY_KEYS` present, in that order."""
    return ", ".join(f"{k} {metadata[k]}" for k in SUMMARY_KEYS if k in metadata)


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    graph = model.graph
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for item in (*graph.output, *graph.value_info, *graph.initializer):
        if item.name == old:
            item.name = new


def free_reserved_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rename (in place) internal tensors that use the explainer's reserved names."""
    inputs = {i.name for i in model.graph.input}
    clash = sorted(inputs.intersection(RESERVED) - {i.name for i in model.graph.initializer})
    if clash:
        raise UnsupportedModelError(
            f"the model input is named '{clash[0]}', a name the explainer reserves: rename it"
        )
    names = {n for node in model.graph.node for n in node.output} | {
        t.name for t in model.graph.initializer}
    for name in sorted(names.intersection(RESERVED)):
        _rename(model, name, f"{name}__model")
    return model


def _value_info(ctx: EmitContext, name: str, source: str, elem: int,
                shapes: dict[str, list[Dim] | None]) -> onnx.ValueInfoProto:
    if name in shapes:
        return helper.make_tensor_value_info(name, elem, shapes[name])
    shape = ctx.view.shape(source)
    dims = list(shape) if shape is not None else None
    return helper.make_tensor_value_info(name, elem, dims)


def _prune(nodes: list[onnx.NodeProto], outputs: list[str]) -> list[onnx.NodeProto]:
    """Keep only the nodes that the outputs depend on (the original order is topological)."""
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return kept[::-1]


def _replace(field: Any, items: list[Any]) -> None:
    del field[:]
    field.extend(items)


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    """Delete, in place, initializers that no node reads (no copy of the others)."""
    used = {i for node in graph.node for i in node.input}
    for index in reversed(range(len(graph.initializer))):
        if graph.initializer[index].name not in used:
            del graph.initializer[index]


def _read_logits_output(nodes: list[onnx.NodeProto], model_logits: str) -> None:
    """Point, in place, the explainer's readers of the model's logits (the target's ArgMax,
    contrast seeds) at the explainer's ``logits`` output instead.

    That output is an Identity of the model's logits, which onnxruntime keeps (it makes a
    graph output), so the model's last node keeps its single reader: a second one (say, the
    ArgMax reading a QDQ model's final DequantizeLinear) makes onnxruntime duplicate that
    DequantizeLinear and run the last Gemm in float32 instead of fusing it into QGemm, and
    the logits then differ from the deployed model's (MobileNet-V2 QDQ, docs/deployed.md).
    ``model_logits`` is what the output reads (an fp16 model's: a Cast of its own, whose
    producers are left alone)."""
    for node in nodes:
        for index, name in enumerate(node.input):
            if name == model_logits:
                node.input[index] = "logits"


def assemble(ctx: EmitContext, plan: Plan, flows: dict[str, str], metadata: dict[str, str],
             extra_outputs: tuple[str, ...] = (),
             shapes: dict[str, list[Dim] | None] | None = None) -> onnx.ModelProto:
    """The explainer: the compiler's canonical model rewritten in place (weights never copied)
    with the emitted chains, the contract's inputs and outputs, and the metadata. ``shapes``
    declares outputs whose shape is not their AE source's (e.g. a method's
    ``initial_relevance``)."""
    model = ctx.view.model
    graph = model.graph
    names = (*OUTPUTS, *extra_outputs)
    sources = {"logits": plan.logits, "target_class": None, "relevance": plan.input,
               "initial_relevance": plan.split, "split_gradient": plan.split,
               "versus_class": None}
    batch = ctx.view.shape(plan.input)[0]  # type: ignore[index]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, [batch]) if sources[n] is None
        else _value_info(ctx, n, sources[n] or "", TensorProto.FLOAT, shapes or {})
        for n in names
    ]
    inputs = [i for i in graph.input if i.name == plan.input]
    inputs.append(helper.make_tensor_value_info("target", TensorProto.INT64, [batch]))
    read = {n: ctx.floats.read(flows[n]) for n in names}  # the model's own logits as float32
    outs = {n: helper.make_node("Identity", [read[n]], [n], name=f"aeq/out/{n}") for n in names}
    nodes = [*graph.node, *ctx.em.nodes]
    _read_logits_output(ctx.em.nodes, read["logits"])
    made = [i for i, node in enumerate(nodes) if read["logits"] in node.output]
    nodes.insert(made[0] + 1 if made else 0, outs.pop("logits"))  # before its new readers
    nodes.extend(outs.values())
    _replace(graph.node, _prune(nodes, list(names)))
    _replace(graph.input, inputs)
    _replace(graph.output, outputs)
    graph.initializer.extend(ctx.em.initializers)
    _drop_unused_initializers(graph)
    live = {o for node in graph.node for o in node.output}
    _replace(graph.value_info, [v for v in graph.value_info if v.name in live])
    graph.name = "aeq_explainer"
    opsets = [helper.make_opsetid("", ctx.em.opset)] + [
        o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    _replace(model.opset_import, opsets)
    model.producer_name, model.producer_version = "aeq_onnx", metadata.get("version", "")
    model.ir_version = max(7, helper.find_min_ir_version_for(list(opsets), True))
    _replace(model.metadata_props, [])
    for key, value in metadata.items():
        model.metadata_props.add(key=META_PREFIX + key, value=value)
    return model
