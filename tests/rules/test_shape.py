"""Shape and Size: no data input, so neither gradient nor relevance flows through them; they
only feed the batch-size arithmetic of exporters (a class token expanded to the batch, a
Reshape to ``[N, -1]``). Explainer vs the torch reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests.helpers import Net
from tests.reference.registry import Ins, Node, reference
from tests.rules.scaffold import check_below
from tests.rules.token_scaffold import (
    batch_of,
    linear,
    mean_head,
)


@reference("Shape")
def shape(ins: Ins, node: Node) -> torch.Tensor:
    """The dims of ``x`` (``start``/``end`` from opset 15) as int64."""
    x = ins[0]
    assert x is not None
    dims = list(x.shape)[int(node.at.get("start", 0)):node.at.get("end")]
    return torch.tensor(dims, dtype=torch.int64)


@reference("Size")
def size(ins: Ins, node: Node) -> torch.Tensor:
    """The number of elements of ``x`` as an int64 scalar."""
    x = ins[0]
    assert x is not None
    return torch.tensor(x.numel(), dtype=torch.int64)


def reshape_by_batch(net: Net) -> str:
    """``Reshape(x, [N, -1])`` with N read off x at run time, then back to ``[N, C, H, W]``
    (``0`` copies N)."""
    x, dims = net.cur, net.shape()
    flat = net.op("Concat", [batch_of(net, x), net.const(np.asarray([-1], np.int64))], axis=0)
    y = net.op("Reshape", [x, flat])
    return net.op("Reshape", [y, net.const(np.asarray([0, *dims], np.int64))])


def test_reshape_by_run_time_batch_below_split() -> None:
    """The batch size from Shape: the Reshapes go back, Shape gets nothing."""
    check_below(reshape_by_batch)


def test_batch_from_size_is_refused_by_name() -> None:
    """``Reshape(x, [Size(x) / (T·C), T, C])``: the layout tracking follows Shape, not Size, so
    where the sample axis lies after it is unknown, and the LayerNorm that needs a per-sample
    reduction there is refused with a message naming it (never guessed, ae-tokens T1)."""
    net = Net((5, 4), seed=4)
    linear(net, 6)
    x = net.cur
    n = net.op("Div", [net.op("Size", [x]), net.const(np.asarray(30, np.int64))])
    target = net.op("Concat", [net.op("Unsqueeze", [n, net.const(np.asarray([0], np.int64))]),
                               net.const(np.asarray([5, 6], np.int64))], axis=0)
    net.op("Reshape", [x, target])
    split = net.op("LayerNormalization", [net.cur, net.const(np.ones(6))], axis=-1,
                   name="ln_after_size")
    with pytest.raises(UnsupportedOpError, match=r"ln_after_size.*sample axis lies is unknown"):
        aeq_onnx.compile_explainer(mean_head(net, split, 6))
