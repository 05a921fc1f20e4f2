"""Node-emitting helpers shared by every rule: safe division, per-sample sums, ordering edges.

Every helper appends standard ONNX nodes to one :class:`Emitter` and returns the name of the
tensor it produced, so rules read like the formulas of the spec (Nam & Lee, T-PAMI 2024).
Convolution geometry and the conv/convT nodes live in :mod:`aeq_onnx.ir.geometry`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

FLOAT = np.float32


@dataclass
class Emitter:
    """Collects emitted nodes and initializers and hands out unique tensor names.

    ``reuse``: an array constant equal to one emitted before (same dtype, shape and bytes) is
    that initializer again, not a copy (set by a method that emits a second relevance chain
    over the same layers; off by default, so nothing is hashed).

    ``reader`` (set by the compiler: :meth:`aeq_onnx.rules.shared.floatview.FloatView.read`)
    maps every input name of an emitted node to the tensor the explainer reads for it: a
    tensor of the model becomes its float32 view (a fresh DequantizeLinear or Cast for a
    quantized, fp16 or integer tensor; itself in a float32 model), an emitted tensor stays
    itself.
    """

    opset: int
    taken: set[str] = field(default_factory=set)
    prefix: str = "aeq"
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    reuse: bool = False
    reader: Callable[[str], str] | None = None
    _scalars: dict[tuple[str, float], str] = field(default_factory=dict)
    _arrays: dict[tuple[str, tuple[int, ...], bytes], str] = field(default_factory=dict)
    _counter: int = 0

    def fresh(self, hint: str) -> str:
        """A tensor name that is not used anywhere in the model or the emitted nodes."""
        base = f"{self.prefix}/{hint.strip('/').replace(' ', '_')}"
        name = base
        while name in self.taken:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self.taken.add(name)
        return name

    def const(self, value: np.ndarray | np.generic | float | Sequence[int], hint: str = "c") -> str:
        """An initializer holding ``value`` (python floats become float32, int lists int64)."""
        if isinstance(value, float | int) and not isinstance(value, bool):
            key = ("f", float(value))
            if key in self._scalars:
                return self._scalars[key]
            name = self.fresh(f"const_{hint}")
            self.initializers.append(numpy_helper.from_array(np.asarray(value, FLOAT), name))
            self._scalars[key] = name
            return name
        array = np.asarray(value)
        if array.dtype == np.float64:
            array = array.astype(FLOAT)
        found = (array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).digest()) \
            if self.reuse else None
        if found is not None and found in self._arrays:
            return self._arrays[found]
        name = self.fresh(f"const_{hint}")
        self.initializers.append(numpy_helper.from_array(array, name))
        if found is not None:
            self._arrays[found] = name
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        """An int64 initializer (axes, shapes, split sizes)."""
        return self.const(np.asarray(list(values), dtype=np.int64), hint)

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        """Emit one single-output node and return its output name."""
        return self.op_multi(op_type, inputs, 1, hint, **attrs)[0]

    def op_multi(
        self, op_type: str, inputs: Sequence[str], n_out: int, hint: str = "", **attrs: Any
    ) -> list[str]:
        """Emit one node with ``n_out`` outputs (inputs through :attr:`reader`)."""
        read = self.reader
        names = [read(i) if read is not None and i else i for i in inputs]
        return self.op_raw_multi(op_type, names, n_out, hint, **attrs)

    def op_raw(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        """Emit one single-output node reading ``inputs`` as they are (no :attr:`reader`): a
        quantized tensor's integers, say."""
        return self.op_raw_multi(op_type, inputs, 1, hint, **attrs)[0]

    def op_raw_multi(
        self, op_type: str, inputs: Sequence[str], n_out: int, hint: str = "", **attrs: Any
    ) -> list[str]:
        """:meth:`op_raw` with ``n_out`` outputs."""
        outs = [self.fresh(f"{hint or op_type}") for _ in range(n_out)]
        node = helper.make_node(op_type, list(inputs), outs, name=outs[0] + "/node", **attrs)
        self.nodes.append(node)
        return outs


# ---------------------------------------------------------------- elementwise building blocks


def relu(em: Emitter, x: str) -> str:
    """``max(x, 0)``."""
    return em.op("Relu", [x], "relu")


def neg_part(em: Emitter, x: str) -> str:
    """``min(x, 0)``."""
    return em.op("Min", [x, em.const(0.0)], "neg_part")


def mask(em: Emitter, cond: str) -> str:
    """A float32 0/1 tensor from a boolean one."""
    return em.op("Cast", [cond], "mask", to=onnx.TensorProto.FLOAT)


def positive_mask(em: Emitter, x: str, zero: str | None = None) -> str:
    """``1[x > 0]`` as float32 (``zero``: a :func:`zero_after` that orders it)."""
    return mask(em, em.op("Greater", [x, zero or em.const(0.0)], "gt0"))


