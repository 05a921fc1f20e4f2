"""Run explainer models with onnxruntime: sessions, providers, input checks, results."""

from __future__ import annotations

import ctypes
import os
import warnings
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort

from aeq_onnx.assemble import META_PREFIX
from aeq_onnx.errors import AeqError, InputError
from aeq_onnx.methods import AddRule

Device = Literal["auto", "cpu", "cuda"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class DeviceError(AeqError):
    """The requested execution provider cannot run here."""


@dataclass(frozen=True)
class Explanation:
    """One batch explained: logits, the class explained, relevance maps and the provider used."""

    logits: np.ndarray
    target: np.ndarray
    relevance: np.ndarray
    initial_relevance: np.ndarray
    provider: str


@cache
def cuda_usable() -> bool:
    """True when onnxruntime has the CUDA provider and the driver sees at least one GPU."""
    if CUDA not in ort.get_available_providers():
        return False
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return cuda.cuInit(0) == 0 and cuda.cuDeviceGetCount(ctypes.byref(count)) == 0 and (
            count.value > 0)
    except OSError:
        return False


def providers_for(device: Device) -> list[str]:
    """Execution providers for ``device``; 'cuda' without a usable GPU is an error."""
    if device == "cpu":
        return [CPU]
    if cuda_usable():
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceError("CUDA was requested but no usable GPU / CUDAExecutionProvider was found")
    return [CPU]


def make_session(model: onnx.ModelProto | str | os.PathLike[str], device: Device = "auto",
                 threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session on the best provider for ``device``, all graph optimisations on."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else os.fspath(model)
    session = ort.InferenceSession(source, options, providers=providers_for(device))
    if device != "cpu" and cuda_usable() and CUDA not in session.get_providers():
        warnings.warn("CUDA is available but the session fell back to CPU", stacklevel=2)
    return session


def is_explainer(model: onnx.ModelProto) -> bool:
    """True for a model compiled by aeq_onnx (it carries the method in its metadata)."""
    return any(p.key == META_PREFIX + "method" for p in model.metadata_props)


class Explainer:
    """Compile (if needed) and run an explainer.

    ``model`` is a classifier (path, bytes or ModelProto), compiled for ``method`` (default
    ``"ae"``) with ``ratio``, ``layer``, ``add_rule``, ``output`` and the method's ``options``
    (``steps``, ``baseline``, ``blur_sigma``, ``epsilon``; see
    :func:`aeq_onnx.compile_explainer`), or an explainer model already compiled by aeq_onnx.
    """

    def __init__(self, model: str | os.PathLike[str] | bytes | onnx.ModelProto, *,
                 method: str = "ae", ratio: float = 2.0, layer: str | None = None,
                 add_rule: AddRule = "residual", output: str | None = None,
                 device: Device = "auto", threads: int | None = None,
                 **options: Any) -> None:
        from aeq_onnx.compiler import compile_explainer
        from aeq_onnx.loading import load_model

        proto = load_model(model).model
        if not is_explainer(proto):
            del proto  # compile from the source: one loaded copy of a big model, not two
            proto = compile_explainer(model, method=method, ratio=ratio, layer=layer,
                                      add_rule=add_rule, output=output, **options)
        self.model = proto
        self.metadata = {p.key[len(META_PREFIX):]: p.value for p in proto.metadata_props
                         if p.key.startswith(META_PREFIX)}
        self.session = make_session(proto, device, threads)
        self.provider = self.session.get_providers()[0]
        self._input = self.session.get_inputs()[0]
        self.classes = int(self.session.get_outputs()[0].shape[1])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the explainer model to ``path`` (external data beside it past 1.8 GB)."""
        from aeq_onnx.saving import save_explainer

        save_explainer(self.model, path)

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """The batch as float32, or an :class:`InputError` naming what does not fit."""
        batch = np.asarray(batch)
        if not np.issubdtype(batch.dtype, np.floating):
            raise InputError(f"input dtype {batch.dtype} is not a float type (float32 expected)")
        want = self._input.shape
        if batch.ndim != len(want):
            raise InputError(f"input has rank {batch.ndim}, the model expects {len(want)}: {want}")
        if batch.shape[0] == 0:
            raise InputError("the batch is empty")
        for axis, (got, need) in enumerate(zip(batch.shape, want, strict=True)):
            if axis > 0 and isinstance(need, int) and got != need:
                raise InputError(f"input shape {batch.shape} does not match the model's {want}")
        batch = batch.astype(np.float32, copy=False)
        if not np.isfinite(batch).all():
            raise InputError("the input contains NaN or Inf values")
        return batch

    def check_target(self, target: int | np.ndarray | list[int] | None, n: int) -> np.ndarray:
        """Targets as int64 ``[N]`` (-1: top-1), or an :class:`InputError` when out of range."""
        t = np.full(n, -1, np.int64) if target is None else np.asarray(target, np.int64)
        t = np.broadcast_to(t, (n,)).copy() if t.ndim == 0 else t
        if t.shape != (n,):
            raise InputError(f"target has shape {t.shape}, expected ({n},)")
        bad = t[(t < -1) | (t >= self.classes)]
        if bad.size:
            raise InputError(f"target {int(bad[0])} is out of range: the model has "
                             f"{self.classes} classes (0..{self.classes - 1}; -1 means top-1)")
        return t

    def explain(self, batch: np.ndarray,
                target: int | np.ndarray | list[int] | None = None) -> Explanation:
        """Explain a batch; ``target`` per sample, ``None``/``-1`` for the top-1 class."""
        x = self.check_batch(batch)
        t = self.check_target(target, x.shape[0])
        logits, chosen, relevance, r0 = self.session.run(
            ["logits", "target_class", "relevance", "initial_relevance"],
            {self._input.name: x, "target": t},
        )
        return Explanation(logits, chosen, relevance, r0, self.provider)
