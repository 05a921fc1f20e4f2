"""Tell a float32 "near miss" of the graph fuzzer from a real rule discrepancy.

The explainer runs in float32 (onnxruntime); the torch reference runs in float64. Both use the
same z-rule at an ``Add`` (section 4.7): ``Ra = a · R / (a + b)``. Where the two operands
nearly cancel (``|a + b| << |a|``, e.g. a residual branch that undoes its shortcut), the split
multiplies the float32 rounding of ``a`` and ``b`` by ``|a| / |a + b|`` (30 to 500 on the
fuzzer's near misses), so a correct float32 implementation lands 1e-4 to 5e-3 of max |R| away
from the float64 answer. The reference run in float32 shows the same size of gap.

Two measurements separate that from a bug:

* ``graph64_err``: the explainer's *graph* evaluated in float64 (``onnx.reference``) against the
  float64 reference. Identical rules give ~1e-16 to 1e-13 (rounding, amplified by the same
  conditioning); any rule detail that differs gives orders of magnitude more (a ratio off by
  1e-3 already gives 3e-4 on a near-miss model). This is the bug detector.
* ``ref32_gap``: the reference run in float32 against itself in float64, i.e. how far one
  honest float32 evaluation of this model lands. The explainer's float32 error must be of that
  size. One float32 run is one sample of the rounding: on the 16 near misses of the 2000-example
  CI run the explainer's error was 0.10 to 4.6 times ``ref32_gap`` (onnxruntime's NCHWc convs
  round differently from torch's), hence a factor of 10, not 3.

Both measurements are only needed for an example that misses ``tol``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from tests.helpers import REL_TOL, torch_single_thread
from tests.reference import ae_torch

Verdict = Literal["match", "conditioning", "discrepancy"]

#: the explainer's graph in float64 must match the float64 reference this closely
EXACT_TOL = 1e-9
#: allowed ratio of the explainer's float32 error to the reference's own float32 gap
GAP_FACTOR = 10.0


def classify(err: float, ref32_gap: float, graph64_err: float | None = None, *,
             tol: float = REL_TOL, factor: float = GAP_FACTOR,
             exact_tol: float = EXACT_TOL) -> Verdict:
    """Verdict on one fuzz example (all errors relative to max |R| of the float64 reference).

    ``err``: explainer (float32, onnxruntime) vs reference (float64).
    ``ref32_gap``: reference in float32 vs reference in float64.
    ``graph64_err``: the explainer's graph evaluated in float64 vs reference in float64 (None
    when not measured).

    * ``"match"`` when ``err <= tol`` (the contract);
    * ``"discrepancy"`` when ``graph64_err > exact_tol``: in float64 the two implementations
      must agree to rounding, so a rule differs;
    * ``"conditioning"`` when ``err <= factor * ref32_gap``: the model is ill-conditioned in
      float32 and the explainer is off by what an honest float32 run is off by;
    * ``"discrepancy"`` otherwise.
    """
    if err <= tol:
        return "match"
    if graph64_err is not None and graph64_err > exact_tol:
        return "discrepancy"
    return "conditioning" if err <= factor * ref32_gap else "discrepancy"


# ----------------------------------------------------------------------------- measurements


def rel_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want| / max |want|`` (0 when ``want`` is all zero), in float64."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = float(np.abs(want).max())
    return float(np.abs(got - want).max()) / scale if scale > 0 else 0.0


def reference_relevance(model: onnx.ModelProto, x: np.ndarray, *, ratio: float,
                        add_rule: str, dtype: torch.dtype = torch.float64,
                        layer: str | None = None) -> np.ndarray:
    """The reference's relevance for every sample (top-1 target), computed in ``dtype`` and
    returned in float64 without the float32 rounding of ``ae_torch.reference_explain``."""
    graph = ae_torch.Graph(model)
    xs = torch.from_numpy(np.asarray(x)).to(dtype)
    with torch_single_thread():
        parts = [ae_torch.explain_one(graph, xs[i:i + 1].clone(), None, ratio, layer,
                                      add_rule)["R"]
                 for i in range(xs.shape[0])]
    return torch.cat(parts).double().numpy()  # type: ignore[arg-type]


class MaxPool(OpRun):
    """MaxPool for ``onnx.reference`` with onnxruntime's indices: the flat ``N·C·H·W`` index
    into the unpadded input (``onnx.reference``'s own indices differ, and the explainer's
    max-pool VJP would scatter to the wrong places). ``new_ops`` matches by class name."""

    op_domain = ""

    def _run(self, x: np.ndarray, auto_pad: str | None = None, ceil_mode: int | None = None,
             dilations: Sequence[int] | None = None, kernel_shape: Sequence[int] | None = None,
             pads: Sequence[int] | None = None, storage_order: int | None = None,
             strides: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        if auto_pad not in (None, "NOTSET") or storage_order or x.ndim != 4:
            raise NotImplementedError("MaxPool: only 2-D, explicit pads, storage_order 0")
        assert kernel_shape is not None
        top, left, bottom, right = list(pads or [0, 0, 0, 0])
        t = F.pad(torch.from_numpy(np.ascontiguousarray(x)), (left, right, top, bottom),
                  value=-float("inf"))
        y, idx = F.max_pool2d(t, list(kernel_shape), list(strides or [1, 1]), 0,
                              list(dilations or [1, 1]), ceil_mode=bool(ceil_mode),
                              return_indices=True)
        n, c, h, w = x.shape
        width = w + left + right
        plane = torch.arange(n * c).reshape(n, c, 1, 1) * h * w
        flat = (idx // width - top) * w + (idx % width - left) + plane
        return y.numpy(), flat.numpy().astype(np.int64)


def _as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every float32 initializer, constant, cast and I/O in float64."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64),
                                               t.name))
    for node in g.node:
        for a in node.attribute:
            if a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(
                    numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    for v in [*g.input, *g.output]:
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    del g.value_info[:]
    return out


def explainer_float64(explainer: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the compiled ``explainer`` (top-1 targets), its graph evaluated in
    float64 by ``onnx.reference`` (onnxruntime has no float64 Conv)."""
    model = _as_float64(explainer)
    evaluator = ReferenceEvaluator(model, new_ops=[MaxPool])
    data = next(i.name for i in model.graph.input if i.name != "target")
    feeds: dict[str, Any] = {data: np.asarray(x, np.float64),
                             "target": np.full(x.shape[0], -1, np.int64)}
    names = [o.name for o in model.graph.output]
    return dict(zip(names, evaluator.run(None, feeds), strict=True))
