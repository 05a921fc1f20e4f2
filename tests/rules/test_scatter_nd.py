"""ScatterND: no rule (it only computes shapes, masks or indices from shapes in exported token
models, off every gradient and relevance path); the reference runs it so that whole exported
blocks go through the reference interpreter. Its forward vs onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from tests.reference.registry import Ins, Node, reference
from tests.rules.token_scaffold import check_forward


@reference("ScatterND")
def scatter_nd(ins: Ins, node: Node) -> torch.Tensor:
    """A copy of ``data`` with ``updates`` written at ``indices`` (reduction none)."""
    data, indices, updates = ins[0], ins[1], ins[2]
    assert data is not None and indices is not None and updates is not None
    if node.at.get("reduction", "none") != "none":
        raise NotImplementedError("ScatterND with a reduction")
    out = data.clone()
    k = indices.shape[-1]
    flat = indices.reshape(-1, k)
    rows = updates.reshape(flat.shape[0], *data.shape[k:])
    for i in range(flat.shape[0]):
        out[tuple(int(v) for v in flat[i])] = rows[i]
    return out


def test_scatter_nd_matches_onnxruntime() -> None:
    check_forward("ScatterND", [np.arange(12, dtype=np.float32).reshape(3, 4),
                                np.array([[2], [0]], np.int64),
                                -np.ones((2, 4), np.float32)])
