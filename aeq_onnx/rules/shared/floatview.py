"""The float view of a deployed graph: what the explainer's gradient and relevance passes read
for each tensor of an int8, fp16 or mixed-precision model (docs/deployed.md).

The explainer's forward pass is the deployed graph itself, untouched, so its logits are the
deployed model's. Everything the explainer adds reads the model through :meth:`FloatView.read`:

- a float32 tensor: itself, except one onnxruntime fuses into an integer kernel (a
  DequantizeLinear's output, or a float tensor that a QuantizeLinear reads): for those a
  *fresh* DequantizeLinear of the integer tensor, so the forward's QDQ groups keep their single
  consumers and onnxruntime still fuses them (the values are the same: the dequantized value
  the deployed model computes);
- an integer tensor that holds quantized values: a DequantizeLinear with the parameters it was
  quantized with (:func:`aeq_onnx.ir.quant.params_of`); an integer model input (uint8 photos):
  a Cast to float32;
- a float16, bfloat16 or float64 tensor: a Cast to float32 (of a fresh Cast where a Cast
  made it: onnxruntime drops a float32 -> float16 -> float32 pair of casts that nothing else
  reads, and another reader would change the deployed model's logits);
- a constant: itself when float32, else a float32 initializer holding its exact value (a
  dequantized weight, an fp16 weight upcast);
- graph inputs and outputs: read directly (nothing fuses across them).

Each tensor is converted once (cached); conversions nothing uses are pruned at assembly.
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto

from aeq_onnx.ir.emit import Emitter
from aeq_onnx.ir.graph import GraphView
from aeq_onnx.ir.traits import DEQUANTIZE, LINEAR
from aeq_onnx.rules.shared import quantization as quant

FLOAT = TensorProto.FLOAT
#: fp16 outputs read by recomputing the op in float32 (see :meth:`FloatView._recompute`).
RECOMPUTED = frozenset({"Clip", "Relu"})
#: Integer accumulators (ConvInteger, MatMulInteger) read as float32.
ACCUMULATING_OPS = frozenset({"ConvInteger", "MatMulInteger"})


class FloatView:
    """The float32 tensor the explainer reads for each tensor of the model."""

    def __init__(self, view: GraphView, em: Emitter) -> None:
        self.view = view
        self.em = em
        self.inputs = set(view.data_inputs())
        self.boundary = self.inputs | set(view.outputs())
        self._cache: dict[str, str] = {}
        #: What rules computed once per compile (a QOperator weight's float32 constant).
        self.memo: dict[str, str] = {}
        self._shadow: dict[str, str] | None = None if _is_qdq(view) else {}

    def shadow(self, name: str) -> str:
        """The tensor to read for the model's own ``name``: in a QDQ graph, its copy in a
        forward pass of the explainer's own (:meth:`_build_shadow`), else ``name``."""
        if self._shadow is None:
            self._shadow = self._build_shadow()
        return self._shadow.get(name, name)

    def _build_shadow(self) -> dict[str, str]:
        """A copy of the model's forward that only the explainer reads.

        onnxruntime fuses a QDQ graph's Conv -> QuantizeLinear -> DequantizeLinear -> Conv
        groups differently once a QuantizeLinear output has a second reader (any reader), so
        reading the deployed forward's tensors would change its logits (docs/deployed.md). The
        copy starts from the input through a one-input Max (an exact copy) so that
        onnxruntime's common-subexpression elimination does not merge it with the deployed
        forward. Not a Reshape: onnxruntime's QDQ propagation moves the copy's first
        QuantizeLinear in front of a Reshape, where it is merged with the model's own, whose
        output then has a second reader (the model's first Conv was no longer fused)."""
        names: dict[str, str] = {n: self.em.op_raw("Max", [n], "shadow_input") for n in self.inputs}
        for node in self.view.nodes:
            ins = [names.get(t.name, t.name) if t.name else "" for t in node.inputs]
            attrs = {**node.attrs, **_domain(node)}
            outs = self.em.op_raw_multi(node.op, ins, len(node.outputs), "shadow", **attrs)
            names.update({t.name: o for t, o in zip(node.outputs, outs, strict=True) if t.name})
        return names

    def read(self, name: str) -> str:
        """The float32 tensor to read for ``name`` (``name`` itself when it is one already,
        or not a tensor of the model)."""
        found = self._cache.get(name)
        if found is None:
            found = self._view(name) if name in self.view.tensors else name
            self._cache[name] = found
        return found

    # -------------------------------------------------------------------- the cases
    def _view(self, name: str) -> str:
        view, elem = self.view, self.view.elem_type(name)
        if view.is_constant(name):
            if view.is_dequantized(name) or elem in quant.OTHER_FLOATS:
                return self.em.const(view.constant(name), "float_view")
            return name
        if elem in quant.OTHER_FLOATS and name in self.boundary - self.inputs:
            return self.as_float(self._apart(name), elem)  # the model's own rounded logits
        if name in self.boundary - self.inputs and elem in (FLOAT, TensorProto.UNDEFINED):
            return name  # the model's own outputs: its logits (graph outputs are not fused)
        if view.is_parameter(name) or name in self.boundary:
            return self.as_float(name, elem)
        producer = view.producer(name)
        if producer is not None and producer.op == "DequantizeLinear":
            fresh = self.em.op_raw("DequantizeLinear",
                                   [self.shadow(t.name) for t in producer.inputs],
                                   "dq_view", **_domain(producer), **producer.attrs)
            return self.as_float(fresh, elem)
        if producer is not None and producer.op == "Cast" and elem in quant.OTHER_FLOATS:
            return self._recast(producer.inputs[0].name, elem)
        if producer is not None and producer.op in RECOMPUTED and elem in quant.OTHER_FLOATS:
            return self._recompute(producer)
        if elem == FLOAT or elem in quant.OTHER_FLOATS:
            quantizer = next((n for n in view.consumers(name) if n.op == "QuantizeLinear"), None)
            if quantizer is not None:
                return self.as_float(quantizer.outputs[0].name)
        return self.as_float(name, elem)

    def _recompute(self, node: gs.Node) -> str:
        """An fp16 Clip/Relu output recomputed in float32 from its inputs' views.

        onnxruntime's CPU runs them in float32 between casts and drops the cast pair after
        them when nothing else reads their fp16 output: the deployed model's next layer gets
        the float32 value. A reader of that output (even through a Reshape) keeps the pair
        and changes the deployed model's logits; recomputing reads only the op's input, whose
        readers change nothing, and gives the same value (a clip of fp16 values is one)."""
        ins = [self.read(t.name) if t.name else "" for t in node.inputs]
        return self.em.op_raw(node.op, ins, "recomputed", **node.attrs)

    def _apart(self, name: str) -> str:
        """``name`` through a Reshape to its own shape (no copy in onnxruntime), so that a Cast
        reading it is not merged with the model's own (see :meth:`_recast`)."""
        same = self.em.ints([0] * self.view.rank(name), "same_shape")
        return self.em.op_raw("Reshape", [name, same], "apart")

    def _recast(self, source: str, elem: int) -> str:
        """A Cast of ``source`` to ``elem`` of the explainer's own, read as float32.

        onnxruntime on the CPU drops a float32 -> float16 -> float32 pair of casts (the values
        skip that rounding); a reader of the model's own Cast, or of an identical Cast (merged
        as a common subexpression), would keep the pair and change the deployed model's
        logits, and a Cast to float32 straight after the model's last Cast would be dropped
        with it (the explainer's logits would skip the rounding the model's have). The
        Reshapes of :meth:`_apart` keep ours apart."""
        fresh = self.em.op_raw("Cast", [self._apart(self.read(source))], "recast", to=elem)
        return self.as_float(fresh, elem)

    def as_float(self, name: str, elem: int | None = None) -> str:
        """``name`` read directly as float32: itself, a Cast, or a DequantizeLinear with the
        parameters it was quantized with."""
        elem = self.view.elem_type(name) if elem is None else elem
        own, name = name, self.shadow(name)
        if elem in (FLOAT, TensorProto.UNDEFINED):
            return name
        if elem in quant.OTHER_FLOATS:
            return self.em.op_raw("Cast", [name], "cast_view", to=FLOAT)
        params = quant.params_of(self.view, own) if elem in quant.QUANTIZED_TYPES else None
        if params is not None:
            fresh = self.em.op_raw("DequantizeLinear", params.inputs(name), "dq_view",
                                   **params.dequantize_attrs())
            return self.as_float(fresh, self.view.elem_type(params.scale))
        producer = self.view.producer(own)
        integer_input = own in self.inputs and elem in quant.QUANTIZED_TYPES
        if integer_input or (producer is not None and producer.op in ACCUMULATING_OPS):
            return self.em.op_raw("Cast", [name], "cast_view", to=FLOAT)
        return name  # indices, shapes, masks: not values

    # -------------------------------------------------------------------- aliases
    def constant(self, value: np.ndarray, hint: str) -> str:
        """A float32 constant made for a rule (a QOperator node's dequantized weight),
        registered in the view so rules can read it as a constant."""
        array = np.asarray(value, np.float32)
        name = self.em.const(array, hint)
        self.view.register(gs.Constant(name, array))
        self._cache[name] = name
        return name

    def variable(self, name: str, like: str) -> str:
        """Register an emitted float32 tensor shaped like ``like`` in the view (so rules can
        ask its shape) and return its name."""
        shape = self.view.shape(like)
        self.view.register(gs.Variable(name, np.float32, None if shape is None else list(shape)))
        self._cache[name] = name
        return name


def _domain(node: gs.Node) -> dict[str, str]:
    """``domain=`` for a node of a non-default domain (com.microsoft's 16-bit Q/DQ)."""
    return {"domain": node.domain} if node.domain not in ("", "ai.onnx", None) else {}


def _is_qdq(view: GraphView) -> bool:
    """True for a QDQ graph: a DequantizeLinear of an activation feeds a layer (Conv, Gemm,
    MatMul: ``linear``). A QOperator graph's layers take the integers themselves."""
    return any(DEQUANTIZE in view.traits(node) and not view.is_constant(node.outputs[0].name)
               and any(LINEAR in view.traits(c) for c in view.consumers(node.outputs[0].name))
               for node in view.nodes)
