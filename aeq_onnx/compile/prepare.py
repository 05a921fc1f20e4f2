"""The front half of the pipeline, once for the compiler, ``aeq inspect`` and the audit's
forward model: load (checked) -> canonicalise -> view -> plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx_graphsurgeon as gs

from aeq_onnx.compile.assemble import free_reserved_names
from aeq_onnx.converters import canonicalize_owned
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.planning import Plan, find_logits, make_plan, resolve_layer
from aeq_onnx.ir.samples import Layouts
from aeq_onnx.ir.traits import Traits
from aeq_onnx.load import protos
from aeq_onnx.load.loading import LoadedModel, Source, load_model
from aeq_onnx.rules import registry


@dataclass
class Prepared:
    """A canonical model's graph view (rule-aware data edges and traits), its plan and the
    sha256 of the source model."""

    view: GraphView
    plan: Plan
    sha256: str


def rule_data_edges(view: GraphView) -> Callable[[gs.Node], list[int]]:
    """Data inputs of a node according to its rule (every variable input for unknown ops)."""

    def edges(node: gs.Node) -> list[int]:
        try:
            rule = registry.lookup(node.op, view.opset)
        except registry.RuleNotFound:
            return view.variable_inputs(node)
        return rule.data_indices_of(view, node)

    return edges


def rule_traits(view: GraphView) -> Traits:
    """A node's traits according to its rule (:func:`aeq_onnx.rules.registry.node_traits`)."""
    return lambda node: registry.node_traits(view, node)


def rule_relevance_edges(view: GraphView) -> Callable[[gs.Node], list[int]]:
    """The inputs a node sends relevance to according to its rule (its data edges for
    unknown ops: they are refused anyway)."""

    def edges(node: gs.Node) -> list[int]:
        try:
            rule = registry.lookup(node.op, view.opset)
        except registry.RuleNotFound:
            return view.data_edges(node)
        return rule.relevance_indices_of(view, node)

    return edges


def prepare(model: Source | LoadedModel, *, layer: str | None = None,
            output: str | None = None, at_logits: bool = False,
            isolate: bool | None = None) -> Prepared:
    """Load ``model`` (unless it is a :class:`LoadedModel` already), canonicalise it and plan.

    ``layer`` names the split tensor, also one of the original model that canonicalisation
    renamed away; ``at_logits`` splits at the logits instead (the methods that explain from
    there, and a plain forward model). ``output``: the model output to explain (default: the
    only one). ``isolate``: see :func:`~aeq_onnx.load.load_model`. The weights are held at most
    twice while this runs."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model, isolate=isolate)
    sha256, box = loaded.sha256, [loaded.model]
    original = protos.skeleton(loaded.model) if layer is not None else None
    del loaded  # canonicalize_owned frees each pass's input: no third copy of the weights
    view = GraphView(free_reserved_names(canonicalize_owned(box)))
    view.data_edges = rule_data_edges(view)
    view.traits = rule_traits(view)
    view.relevance_edges = rule_relevance_edges(view)
    layouts = Layouts(view)
    layouts.fill_static_dims()  # dims onnx's inference left unknown (e.g. after an Expand)
    split = None if original is None or layer is None else resolve_layer(original, view, layer)
    if at_logits:
        split = find_logits(view, output)
    return Prepared(view, make_plan(view, split, output, layouts), sha256)
