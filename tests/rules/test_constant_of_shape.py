"""ConstantOfShape: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("ConstantOfShape")
def constant_of_shape(ins: Ins, node: Node) -> torch.Tensor:
    """A tensor of the given shape filled with ``value`` (0.0 float by default)."""
    shape = ins[0]
    assert shape is not None
    value = node.at.get("value")
    fill = torch.from_numpy(onnx.numpy_helper.to_array(value).copy()) if value is not None \
        else torch.zeros(1, dtype=node.dtype)
    if fill.is_floating_point():
        fill = fill.to(node.dtype)
    return fill.reshape(()).expand(*[int(d) for d in shape.tolist()]).clone()


def test_constant_of_shape_matches_onnxruntime() -> None:
    check_forward("ConstantOfShape", [np.array([2, 3], np.int64)],
                  value=onnx.helper.make_tensor("v", onnx.TensorProto.INT64, [1], [5]))
    check_forward("ConstantOfShape", [np.array([2], np.int64)])
