"""Cast to float (a no-op in a float model, as exporters leave them): pass-through below the
split (spec 4.5), VJP ``g`` above it; explainer vs the torch reference."""

from __future__ import annotations

import pytest
import torch
from onnx import TensorProto

from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import pass_through
from tests.rules.scaffold import check_above, check_below, simple

FLOATS = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)


@reference("Cast", relevance=pass_through)
def cast(ins: Ins, node: Node) -> torch.Tensor:
    """A cast between float types keeps the interpreter's float dtype (the reference computes
    in one precision); other targets are not supported."""
    if int(node.at["to"]) not in FLOATS:
        raise NotImplementedError(f"Cast to {TensorProto.DataType.Name(node.at['to'])}")
    return ins[0].to(node.dtype)  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["below", "above"])
def test_cast_to_float(where: str) -> None:
    """Cast(to=FLOAT) between two convs."""
    (check_below if where == "below" else check_above)(simple("Cast", to=TensorProto.FLOAT))
