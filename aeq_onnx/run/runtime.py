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
from onnx import numpy_helper

from aeq_onnx.compile.assemble import META_PREFIX, explainer_metadata, summary
from aeq_onnx.compile.precision import FP16, check_precision, is_float16, to_float16
from aeq_onnx.errors import DeviceError, InputError, MethodError
from aeq_onnx.load import protos
from aeq_onnx.methods import Method
from aeq_onnx.run.cuda_graph import GraphRunner

Device = Literal["auto", "cpu", "cuda"]
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: The explainer contract's outputs, in the order :class:`Explanation` takes them.
OUTPUTS = ("logits", "target_class", "relevance", "initial_relevance")
#: Models larger than this (bytes) reach onnxruntime with their big weights as OrtValues.
INLINE_LIMIT = 1_800_000_000
#: ... namely the initializers of at least this many bytes.
EXTERNAL_MIN_BYTES = 1 << 20


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


#: CUDA provider options: TF32 off, so an fp32 explainer computes in fp32 (with onnxruntime's
#: default TF32 the logits moved further from the CPU's than the goldens allow; the figure:
#: docs/performance.md, "On a GPU").
CUDA_OPTIONS = {"use_tf32": "0"}


def providers_for(device: Device, cuda_graph: bool = False
                  ) -> list[str | tuple[str, dict[str, str]]]:
    """Execution providers for ``device``; 'cuda' without a usable GPU is an error.
    ``cuda_graph`` asks the CUDA provider to capture and replay runs as CUDA graphs."""
    if device == "cpu":
        return [CPU]
    if cuda_usable():
        graph = {"enable_cuda_graph": "1"} if cuda_graph else {}
        return [(CUDA, {**CUDA_OPTIONS, **graph}), CPU]
    if device == "cuda":
        raise DeviceError("CUDA was requested but no usable GPU / CUDAExecutionProvider was found")
    return [CPU]


def session_bytes(model: onnx.ModelProto, options: ort.SessionOptions
                  ) -> tuple[bytes, list[np.ndarray]]:
    """``model`` serialised for onnxruntime, and arrays the caller keeps alive until the
    session exists. Past :data:`INLINE_LIMIT` (protobuf cannot serialise 2 GiB) initializers of
    at least :data:`EXTERNAL_MIN_BYTES` become external-data stubs and reach onnxruntime through
    ``add_external_initializers``, which reads the arrays in place while the session loads and
    copies them into it (so, while it loads, the weights exist three times)."""
    if protos.serialized_size(model) <= INLINE_LIMIT:
        return model.SerializeToString(), []
    light, moved = protos.in_memory_split(model, EXTERNAL_MIN_BYTES)
    arrays = [numpy_helper.to_array(t) for t in moved]
    options.add_external_initializers([t.name for t in moved],
                                      [ort.OrtValue.ortvalue_from_numpy(a) for a in arrays])
    return light.SerializeToString(), arrays


