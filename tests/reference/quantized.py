"""What the references of quantized ops share: ONNX's (de)quantization in torch, the
straight-through quantization the explainer's VJP follows (docs/deployed.md: rounding and
saturation are the identity, save where the range starts at zero: that quantization stands for
the ReLU onnxruntime's quantizer removed, and values at zero get no gradient), and QOperator
nodes run as their float op's own reference on dequantized operands.

Independent of ``aeq_onnx``: the dequantization is written here from the ONNX operator
definitions, and the float ops are the references of ``tests/rules/test_<op>.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from onnx import helper

from tests.reference import registry
from tests.reference.interpreter import Walk
from tests.reference.registry import Node

Tensor = torch.Tensor
Flows = list[tuple[str, Tensor]]
BOUNDS = {torch.int8: (-128, 127), torch.uint8: (0, 255), torch.int16: (-32768, 32767),
          torch.uint16: (0, 65535), torch.int32: (-(2**31), 2**31 - 1)}


def along(param: Tensor, axis: int, rank: int) -> Tensor:
    """A per-tensor or per-axis parameter shaped to broadcast along ``axis``."""
    if param.numel() == 1:
        return param.reshape(())
    shape = [1] * rank
    shape[axis % rank] = -1
    return param.reshape(shape)


def dequantize(q: Tensor, scale: Tensor, zero: Tensor | None, dtype: torch.dtype,
               axis: int = 1) -> Tensor:
    """ONNX DequantizeLinear, ``(q - zero_point) · scale``, of integers (a weight); a float
    ``q`` is an activation the reference already holds as the value it stands for (see
    :func:`quantize`) and is returned as it is."""
    if q.is_floating_point():
        return q.to(dtype)
    value = q.to(dtype)
    if zero is not None:
        value = value - along(zero.to(dtype), axis, q.dim())
    return value * along(scale.to(dtype), axis, q.dim())


def bounds(zero: Tensor | None) -> tuple[int, int]:
    """The saturation bounds of the zero point's integer type (uint8 without one)."""
    return BOUNDS[torch.uint8 if zero is None else zero.dtype]


def quantize(x: Tensor, scale: Tensor, zero: Tensor | None, axis: int = 1,
             limits: tuple[int, int] | None = None) -> Tensor:
    """ONNX QuantizeLinear, ``q = saturate(round(x / scale) + zero_point)`` (round half to
    even), held as the value it stands for, ``(q - zero_point) · scale`` (the reference keeps
    every quantized activation as its float view: the fake-quantized surrogate). The gradient
    is straight-through, 1, except where the zero point is the type's minimum (a range from
    zero: the ReLU onnxruntime's quantizer removed), where it is ``1[q > qmin]``."""
    low, high = limits or bounds(zero)
    s = along(scale.to(x.dtype), axis, x.dim())
    z = torch.zeros((), dtype=x.dtype) if zero is None else along(zero.to(x.dtype), axis, x.dim())
    v = x / s + z
    q = torch.clamp(torch.round(v), low, high)
    from_zero = (torch.ones((), dtype=torch.bool) if zero is None and low == 0 else
                 torch.zeros((), dtype=torch.bool) if zero is None else
                 along(zero.to(torch.int64) == low, axis, x.dim()))
    keep = torch.where(from_zero, (q > low).to(x.dtype), torch.ones_like(q))
    return ((q - z) * s).detach() + (x - x.detach()) * keep


def at(node: Node, op: str, keep: Sequence[str] | None = None) -> Node:
    """``node`` as its float ``op`` (attributes filtered by ``keep``; inputs renamed later)."""
    attrs = node.at if keep is None else {k: v for k, v in node.at.items() if k in keep}
    proto = helper.make_node(op, [], list(node.outputs[:1]))
    return Node(proto, dict(attrs), node.opset, node.dtype)


