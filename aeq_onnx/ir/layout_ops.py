"""How each op maps its inputs' layouts (and shape values) to its outputs' (for
:mod:`aeq_onnx.ir.layout`). An op not listed here gets an unknown layout."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import onnx_graphsurgeon as gs

from aeq_onnx.ir import layout as L

if TYPE_CHECKING:
    from aeq_onnx.ir.layout import Layout, Values


class Layouts(Protocol):
    """What the op handlers read of :class:`aeq_onnx.ir.samples.Layouts` (which calls them)."""

    def from_onnx(self, name: str) -> Layout | None:
        """What onnx's shape inference says of a tensor."""

    def layout(self, name: str) -> Layout | None:
        """A tensor's layout."""

    def value(self, name: str) -> Values | None:
        """A small int tensor's entries."""

Result = tuple[list["Layout | None"], list["Values | None"]]

#: Ops whose single output has their first input's shape.
SAME = frozenset({
    "Relu", "Sigmoid", "Tanh", "Erf", "Gelu", "Softmax", "LogSoftmax", "LayerNormalization",
    "BatchNormalization", "InstanceNormalization", "Identity", "Dropout", "Neg", "Abs", "Sqrt",
    "Exp", "Log", "Reciprocal", "Clip", "LeakyRelu", "Elu", "Selu", "HardSigmoid",
    "HardSwish", "Softplus", "Mish", "Not", "Sign", "Floor", "Ceil", "Round", "IsNaN", "IsInf",
    "Sin", "Cos", "PRelu", "LpNormalization", "Celu", "ThresholdedRelu", "Softsign",
})
#: Elementwise ops with numpy broadcasting.
BROADCAST = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal",
                       "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
                       "Mod", "Where", "BitShift"})
#: Ops over an NCHW map that keep the batch axis first (their other dims: onnx's inference).
SPATIAL = frozenset({"Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "Resize",
                     "Upsample", "DepthToSpace", "SpaceToDepth", "GlobalAveragePool",
                     "GlobalMaxPool", "GlobalLpPool"})
ARITH: dict[str, Callable[[int, int], int | None]] = {
    "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a // b if b and a % b == 0 else None,
}


def infer(ls: Layouts, node: gs.Node) -> Result:
    """The layouts and values of ``node``'s outputs."""
    ins = [ls.layout(t.name) if t.name else None for t in node.inputs]
    vals = [ls.value(t.name) if t.name else None for t in node.inputs]
    handler = HANDLERS.get(node.op)
    if handler is not None:
        return handler(ls, node, ins, vals)
    if node.op in SAME and ins:
        return [ins[0]], [vals[0] if node.op in ("Identity", "Neg") else None]
    if node.op in BROADCAST:
        return [_broadcast(ins)], [_arith(node.op, vals, ins)]
    if node.op in SPATIAL and ins and ins[0] is not None and L.sample_axis(ins[0]) in (0, None):
        onnx_dims = ls.from_onnx(node.outputs[0].name)
        if onnx_dims is not None:
            return [(ins[0][0], *onnx_dims[1:])], []
    return [], []


def _broadcast(shapes: list[Layout | None]) -> Layout | None:
    """Numpy broadcasting; a Sample broadcasts only against 1."""
    if any(s is None for s in shapes) or not shapes:
        return None
    rank = max(len(s) for s in shapes)  # type: ignore[arg-type]
    out: list[L.Dim] = []
    for i in range(rank):
        dims = [s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0]  # type: ignore[arg-type,index]
        samples = {d for d in dims if isinstance(d, L.Sample)}
        sizes = {d for d in dims if isinstance(d, int) and d != 1}
        if len(samples) > 1 or (samples and sizes) or len(sizes) > 1:
            return None
        if samples:
            out.append(samples.pop())
        elif sizes:
            out.append(sizes.pop())
        else:
            out.append(None if None in dims else 1)
    return tuple(out)


