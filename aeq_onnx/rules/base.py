"""The rule interface and the emit context that every rule receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol

import onnx_graphsurgeon as gs

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.geometry import ConvGeometry
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.samples import Layouts

#: Map from a node's input index to the tensor carrying the gradient or relevance there.
Flows = dict[int, str]
#: The relevance variants of a Conv, ConvTranspose, Gemm or MatMul layer; ``conservative``
#: and ``equilibrium-bias`` are the two rules of a per-token linear layer (ae-tokens T3).
Variant = Literal["bounded", "pointwise", "equilibrium", "epsilon", "zplus", "conservative",
                  "equilibrium-bias"]
#: How relevance splits where two tensors join (Add, Sum): spec 4.7.
JoinRule = Literal["residual", "share", "z"]


@dataclass(frozen=True)
class LayerRule:
    """The relevance variant a method gives one linear layer, with its parameter (``ratio``
    for ``equilibrium``, ``epsilon`` for ``epsilon``) and the label ``aeq inspect`` shows."""

    variant: Variant
    label: str
    ratio: float = 2.0
    epsilon: float = 0.0


class MethodHooks(Protocol):
    """What a rule may ask the explanation method (:class:`aeq_onnx.methods.Method`): the
    rules say how an op propagates, the method which variant applies where."""

    def conv_rule(self, is_input_layer: bool, kernel: tuple[int, ...]) -> LayerRule:
        """The variant of a Conv/ConvTranspose (``is_input_layer``: no layer before it)."""

    def dense_rule(self, is_input_layer: bool) -> LayerRule:
        """The variant of a Gemm/MatMul layer."""

    def join_rule(self) -> JoinRule:
        """The rule at a join of two tensors."""

    def token_linear_rule(self, is_input_layer: bool) -> LayerRule:
        """The variant of a per-token Gemm/MatMul (a constant weight on ``[..., C]``)."""

    def token_join_rule(self) -> JoinRule:
        """The rule at a join of two tensors in a token model."""


@dataclass
class EmitContext:
    """What a rule may use: the emitter, the graph view and the explanation method."""

    em: Emitter
    view: GraphView
    method: MethodHooks
    #: Conv nodes fed by the model input through constant-only ops (spec 4.3), by name.
    input_layers: set[str] = field(default_factory=set)
    #: Every tensor's layout and sample axis (ae-tokens T1); None: built on first use.
    layouts: Layouts | None = None
    #: A token model (:mod:`aeq_onnx.ir.tokens`): its own rules for constants and joins.
    token_model: bool = False

    def samples(self) -> Layouts:
        """The layouts (built from the view when the compiler gave none)."""
        if self.layouts is None:
            self.layouts = Layouts(self.view)
        return self.layouts


class OpTraits:
    """What the graph questions know of an op: ``traits``, names from
    :data:`aeq_onnx.ir.traits.TRAITS` (``linear``, ``dense``, ``window_pool``, ``softmax``,
    ``nonneg_output``, ``sign_keeping``, ``gate``), checked when the class is registered."""

    traits: ClassVar[frozenset[str]] = frozenset()

    def node_traits(self, view: GraphView, node: gs.Node) -> frozenset[str]:
        """The traits of this node: the class's, unless a rule refines them per node (Clip is
        ``nonneg_output`` when its min is a constant >= 0)."""
        return self.traits


class OpRule(OpTraits):
    """How one op type propagates. Subclasses override what they support.

    ``data_inputs`` lists the inputs that carry data (None: every non-constant input); shape
    inputs of Reshape, pads of Pad, etc. are not data and never receive a gradient.
    ``traits`` (:class:`OpTraits`) tell the graph questions what the op is.
    """

    data_inputs: tuple[int, ...] | None = None
    #: Short name of the relevance rule, for ``aeq inspect`` and docs/ops.md.
    relevance_name = "unsupported"
    vjp_name = "unsupported"

    def data_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        """Indices of the inputs that carry data for this node."""
        variable = view.variable_inputs(node)
        if self.data_inputs is None:
            return variable
        return [i for i in self.data_inputs if i in variable]

    def relevance_indices_of(self, view: GraphView, node: gs.Node) -> list[int]:
        """Indices of the inputs that receive relevance (default: the data inputs; a gate
        such as softmax probabilities receives none)."""
        return self.data_indices_of(view, node)

    def check(self, ctx: EmitContext, node: gs.Node, need: str) -> str | None:
        """None when this rule can emit ``need`` ("vjp" or "relevance") for ``node``."""
        name = self.vjp_name if need == "vjp" else self.relevance_name
        return None if name != "unsupported" else f"no {need} rule for {node.op}"

    def describe(self, ctx: EmitContext, node: gs.Node) -> str:
        """The relevance rule applied to this node (for ``aeq inspect``)."""
        return self.relevance_name

    def vjp(self, ctx: EmitContext, node: gs.Node, grad: list[str | None]) -> Flows:
        """Gradient at the data inputs given the gradient at each output."""
        raise NotImplementedError

    def relevance(self, ctx: EmitContext, node: gs.Node, rel: list[str | None]) -> Flows:
        """Relevance at the data inputs given the relevance at each output."""
        raise NotImplementedError


def single(values: list[str | None]) -> str:
    """The one flow at a single-output node."""
    value = values[0]
    if value is None:
        raise ValueError("no flow at the node's output")
    return value


def geometry(
    ctx: EmitContext, node: gs.Node, kernel: tuple[int, ...], group: int = 1
) -> ConvGeometry:
    """Explicit window geometry of a Conv or pool node (auto_pad resolved, static sizes)."""
    x, y = node.inputs[0].name, node.outputs[0].name
    in_spatial = ctx.view.static_dims(x)[1:]
    out_spatial = ctx.view.static_dims(y)[1:]
    dims = len(kernel)
    strides = tuple(node.attrs.get("strides", [1] * dims))
    dilations = tuple(node.attrs.get("dilations", [1] * dims))
    pads = list(node.attrs.get("pads", [0] * (2 * dims)))
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(dims):
            total = max(
                (out_spatial[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                - in_spatial[i], 0
            )
            small, large = total // 2, total - total // 2
            pads[i], pads[i + dims] = (small, large) if auto_pad == "SAME_UPPER" else (large, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * dims)
    return ConvGeometry(kernel, strides, tuple(pads), dilations, group, in_spatial, out_spatial)