def make_session(model: onnx.ModelProto | str | os.PathLike[str], device: Device = "auto",
                 threads: int | None = None, cuda_graph: bool = False,
                 ) -> ort.InferenceSession:
    """An onnxruntime session on the best provider for ``device``, all graph optimisations on,
    the memory pattern and buffer reuse off, TF32 off on CUDA (``cuda_graph``: see
    :mod:`aeq_onnx.run.cuda_graph`)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # The memory pattern pre-plans one block per input shape from the second run on: it raised
    # the explainer's peak memory for no measurable gain in time (docs/performance.md,
    # "Session options").
    options.enable_mem_pattern = False
    # onnxruntime's buffer-reuse planner is superlinear in the explainer's size: without it
    # session creation is many times faster, with the same run time and relevance and a lower
    # peak RSS (docs/performance.md, "Session options"). Kept for CUDA graphs (unmeasured).
    options.enable_mem_reuse = cuda_graph
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source, keep = (session_bytes(model, options) if isinstance(model, onnx.ModelProto)
                    else (os.fspath(model), []))
    session = ort.InferenceSession(source, options, providers=providers_for(device, cuda_graph))
    del keep  # onnxruntime has copied them
    if device != "cpu" and cuda_usable() and CUDA not in session.get_providers():
        warnings.warn("CUDA is available but the session fell back to CPU", stacklevel=2)
    return session


def is_explainer(model: onnx.ModelProto) -> bool:
    """True for a model compiled by aeq_onnx (it carries the method in its metadata)."""
    return any(p.key == META_PREFIX + "method" for p in model.metadata_props)


def explainer_model(model: str | os.PathLike[str] | bytes | onnx.ModelProto,
                    precision: str | None = None, isolate: bool | None = None,
                    **compile_kwargs: Any) -> tuple[onnx.ModelProto, bool]:
    """``model`` itself when it is an explainer built by aeq_onnx, else its explainer compiled
    with ``compile_kwargs``; ``precision`` "fp16" converts an fp32 explainer (None: as built,
    fp32 when compiling). An fp16 explainer cannot go back to fp32 (compile again). The flag
    says the proto is ``model`` as loaded (a session may then open the file itself).
    ``isolate``: see :func:`aeq_onnx.load.load_model`."""
    from aeq_onnx.compile.compiler import compile_explainer
    from aeq_onnx.load.loading import load_model
    from aeq_onnx.rules import registry

    if precision is not None:
        check_precision(precision)
    proto = load_model(model, isolate=isolate, accepted_ops=registry.custom_ops()).model
    if not is_explainer(proto):
        del proto  # compile from the source: one loaded copy of a big model, not two
        if compile_kwargs.get("method") is None:
            compile_kwargs["method"] = "ae"
        return compile_explainer(model, precision=precision or "fp32", isolate=isolate,
                                 **compile_kwargs), False
    _warn_ignored(proto, compile_kwargs)
    if precision == FP16 and not is_float16(proto):
        return to_float16(proto), False
    if precision == "fp32" and is_float16(proto):
        raise MethodError("this explainer was built in fp16 and fp32 was asked: compile the "
                          "classifier again")
    return proto, True


def _warn_ignored(proto: onnx.ModelProto, compile_kwargs: dict[str, Any]) -> None:
    """Warn about compile options given with an already compiled explainer: its method and
    parameters are fixed in the file, so they cannot apply (compile the classifier instead)."""
    meta = explainer_metadata(proto)
    method = compile_kwargs.get("method")
    name = getattr(method, "name", method)
    given = [f"method={name}"] if name is not None and name != meta.get("method") else []
    given += [f"{key}={value}" for key, value in compile_kwargs.items()
              if key not in ("method", "isolate") and value is not None]
    if given:
        warnings.warn(f"{', '.join(given)} ignored: the model is an explainer already compiled "
                      f"({summary(meta)}); compile the classifier to change them", stacklevel=4)


class Explainer:
    """Compile (if needed) and run an explainer.

    ``model`` is a classifier (path, bytes or ModelProto), compiled for ``method`` (a name,
    default ``"ae"``, or a method object) with ``layer``, ``output`` and the method's
    parameters as keywords (``ratio``, ``add_rule``, ``steps``, ``baseline``, ``blur_sigma``,
    ``epsilon``; see :func:`aeq_onnx.compile_explainer`), or an explainer model already
    compiled by aeq_onnx; ``isolate`` runs the model checks in a limited child process.
    ``io_binding`` (default: on for CUDA) runs through onnxruntime's IO binding: inputs are
    copied to the device once and outputs allocated by onnxruntime on the device, then copied
    back in one step; :meth:`explain_on_device` keeps them on the device. ``precision="fp16"``
    runs the float16 explainer (:func:`aeq_onnx.compile.precision.to_float16`), built for CUDA
    but measured slower than fp32 and less accurate (docs/performance.md).
    ``cuda_graph=True`` (CUDA only) replays each batch size as a captured CUDA graph
    (:mod:`aeq_onnx.run.cuda_graph`): one launch instead of thousands; ignored, with a warning,
    when the session runs on the CPU.
    """

    def __init__(self, model: str | os.PathLike[str] | bytes | onnx.ModelProto, *,
                 method: str | Method | None = None, layer: str | None = None,
                 output: str | None = None, device: Device = "auto", threads: int | None = None,
                 io_binding: bool | None = None, precision: str | None = None,
                 cuda_graph: bool = False, isolate: bool | None = None,
                 **params: Any) -> None:
        proto, as_loaded = explainer_model(model, precision, isolate, method=method,
                                           layer=layer, output=output, **params)
        self.model = proto
        self.metadata = explainer_metadata(proto)
        source: onnx.ModelProto | str | os.PathLike[str] = proto
        if as_loaded and isinstance(model, str | os.PathLike):
            source = model  # an explainer file (checked by load_model) opens from disk
        self.session = make_session(source, device, threads, cuda_graph)
        self.provider = self.session.get_providers()[0]
        self.io_binding = self.provider == CUDA if io_binding is None else io_binding
        self.graphs = self._graph_runner(cuda_graph)
        if self.provider != CUDA and self.metadata.get("precision") == FP16:
            warnings.warn("an fp16 explainer is meant for CUDA: on CPU onnxruntime casts around "
                          "ops without fp16 kernels and it runs slower than fp32", stacklevel=2)
        self._input = self.session.get_inputs()[0]
        #: The model input's element type: float32, float16, or the integers of a model that
        #: takes uint8 photos and normalises inside its graph (docs/deployed.md).
        self.input_dtype = input_dtype(self._input.type)
        self.classes = int(self.session.get_outputs()[0].shape[1])

    def _graph_runner(self, cuda_graph: bool) -> GraphRunner | None:
        """The CUDA-graph runner when asked for and the session is on CUDA."""
        if not cuda_graph:
            return None
        if self.provider != CUDA:
            warnings.warn("cuda_graph=True ignored: the explainer runs on the CPU", stacklevel=3)
            return None
        return GraphRunner(self.session)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the explainer model to ``path`` (external data beside it past 1.8 GB)."""
        from aeq_onnx.run.saving import save_explainer

        save_explainer(self.model, path)

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """The batch in the model input's own dtype (floats as float32 or float16; integers,
        for a model that takes uint8 photos, within that type's range), or an
        :class:`InputError` naming what does not fit."""
        batch = np.asarray(batch)
        batch = _as_input_dtype(batch, self.input_dtype)
        want = self._input.shape
        if batch.ndim != len(want):
            raise InputError(f"input has rank {batch.ndim}, the model expects {len(want)}: {want}")
        if batch.shape[0] == 0:
            raise InputError("the batch is empty")
        for axis, (got, need) in enumerate(zip(batch.shape, want, strict=True)):
            if axis > 0 and isinstance(need, int) and got != need:
                raise InputError(f"input shape {batch.shape} does not match the model's {want}")
        if np.issubdtype(batch.dtype, np.floating) and not np.isfinite(batch).all():
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
        if self.graphs is not None:
            found = self.graphs.run({self._input.name: x, "target": t})
            outputs = [found[name] for name in OUTPUTS]
        elif self.io_binding:
            outputs = [v.numpy() for v in self._run_bound(x, t)]
        else:
            outputs = self.session.run(list(OUTPUTS), {self._input.name: x, "target": t})
        logits, chosen, relevance, r0 = outputs
        return Explanation(logits, chosen, relevance, r0, self.provider)

    @property
    def device_name(self) -> str:
        """onnxruntime's name for the session's device: ``"cuda"`` or ``"cpu"``."""
        return "cuda" if self.provider == CUDA else "cpu"

    def _run_bound(self, x: np.ndarray | ort.OrtValue, t: np.ndarray) -> list[ort.OrtValue]:
        """One run through IO binding; the outputs stay where onnxruntime put them."""
        binding = self.session.io_binding()
        if isinstance(x, ort.OrtValue):
            binding.bind_ortvalue_input(self._input.name, x)
        else:
            binding.bind_cpu_input(self._input.name, x)
        binding.bind_cpu_input("target", t)
        for name in OUTPUTS:
            binding.bind_output(name, self.device_name)
        self.session.run_with_iobinding(binding)
        return list(binding.get_outputs())

    def explain_on_device(self, batch: ort.OrtValue,
                          target: int | np.ndarray | list[int] | None = None
                          ) -> dict[str, ort.OrtValue]:
        """Explain a float32 batch that already lives in an :class:`onnxruntime.OrtValue`
        (on the GPU for a CUDA session: no host copy of the images or the maps); returns the
        four outputs as OrtValues on the session's device, keyed by name. The shape is checked
        as in :meth:`explain`; the values are not read (no NaN/Inf check on the device)."""
        if not isinstance(batch, ort.OrtValue):
            raise InputError("explain_on_device takes an onnxruntime.OrtValue; use explain() "
                             "for numpy arrays")
        if self.graphs is not None:
            raise InputError("explain_on_device is not available with cuda_graph=True (a "
                             "graph replays its own fixed buffers); use explain()")
        if batch.data_type() != "tensor(float)":
            raise InputError(f"input dtype {batch.data_type()} is not tensor(float)")
        shape = tuple(batch.shape())
        if not shape or shape[0] == 0:
            raise InputError(f"input shape {shape} holds no batch")
        self.check_batch(np.zeros((1, *shape[1:]), self.input_dtype))  # shape only: data stays
        t = self.check_target(target, shape[0])
        return dict(zip(OUTPUTS, self._run_bound(batch, t), strict=True))