def zero_after(em: Emitter, s: str) -> str:
    """A scalar ``+0.0`` computed from ``s`` (any tensor without NaN): ONNX has no control
    edges, this value-neutral data edge orders the work that uses it after ``s``.

    onnxruntime's default order runs each node's highest-index input first and its own layout
    nodes get the highest indices, so a layer's masks and mask products, which need only the
    forward pass, would all run right after it and stay alive until the backward pass reaches
    their layer (the peak this saves: docs/performance.md, "The explainer's schedule"). A
    scalar: onnxruntime compares with one on its fast path."""
    least = em.op("ReduceMin", [s], "after_min", keepdims=0)  # a sum could be inf - inf
    is_nan = em.op("IsNaN", [least], "is_nan")
    return em.op("Cast", [is_nan], "zero_after", to=onnx.TensorProto.FLOAT)


def late(em: Emitter, x: str, rank: int) -> str:
    """``x`` itself through a node of the explainer's own (a Reshape to its own shape, which
    onnxruntime aliases: no copy). Emitted before the :func:`zero_after` that orders its
    readers, its lower node index lets that ordering reach x too: onnxruntime then makes its
    layout copy of x when the reader runs, not right after the forward pass."""
    return em.op("Reshape", [x, em.ints([0] * rank, "same_shape")], "late")


def safe_inverse(em: Emitter, b: str, zero: str | None = None) -> str:
    """``1 / b`` where ``b != 0``, else 0 (at b's shape); ``zero``: a :func:`zero_after`."""
    zero = zero or em.const(0.0)
    is_zero = em.op("Equal", [b, zero], "is_zero")
    inverse = em.op("Reciprocal", [em.op("Where", [is_zero, em.const(1.0), b], "safe_den")])
    return em.op("Where", [is_zero, zero, inverse], "safe_inverse")


def sdiv(em: Emitter, a: str, b: str, zero: str | None = None) -> str:
    """``a / b`` where ``b != 0`` and ``0`` where ``b == 0``: never NaN or Inf (spec notation).

    Written ``a · safe_inverse(b)`` so that a per-sample denominator costs one full-size Mul.
    """
    return em.op("Mul", [a, safe_inverse(em, b, zero)], "sdiv")


def div_killed_at_zero(em: Emitter, a: str, b: str, zero: str | None = None) -> str:
    """``a / b`` with ``b == 0`` replaced by 1: finite everywhere, equal to sdiv where b != 0.

    For ratios whose entries at ``b == 0`` only ever reach inputs that the rule multiplies by
    an exact zero afterwards (e.g. ``x·convT(num / conv(x,|W|))``: conv(x,|W|) = 0 means every
    input of that window has x = 0), so the result equals the spec's sdiv form exactly while
    saving a full-size Where.
    """
    zero = zero or em.const(0.0)  # or a zero_after(...) that orders this division
    is_zero = mask(em, em.op("Equal", [b, zero], "is_zero"))  # Cast + Add: faster than Where
    return em.op("Div", [a, em.op("Add", [b, is_zero], "safe_den")], "quot")


def sample_sum(em: Emitter, x: str, rank: int) -> str:
    """``Σ`` over every non-batch axis of each sample, kept as ``[N, 1, ..., 1]``."""
    axes = em.ints(list(range(1, rank)), "axes")
    return em.op("ReduceSum", [x, axes], "sample_sum", keepdims=1)


def _reduce(em: Emitter, op_type: str, x: str, axes: Sequence[int]) -> str:
    """ReduceMin/ReduceMax with keepdims, axes as attribute before opset 18, input from 18."""
    if em.opset >= 18:
        return em.op(op_type, [x, em.ints(axes, "axes")], op_type.lower(), keepdims=1)
    return em.op(op_type, [x], op_type.lower(), axes=list(axes), keepdims=1)


def sample_min(em: Emitter, x: str, rank: int) -> str:
    """Per-sample minimum, shape ``[N, 1, ..., 1]``."""
    return _reduce(em, "ReduceMin", x, list(range(1, rank)))


def sample_max(em: Emitter, x: str, rank: int) -> str:
    """Per-sample maximum, shape ``[N, 1, ..., 1]``."""
    return _reduce(em, "ReduceMax", x, list(range(1, rank)))


def split_signs(em: Emitter, r: str, rank: int) -> tuple[str, str, str]:
    """``P = sdiv(max(R,0), Σmax(R,0))`` (sums to 1) and ``N = -sdiv(min(R,0), Σmin(R,0))``
    (sums to -1), per sample (spec 4.1), and ``Σmax(R,0)`` (``[N, 1, ..., 1]``)."""
    pos = relu(em, r)
    neg = neg_part(em, r)
    total = sample_sum(em, pos, rank)
    p = sdiv(em, pos, total)
    minus_inverse = em.op("Neg", [safe_inverse(em, sample_sum(em, neg, rank))], "minus_inv")
    return p, em.op("Mul", [neg, minus_inverse], "N"), total


def normalise_abs_total(em: Emitter, x: str, rank: int) -> str:
    """``x / |Σ x|`` per sample (spec section 3), zero for an all-zero sample."""
    total = em.op("Abs", [sample_sum(em, x, rank)], "abs_total")
    return sdiv(em, x, total)


def add_all(em: Emitter, terms: Sequence[str], hint: str = "sum") -> str:
    """Sum of one or more same-shaped tensors (a chain of Adds)."""
    if len(terms) == 1:
        return terms[0]
    total = terms[0]
    for term in terms[1:]:  # chained Adds: onnxruntime's Sum of 3 is slower than 2 Adds
        total = em.op("Add", [total, term], hint)
    return total