def forward_as(op: str, node: Node, ins: Sequence[Tensor | None],
               keep: Sequence[str] | None = None) -> Tensor:
    """The float ``op``'s reference forward on float operands."""
    entry = registry.lookup(op)
    assert entry is not None, op
    out = entry.forward(ins, at(node, op, keep))
    assert isinstance(out, Tensor)
    return out


@dataclass(frozen=True)
class Operand:
    """One operand of a float op standing in for a QOperator node: its name (the model's own,
    or a new one holding a dequantized value), its float value, the node input it stands for
    and whether it is a constant (a weight)."""

    name: str
    value: Tensor
    stands_for: str
    constant: bool = False


def relevance_as(op: str, walk: Walk, node: Node, operands: Sequence[Operand],
                 output: Tensor, R: Tensor, keep: Sequence[str] | None = None) -> Flows:
    """The float ``op``'s reference relevance over ``operands``; ``output``: the node's
    dequantized output. A model's own name keeps the graph questions of the float rule (the
    residual fork, the gate); flows to new names go back to the node input they stand for."""
    entry = registry.lookup(op)
    assert entry is not None and entry.relevance is not None, op
    env, raw = dict(walk.env), set(walk.raw)
    for operand in operands:
        env[operand.name] = operand.value
        if operand.constant:
            walk.graph.const.add(operand.name)
        if operand.stands_for in walk.raw:
            raw.add(operand.name)
    env[node.outputs[0]] = output
    proto = helper.make_node(op, [o.name for o in operands], list(node.outputs[:1]))
    sub = Walk(walk.graph, env, walk.ratio, walk.add_mode, raw)
    flows = entry.relevance(sub, Node(proto, at(node, op, keep).at, node.opset, node.dtype), R)
    back = {o.name: o.stands_for for o in operands}
    return [(back.get(name, name), r) for name, r in flows]


def alias(node: Node, index: int) -> str:
    """A new name for the dequantized input ``index`` of ``node``."""
    return f"{node.outputs[0]}#dq{index}"


def value_of(walk: Walk, name: str) -> Tensor | None:
    """A kept value (None for an absent optional input)."""
    return walk.value(name) if name else None


def dq(ins: Sequence[Tensor | None], first: int, dtype: torch.dtype, axis: int = 1) -> Tensor:
    """Inputs ``first``, ``first + 1``, ``first + 2`` (value, scale, zero point) dequantized."""
    value, scale = ins[first], ins[first + 1]
    assert value is not None and scale is not None
    zero = ins[first + 2] if len(ins) > first + 2 else None
    return dequantize(value, scale, zero, dtype, axis)


def requantize(y: Tensor, ins: Sequence[Tensor | None], scale: int) -> Tensor:
    """``y`` quantized with inputs ``scale`` and ``scale + 1`` (the output's parameters)."""
    s = ins[scale]
    assert s is not None
    return quantize(y, s, ins[scale + 1] if len(ins) > scale + 1 else None)


def bias_of(ins: Sequence[Tensor | None], index: int, scales: Sequence[int],
            dtype: torch.dtype) -> Tensor | None:
    """An int32 bias as float, ``b · Π scales`` (None when absent)."""
    if len(ins) <= index or ins[index] is None:
        return None
    b = ins[index].to(dtype)  # type: ignore[union-attr]
    for i in scales:
        b = b * ins[i].to(dtype).reshape(-1)  # type: ignore[union-attr]
    return b


def walk_ins(walk: Walk, node: Node) -> list[Tensor | None]:
    """The kept values of every input of ``node``."""
    return [value_of(walk, i) for i in node.inputs]


def units(value: Tensor, zero: Tensor | None, dtype: torch.dtype, axis: int = 1) -> Tensor:
    """``value - zero_point`` as float (ConvInteger / MatMulInteger operands: integers, or the
    integer-valued output of the reference's DynamicQuantizeLinear)."""
    out = value.to(dtype)
    return out if zero is None else out - along(zero.to(dtype), axis, value.dim())