#: onnxruntime's input type names and the numpy dtypes the explainer feeds.
_INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                "tensor(double)": np.float64, "tensor(uint8)": np.uint8,
                "tensor(int8)": np.int8, "tensor(uint16)": np.uint16, "tensor(int16)": np.int16}


def input_dtype(type_name: str) -> np.dtype:
    """The numpy dtype of an onnxruntime input type (``tensor(uint8)`` -> uint8); an
    :class:`InputError` for a type no image model takes."""
    found = _INPUT_TYPES.get(type_name)
    if found is None:
        raise InputError(f"the model input has type {type_name}; float or uint8 images expected")
    return np.dtype(found)


def _as_input_dtype(batch: np.ndarray, want: np.dtype) -> np.ndarray:
    """``batch`` converted to the model input's dtype ``want``: floats to float32/float16,
    integers within ``want``'s range to an integer input; a one-line InputError otherwise."""
    floating = np.issubdtype(batch.dtype, np.floating)
    if np.issubdtype(want, np.floating):
        if not floating:
            raise InputError(f"input dtype {batch.dtype} is not a float type (the model takes "
                             f"{want.name})")
        return batch.astype(want, copy=False)
    info = np.iinfo(want)
    if floating or not np.issubdtype(batch.dtype, np.integer):
        raise InputError(f"the model takes {want.name} images (integers {info.min}-{info.max}, "
                         f"normalised inside its graph); got {batch.dtype} values")
    if batch.size and (batch.min() < info.min or batch.max() > info.max):
        raise InputError(f"input values {batch.min()}..{batch.max()} are outside {want.name}'s "
                         f"range {info.min}..{info.max}")
    return batch.astype(want, copy=False)