def _entry_op(op: str, a: L.Entry, b: L.Entry) -> L.Entry:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return ARITH[op](a, b)
    if op == "Mul" and isinstance(b, int) and isinstance(a, L.PerN):
        return L.PerN(a.k * b)
    if op == "Mul" and isinstance(a, int) and isinstance(b, L.PerN):
        return L.PerN(a * b.k)
    if op == "Div" and isinstance(a, L.PerN) and isinstance(b, int) and b and a.k % b == 0:
        return L.PerN(a.k // b)
    return None


def _arith(op: str, vals: list[Values | None], ins: list[Layout | None]) -> Values | None:
    """Values of Add/Sub/Mul/Div/Equal/Where over shape entries (scalars broadcast)."""
    known = [v for v in vals if v is not None]
    if len(known) != len(vals) or not known:
        return None
    size = max(len(v) for v in known)
    if any(len(v) not in (1, size) for v in known):
        return None
    cols = [[v[i if len(v) > 1 else 0] for v in known] for i in range(size)]
    if op in ARITH:
        return tuple(_entry_op(op, c[0], c[1]) for c in cols)
    if op == "Equal":
        return tuple(_equal(c[0], c[1]) for c in cols)
    if op == "Where":
        return tuple(None if c[0] is None else c[1] if c[0] else c[2] for c in cols)
    return None


def _equal(a: L.Entry, b: L.Entry) -> L.Entry:
    if isinstance(a, int) and isinstance(b, int):
        return int(a == b)
    other = b if isinstance(a, L.PerN) else a
    if isinstance(a, L.PerN) != isinstance(b, L.PerN) and isinstance(other, int) and other <= 0:
        return 0  # a batch size is positive
    return None


def _ints(ls: Layouts, node: gs.Node, index: int, attr: str) -> list[int] | None:
    """An int list from a constant input (newer opsets) or an attribute ([] when absent)."""
    if len(node.inputs) > index and node.inputs[index].name:
        values = ls.value(node.inputs[index].name)
        if values is None or any(not isinstance(v, int) for v in values):
            return None
        return list(values)  # type: ignore[arg-type]
    return [int(a) for a in node.attrs.get(attr, [])]


def _transpose(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    if x is None:
        return [None], []
    perm = node.attrs.get("perm", list(range(len(x)))[::-1])
    return [tuple(x[p] for p in perm)], []


def _reshape(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x, target = ins[0], vals[1]
    if x is None or target is None:
        return [None], [vals[0]]
    allow_zero = int(node.attrs.get("allowzero", 0))
    wanted: list = []
    for i, t in enumerate(target):
        if t == 0 and not allow_zero:
            wanted.append(x[i] if i < len(x) else None)
        elif t == -1:
            wanted.append("?")
        else:
            wanted.append(t)
    if any(w is None for w in wanted):
        return [None], [vals[0]]
    return [L.place_sample(x, wanted)], [vals[0]]


def _flatten(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    if x is None:
        return [None], []
    axis = int(node.attrs.get("axis", 1)) % (len(x) or 1)
    parts = [x[:axis], x[axis:]]
    wanted: list = [static if (static := L.static_product(p)) is not None else "?"
                    for p in parts]
    return [L.place_sample(x, wanted) if wanted.count("?") <= 1 else None], []


def _squeeze(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    axes = _ints(ls, node, 1, "axes")
    if x is None or axes is None:
        return [None], [vals[0]]
    drop = {a % len(x) for a in axes} if axes else {i for i, d in enumerate(x) if d == 1}
    return [tuple(d for i, d in enumerate(x) if i not in drop)], [vals[0]]


def _unsqueeze(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    axes = _ints(ls, node, 1, "axes")
    if x is None or not axes:
        return [None], [vals[0]]
    rank = len(x) + len(axes)
    dims = list(x)
    for a in sorted(a % rank for a in axes):
        dims.insert(a, 1)
    return [tuple(dims)], [vals[0]]


def _gather(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x, idx = ins[0], ins[1]
    if x is None or idx is None:
        return [None], []
    axis = int(node.attrs.get("axis", 0)) % len(x)
    if isinstance(x[axis], L.Sample):
        return [None], []
    values = None
    if vals[0] is not None and vals[1] is not None and len(x) == 1:
        try:
            values = tuple(vals[0][int(i)] for i in vals[1])
        except (IndexError, TypeError):
            values = None
    return [(*x[:axis], *idx, *x[axis + 1:])], [values]


def _slice(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    args = [_ints(ls, node, i, "") for i in range(1, 5)]
    if x is None or any(a is None for a in args[:2]):
        return [None], []
    starts, ends, axes, steps = (a or [] for a in args)
    axes = [a % len(x) for a in axes] or list(range(len(starts)))
    steps = steps or [1] * len(starts)
    dims = list(x)
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=False):
        dim = dims[axis]
        if isinstance(dim, int):
            dims[axis] = len(range(dim)[slice(start, end, step)])
        elif not (start == 0 and step == 1 and end >= 2**31):
            dims[axis] = None
    values = None
    if vals[0] is not None and len(x) == 1 and axes == [0]:
        values = tuple(vals[0][slice(starts[0], ends[0], steps[0])])
    return [tuple(dims)], [values]


def _concat(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    if any(i is None for i in ins) or not ins:
        return [None], []
    axis = int(node.attrs.get("axis", 0)) % len(ins[0])
    along = [i[axis] for i in ins]
    dims = list(_broadcast([tuple(1 if k == axis else d for k, d in enumerate(i))
                            for i in ins]) or [None] * len(ins[0]))
    dims[axis] = sum(along) if all(isinstance(d, int) for d in along) else None
    values = None
    if all(v is not None for v in vals) and len(ins[0]) == 1:
        values = tuple(e for v in vals for e in v)
    return [tuple(dims)], [values]


def _split(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x, count = ins[0], len(node.outputs)
    sizes = _ints(ls, node, 1, "split")
    if x is None or sizes is None:
        return [], []
    axis = int(node.attrs.get("axis", 0)) % len(x)
    if not sizes and isinstance(x[axis], int):
        sizes = [-(-x[axis] // count)] * (count - 1)
        sizes.append(x[axis] - sum(sizes))
    if len(sizes) != count or isinstance(x[axis], L.Sample):
        return [], []
    return [tuple(s if k == axis else d for k, d in enumerate(x)) for s in sizes], []


def _matmul(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    a, b = ins[0], ins[1]
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return [None], []
    batch = _broadcast([a[:-2], b[:-2]])
    return [None if batch is None else (*batch, a[-2], b[-1])], []


def _gemm(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    a, b = ins[0], ins[1]
    if a is None or b is None:
        return [None], []
    rows = a[1] if int(node.attrs.get("transA", 0)) else a[0]
    cols = b[0] if int(node.attrs.get("transB", 0)) else b[1]
    return [(rows, cols)], []


def _reduce(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    axes = _ints(ls, node, 1, "axes")
    if x is None or axes is None:
        return [None], []
    if not axes:
        axes = [] if int(node.attrs.get("noop_with_empty_axes", 0)) else list(range(len(x)))
    gone = {a % len(x) for a in axes}
    keep = int(node.attrs.get("keepdims", 1))
    value = _product(vals[0]) if node.op == "ReduceProd" and len(x) == 1 else None
    if keep:
        return [tuple(1 if i in gone else d for i, d in enumerate(x))], [value]
    return [tuple(d for i, d in enumerate(x) if i not in gone)], [value]


def _product(values: Values | None) -> Values | None:
    """ReduceProd of a shape tensor's entries (TF's Tensordot: ``N·H·W``), at most one ``k·N``."""
    if values is None or any(v is None for v in values):
        return None
    per_n = [v for v in values if isinstance(v, L.PerN)]
    total = 1
    for v in values:
        total *= v if isinstance(v, int) else 1
    if len(per_n) > 1:
        return None
    return (L.PerN(per_n[0].k * total),) if per_n else (total,)


def _expand(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    return [_broadcast([ins[0], L.as_layout(vals[1])])], []


def _constant_of_shape(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    return [L.as_layout(vals[0])], []


def _shape(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    if x is None:
        return [None], [None]
    picked = x[int(node.attrs.get("start", 0)): node.attrs.get("end", len(x))]
    return [(len(picked),)], [tuple(L.as_entry(d) for d in picked)]


def _pad(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    x = ins[0]
    pads, axes = _ints(ls, node, 1, "pads"), _ints(ls, node, 3, "axes")
    if x is None or pads is None or axes is None:
        return [None], []
    axes = [a % len(x) for a in axes] or list(range(len(x)))
    dims = list(x)
    for i, axis in enumerate(axes):
        extra = pads[i] + pads[i + len(axes)]
        if extra:
            dims[axis] = dims[axis] + extra if isinstance(dims[axis], int) else None
    return [tuple(dims)], []


def _cast(ls: Layouts, node: gs.Node, ins: list, vals: list) -> Result:
    return [ins[0]], [vals[0]]


HANDLERS: dict[str, Callable[[Layouts, gs.Node, list, list], Result]] = {
    "Transpose": _transpose, "Reshape": _reshape, "Flatten": _flatten, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Gather": _gather, "Slice": _slice, "Concat": _concat,
    "Split": _split, "MatMul": _matmul, "Gemm": _gemm, "Expand": _expand,
    "ConstantOfShape": _constant_of_shape, "Shape": _shape, "Pad": _pad, "Cast": _cast,
    **{op: _reduce for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin",
                              "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                              "ReduceLogSumExp")},
}
