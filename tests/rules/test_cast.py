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
#: what exported shape arithmetic casts to (token models: head counts, window sizes)
OTHERS = {TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
          TensorProto.BOOL: torch.bool}


@reference("Cast", relevance=pass_through)
def cast(ins: Ins, node: Node) -> torch.Tensor:
    """A cast between float types keeps the interpreter's float dtype (the reference computes
    in one precision); int64/int32/bool for shape arithmetic (floats truncate toward zero)."""
    to = int(node.at["to"])
    if to in OTHERS:
        x = ins[0]
        assert x is not None
        return (x.trunc() if x.is_floating_point() and to != TensorProto.BOOL else x).to(
            OTHERS[to])
    if to not in FLOATS:
        raise NotImplementedError(f"Cast to {TensorProto.DataType.Name(to)}")
    return ins[0].to(node.dtype)  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["below", "above"])
def test_cast_to_float(where: str) -> None:
    """Cast(to=FLOAT) between two convs."""
    (check_below if where == "below" else check_above)(simple("Cast", to=TensorProto.FLOAT))


def test_cast_to_ints_and_bool_match_onnxruntime() -> None:
    """The shape-arithmetic casts: float -> int64 truncates, int64 -> float, -> bool."""
    import numpy as np

    from tests.rules.token_scaffold import check_forward

    check_forward("Cast", [np.array([2.7, -2.7, 3.0], np.float32)], to=TensorProto.INT64)
    check_forward("Cast", [np.array([0, 3], np.int64)], to=TensorProto.BOOL)
