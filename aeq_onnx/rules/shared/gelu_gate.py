"""GELU's gate (ae-tokens T3): ``x·0.5·(1 + erf(x/√2))``, the tanh form and Keras 3's
``0.5·x·erfc(−x/√2)`` (``erfc`` written ``1 − erf``, the gate starting with a Neg), as exporters
write them, are a Mul of the signal and a gate computed from it; the gate gets no relevance
(pass-through to x, LRP-0 with the gate held constant; rule 4.8)."""

from __future__ import annotations

from aeq_onnx.ir.graph import GraphView

#: Ops that may lie on a GELU gate between the signal and Erf/Tanh (with constants).
GATE_ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Neg"})
GATE_CORES = frozenset({"Erf", "Tanh"})


def _scaled_root(view: GraphView, name: str) -> str:
    """``name`` with Mul/Div by constants stripped off (x·0.5 -> x)."""
    node = view.producer(name)
    while node is not None and node.op in ("Mul", "Div") and len(view.variable_inputs(node)) == 1:
        index = view.variable_inputs(node)[0]
        if node.op == "Div" and index != 0:
            break
        name = node.inputs[index].name
        node = view.producer(name)
    return name


def gelu_gate(view: GraphView, gate: str, signal: str, limit: int = 24) -> bool:
    """True when ``gate`` is GELU's gate of ``signal``: a function of signal's own source x
    through constants-only arithmetic (and Neg) around one Erf or Tanh (``0.5·(1+erf(x/√2))``,
    ``1 − erf(−x/√2)``, the tanh form with ``x + 0.044715·x³``)."""
    root = _scaled_root(view, signal)
    stack, seen, core = [gate], set[str](), False
    while stack and len(seen) < limit:
        name = stack.pop()
        if name in seen or view.is_constant(name) or _scaled_root(view, name) == root:
            continue
        seen.add(name)
        node = view.producer(name)
        if node is None:
            return False
        if node.op in GATE_CORES:
            core = True
        elif node.op not in GATE_ARITHMETIC:
            return False
        stack.extend(t.name for t in node.inputs if t.name)
    return core and not stack
