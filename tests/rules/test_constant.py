"""Constant nodes (``value``, ``value_float``, ``value_floats``, ``value_int(s)``): not on any
relevance path, but their values feed other ops — a bias, a scale and a per-column weight from
Constant nodes between two convs, below the split and in the head; explainer vs the torch
reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper

from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import SHAPE, C, check_above, check_below


@reference("Constant")
def constant(ins: Ins, node: Node) -> torch.Tensor:
    """The constant's value; floating values in the interpreter's dtype."""
    at = node.at
    if "value" in at:
        array = numpy_helper.to_array(at["value"])
    else:
        kinds = (("value_float", np.float32), ("value_floats", np.float32),
                 ("value_int", np.int64), ("value_ints", np.int64))
        key, dtype = next(((k, d) for k, d in kinds if k in at), (None, None))
        if key is None:
            raise NotImplementedError(f"Constant with attributes {sorted(at)}")
        array = np.asarray(at[key], dtype=dtype)
    t = torch.from_numpy(np.array(array))
    return t.to(node.dtype) if t.is_floating_point() else t


def constant_node(net: Net, **attrs: object) -> str:
    """A Constant node with ``attrs``; its output name."""
    name = net.fresh("constant")
    net.nodes.append(helper.make_node("Constant", [], [name], name=f"n_{name}", **attrs))
    return name


def constant_operands(net: Net) -> str:
    """``(x + bias) · 0.7 · w``: the bias a ``value`` tensor [C, 1, 1], the scale a
    ``value_float``, ``w`` a ``value_floats`` row over the width."""
    bias = numpy_helper.from_array(np.linspace(-0.5, 0.5, C).reshape(-1, 1, 1).astype(np.float32))
    net.op("Add", [net.cur, constant_node(net, value=bias)])
    net.op("Mul", [net.cur, constant_node(net, value_float=0.7)])
    row = [float(v) for v in np.linspace(0.5, 1.5, SHAPE[2])]
    return net.op("Mul", [net.cur, constant_node(net, value_floats=row)])


@pytest.mark.parametrize("where", ["below", "above"])
def test_constant_operands(where: str) -> None:
    """Constant nodes as operands: pass-through below the split, VJPs in the head."""
    (check_below if where == "below" else check_above)(constant_operands)
