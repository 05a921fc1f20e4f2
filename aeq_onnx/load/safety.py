"""Checks for untrusted models: versions, op domains, declared sizes, external data, weights,
and an isolated (subprocess, memory- and time-limited) run of onnx's checker.

Every refusal is a one-line :class:`~aeq_onnx.errors.ModelLoadError` subclass.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np
import onnx
import onnx.defs
from google.protobuf.message import Message
from onnx import TensorProto, helper, numpy_helper

from aeq_onnx.errors import (
    CustomDomainError,
    ExternalDataError,
    ModelLoadError,
    ModelRejectedError,
    NonFiniteWeightError,
    ResourceLimitError,
    VersionError,
)

#: A tensor may declare at most this many elements ...
MAX_TENSOR_ELEMENTS = 2**31
#: ... and at most this many bytes.
MAX_TENSOR_BYTES = 2**32
#: ConstantOfShape / Expand / Tile with constant shapes may produce at most this many bytes.
MAX_ALLOC_BYTES = 2**31
#: Tensors up to this size have their stored data size checked against their dims up front.
SMALL_ELEMENTS = 2**16
#: Op domains accepted without ``allow_custom_domains``.
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})
#: The keys ONNX defines for ``TensorProto.external_data``.
EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})
#: onnxruntime reads a location with this marker as a raw memory address.
ORT_MEMORY_MARKER = "_ORT_MEM_ADDR_"
#: Limits of the isolated checker process.
ISOLATED_MEMORY_BYTES = 4 * 2**30
ISOLATED_SECONDS = 60.0

_FIXED_SIZE: dict[int, int] = {
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2,
    TensorProto.BFLOAT16: 2, TensorProto.INT8: 1, TensorProto.UINT8: 1, TensorProto.INT16: 2,
    TensorProto.UINT16: 2, TensorProto.INT32: 4, TensorProto.UINT32: 4, TensorProto.INT64: 8,
    TensorProto.UINT64: 8, TensorProto.BOOL: 1, TensorProto.COMPLEX64: 8,
    TensorProto.COMPLEX128: 16,
}
_TYPED_FIELD: dict[int, str] = {
    TensorProto.FLOAT: "float_data", TensorProto.COMPLEX64: "float_data",
    TensorProto.DOUBLE: "double_data", TensorProto.COMPLEX128: "double_data",
    TensorProto.INT64: "int64_data", TensorProto.UINT32: "uint64_data",
    TensorProto.UINT64: "uint64_data", TensorProto.INT32: "int32_data",
    TensorProto.INT16: "int32_data", TensorProto.INT8: "int32_data",
    TensorProto.UINT16: "int32_data", TensorProto.UINT8: "int32_data",
    TensorProto.BOOL: "int32_data", TensorProto.FLOAT16: "int32_data",
    TensorProto.BFLOAT16: "int32_data",
}
_COMPLEX = {TensorProto.COMPLEX64, TensorProto.COMPLEX128}
_FLOATS = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


# ----------------------------------------------------------------------------- walking the model


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the model: initializers and attribute tensors, subgraphs included."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield from (attr.sparse_tensor.values, attr.sparse_tensor.indices)
        for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
            yield from _graph_tensors(graph)


def all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """Every node: the graph's, its subgraphs' and the model-local functions'."""
    yield from _walk_nodes(model.graph.node)
    for function in model.functions:
        yield from _walk_nodes(function.node)


def _walk_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.NodeProto]:
    for node in nodes:
        yield node
        for attr in node.attribute:
            for graph in (*([attr.g] if attr.HasField("g") else []), *attr.graphs):
                yield from _walk_nodes(graph.node)


def check_strings(model: onnx.ModelProto, label: str) -> None:
    """Refuse string fields that are not valid UTF-8 (proto2 hands them to Python as bytes,
    which later code does not expect); tensor payloads are not walked."""
    stack: list[Message] = [model]
    while stack:
        message = stack.pop()
        if isinstance(message, onnx.TensorProto):
            fields = [(TensorProto.DESCRIPTOR.fields_by_name[n], getattr(message, n))
                      for n in ("name", "doc_string")]
            stack.extend(message.external_data)
        else:
            fields = message.ListFields()
        for field, value in fields:
            values = value if field.is_repeated else [value]
            if field.type == field.TYPE_STRING:
                if any(isinstance(v, bytes) for v in values):
                    raise ModelLoadError(
                        f"{label} holds a {field.full_name} that is not valid UTF-8")
            elif field.type == field.TYPE_MESSAGE:
                stack.extend(values)


# ----------------------------------------------------------------------------- versions, domains


@cache
def _ort_accepts(ir_version: int, opset: int) -> bool:
    """Whether onnxruntime creates a session for a one-Relu model of these versions."""
    import onnxruntime as ort

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own (untyped) errors
        return False
    return True


@cache
def ort_limits() -> tuple[str, int, int]:
    """(onnxruntime version, newest IR version, newest default-domain opset) it accepts."""
    import onnxruntime as ort

    ir = next((v for v in range(onnx.IR_VERSION + 2, 3, -1) if _ort_accepts(v, 14)), 3)
    opset = next((v for v in range(onnx.defs.onnx_opset_version() + 2, 13, -1)
                  if _ort_accepts(min(ir, onnx.IR_VERSION), v)), 14)
    return ort.__version__, ir, opset


def check_versions(model: onnx.ModelProto, label: str) -> None:
    """Refuse IR or opset versions newer than the installed onnx or onnxruntime support."""
    ort_version, ort_ir, ort_opset = ort_limits()
    if model.ir_version > min(onnx.IR_VERSION, ort_ir):
        raise VersionError(
            f"{label} uses ONNX IR version {model.ir_version}, but the installed onnx "
            f"{onnx.__version__} supports at most IR version {onnx.IR_VERSION} and onnxruntime "
            f"{ort_version} at most IR version {ort_ir}")
    newest = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > min(newest, ort_opset):
            raise VersionError(
                f"{label} uses ONNX opset {entry.version}, but the installed onnx "
                f"{onnx.__version__} supports at most opset {newest} and onnxruntime "
                f"{ort_version} at most opset {ort_opset}")


def check_domains(model: onnx.ModelProto, label: str) -> None:
    """Refuse nodes from op domains other than the standard ONNX one (listing them)."""
    custom: dict[str, set[str]] = {}
    for node in all_nodes(model):
        if node.domain not in STANDARD_DOMAINS:
            custom.setdefault(node.domain, set()).add(node.op_type)
    for function in model.functions:
        if function.domain not in STANDARD_DOMAINS:
            custom.setdefault(function.domain, set()).add(function.name)
    if custom:
        listed = "; ".join(f"{domain} ({', '.join(sorted(ops))})"
                           for domain, ops in sorted(custom.items()))
        raise CustomDomainError(
            f"{label} uses custom op domain(s): {listed}; only standard ONNX ops are accepted "
            "(load_model(..., allow_custom_domains=True) to load it anyway)")


# ----------------------------------------------------------------------------- sizes


def _elements(tensor: onnx.TensorProto, label: str) -> int:
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ModelLoadError(f"{label}: tensor '{tensor.name}' has negative dims {dims}")
    return math.prod(dims)


def check_tensor_sizes(model: onnx.ModelProto, label: str) -> None:
    """Refuse tensors declaring more than the element/byte caps, or holding data of another size
    than their dims declare (before any data is read from external files)."""
    for tensor in all_tensors(model):
        count = _elements(tensor, label)
        size = _FIXED_SIZE.get(tensor.data_type, 1)
        if count > MAX_TENSOR_ELEMENTS or count * size > MAX_TENSOR_BYTES:
            raise ResourceLimitError(
                f"{label}: tensor '{tensor.name}' declares {count} elements ({count * size} "
                f"bytes), over the cap of {MAX_TENSOR_ELEMENTS} elements / {MAX_TENSOR_BYTES} "
                "bytes")
        if (tensor.data_location == TensorProto.EXTERNAL or tensor.data_type not in _FIXED_SIZE
                or (tensor.data_type in _FLOATS and count > SMALL_ELEMENTS)):
            continue  # large float data is size-checked when read (check_finite_weights)
        if tensor.HasField("raw_data"):
            held, need, unit = len(tensor.raw_data), count * size, "bytes"
        else:
            field = _TYPED_FIELD[tensor.data_type]
            held = len(getattr(tensor, field))
            need = count * (2 if tensor.data_type in _COMPLEX else 1)
            unit = f"values in {field}"
            if held == 0 and need and _empty_ok(tensor):
                continue
        if held != need:
            raise ModelLoadError(
                f"{label}: tensor '{tensor.name}' with dims {list(tensor.dims)} holds {held} "
                f"{unit}, not {need}")


def _empty_ok(tensor: onnx.TensorProto) -> bool:
    """A tensor with no data at all (a sparse values placeholder, a segment): left to onnx."""
    return tensor.HasField("segment")


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Small integer constants (initializers and Constant nodes) by tensor name."""
    values: dict[str, np.ndarray] = {}
    tensors = [(t.name, t) for t in model.graph.initializer]
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    tensors.append((node.output[0], attr.t))
                elif attr.name == "value_ints":
                    values[node.output[0]] = np.asarray(list(attr.ints), np.int64)
    for name, tensor in tensors:
        if (tensor.data_type in (TensorProto.INT64, TensorProto.INT32)
                and tensor.data_location != TensorProto.EXTERNAL
                and math.prod(tensor.dims) <= 64):
            try:
                values[name] = numpy_helper.to_array(tensor).astype(np.int64)
            except ValueError:
                continue
    return values


def check_allocations(model: onnx.ModelProto, label: str) -> None:
    """Refuse ConstantOfShape / Expand / Tile nodes whose constant shapes would make the
    explainer allocate more than :data:`MAX_ALLOC_BYTES`."""
    values = _constant_values(model)
    for node in model.graph.node:
        elements = None
        if node.op_type == "ConstantOfShape" and node.input and node.input[0] in values:
            elements = math.prod(int(v) for v in values[node.input[0]].reshape(-1))
        elif node.op_type == "Expand" and len(node.input) > 1 and node.input[1] in values:
            elements = math.prod(int(v) for v in values[node.input[1]].reshape(-1))
        elif node.op_type == "Tile" and len(node.input) > 1 and node.input[1] in values:
            elements = math.prod(int(v) for v in values[node.input[1]].reshape(-1))
            if node.input[0] in values:
                elements *= int(values[node.input[0]].size)
        if elements is not None and elements * 4 > MAX_ALLOC_BYTES:
            raise ResourceLimitError(
                f"{label}: node '{node.name}' ({node.op_type}) would allocate {elements} "
                f"elements (about {elements * 4} bytes), over the cap of {MAX_ALLOC_BYTES} "
                "bytes")


# ----------------------------------------------------------------------------- external data


def check_external_data(tensors: list[onnx.TensorProto], root: Path | None, label: str) -> None:
    """Refuse external data with unknown keys, onnxruntime's in-memory marker, locations
    outside ``root`` (absolute, '..', symlinks, hard links) and offsets/lengths that do not fit
    the file or the tensor; ``root`` None (a model given as bytes) refuses any external data."""
    for tensor in tensors:
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        where = f"{label}: external data '{location}' of tensor '{tensor.name}'"
        if ORT_MEMORY_MARKER in location:
            raise ExternalDataError(
                f"{where} uses onnxruntime's in-memory address marker; refused")
        unknown = sorted(set(info) - EXTERNAL_KEYS)
        if unknown:
            raise ExternalDataError(f"{where} has unknown key(s) {', '.join(unknown)}")
        if root is None:
            raise ExternalDataError(
                f"{label} references external data files; load it from its path")
        target = _check_location(location, root, where)
        _check_range(tensor, info, target, where)


def _check_location(location: str, root: Path, where: str) -> Path:
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if not location or posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise ExternalDataError(f"{where} is not a relative path inside the model's folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise ExternalDataError(f"{where} uses '..'; only files inside the model's folder are read")
    target = (root / location).resolve()
    if not target.is_relative_to(root):
        raise ExternalDataError(f"{where} resolves outside the model's folder")
    path = root
    for part in posix.parts:
        path = path / part
        if path.is_symlink():
            raise ExternalDataError(f"{where} goes through a symbolic link ('{part}'); refused")
    if not target.is_file():
        raise ExternalDataError(f"{where} is missing")
    info = target.stat()
    if not stat.S_ISREG(info.st_mode):
        raise ExternalDataError(f"{where} is not a regular file")
    if info.st_nlink > 1:
        raise ExternalDataError(f"{where} is a hard link ({info.st_nlink} links); refused")
    return target


def _check_range(tensor: onnx.TensorProto, info: dict[str, str], target: Path,
                 where: str) -> None:
    file_size = target.stat().st_size
    numbers = {}
    for key in ("offset", "length"):
        if key in info:
            try:
                numbers[key] = int(info[key])
            except ValueError:
                raise ExternalDataError(f"{where} has a non-integer {key} "
                                        f"'{info[key][:40]}'") from None
            if numbers[key] < 0:
                raise ExternalDataError(f"{where} has a negative {key} {numbers[key]}")
    offset = numbers.get("offset", 0)
    length = numbers.get("length", file_size - offset)
    if offset > file_size or offset + length > file_size:
        raise ExternalDataError(
            f"{where}: offset {offset} + length {length} runs past the end of the "
            f"{file_size}-byte file")
    size = _FIXED_SIZE.get(tensor.data_type)
    if size is not None and length != math.prod(tensor.dims) * size:
        raise ExternalDataError(
            f"{where} holds {length} bytes, but dims {list(tensor.dims)} need "
            f"{math.prod(tensor.dims) * size}")


# ----------------------------------------------------------------------------- weights


def _named_tensors(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.TensorProto]]:
    """Every stored tensor with the name a user knows it by (a Constant's output name)."""
    for tensor in model.graph.initializer:
        yield tensor.name, tensor
    for sparse in model.graph.sparse_initializer:
        yield sparse.values.name, sparse.values
    for node in all_nodes(model):
        for attr in node.attribute:
            if attr.HasField("t"):
                constant = node.op_type == "Constant" and node.output
                yield (node.output[0] if constant else attr.t.name or attr.name), attr.t
            for tensor in attr.tensors:
                yield tensor.name or attr.name, tensor
            if attr.HasField("sparse_tensor"):
                yield attr.sparse_tensor.values.name or attr.name, attr.sparse_tensor.values


_RAW_FLOATS: dict[int, str] = {
    TensorProto.FLOAT: "<f4", TensorProto.DOUBLE: "<f8", TensorProto.FLOAT16: "<f2"}
#: Elements checked per step, so the check never holds a full-size temporary of a big weight.
_FINITE_CHUNK = 1 << 22


def _float_values(tensor: onnx.TensorProto) -> np.ndarray:
    """A tensor's values, viewed in place from ``raw_data`` where possible (no second copy)."""
    dtype = _RAW_FLOATS.get(tensor.data_type)
    if dtype is not None and tensor.HasField("raw_data"):
        raw = tensor.raw_data
        if len(raw) == math.prod(tensor.dims) * np.dtype(dtype).itemsize:
            return np.frombuffer(raw, dtype=dtype).reshape(tuple(tensor.dims))
    values = numpy_helper.to_array(tensor)
    return values if values.dtype.kind == "f" else values.astype(np.float32)  # bfloat16 & co


def _all_finite(values: np.ndarray) -> bool:
    flat = values.reshape(-1)
    return all(bool(np.isfinite(flat[i:i + _FINITE_CHUNK]).all())
               for i in range(0, flat.size, _FINITE_CHUNK))


def check_finite_weights(model: onnx.ModelProto, label: str) -> None:
    """Refuse float weights holding NaN or Inf (an infinite Clip bound is allowed)."""
    clip_bounds = {name for node in all_nodes(model) if node.op_type == "Clip"
                   for name in node.input[1:]}
    for name, tensor in _named_tensors(model):
        if tensor.data_type not in _FLOATS:
            continue
        try:
            values = _float_values(tensor)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{label}: tensor '{name}' cannot be read: "
                                 f"{str(exc)[:200]}") from exc
        if _all_finite(values):
            continue
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        if nan == 0 and (inf == 0 or name in clip_bounds):
            continue
        first = np.unravel_index(int(np.argmax(~np.isfinite(values))), values.shape)
        raise NonFiniteWeightError(
            f"{label}: weight '{name}' holds {nan} NaN and {inf} Inf value(s) (first at index "
            f"{tuple(int(i) for i in first)}); a model with non-finite weights cannot be "
            "explained")


# ----------------------------------------------------------------------------- isolation

#: Set first in the child, before it reads a byte of the model: its memory and CPU limits
#: (``argv[1]``, ``argv[2]``). The child is spawned without a ``preexec_fn``, so Python uses
#: vfork/posix_spawn instead of fork, whose cost grows with the parent's memory.
_LIMITS = r"""
import resource, sys
_memory, _cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (_memory, _memory))
resource.setrlimit(resource.RLIMIT_CPU, (_cpu, _cpu + 1))
"""

#: The check itself: onnx's C++ checker and strict shape inference (with data propagation) on
#: the skeleton's bytes, through onnx's native extension loaded from its file (``argv[3]``)
#: alone. Importing the ``onnx`` package (protobuf, numpy and onnx's Python modules: ~0.75 s
#: on a 2-core box) would only serialise the same bytes again for the same C++ functions.
_CHILD = r"""
import json, importlib.machinery, importlib.util
_name = "onnx.onnx_cpp2py_export"
_loader = importlib.machinery.ExtensionFileLoader(_name, sys.argv[3])
C = importlib.util.module_from_spec(importlib.util.spec_from_loader(_name, _loader))
_loader.exec_module(C)
data = sys.stdin.buffer.read()
try:
    C.checker.check_model(data)
except Exception as exc:
    print(json.dumps({"checker": str(exc)})); sys.exit(0)
try:
    C.shape_inference.infer_shapes(data, False, True, True)
except MemoryError:
    raise
except Exception:
    pass  # shape errors are reported by the compiler, as without isolation
print(json.dumps({"ok": True}))
"""

#: Results of isolated checks run by this process, by the sha256 of (child script, limits,
#: skeleton bytes): the same bytes through the same check give the same answer, so a model
#: loaded twice (``aeq explain`` loads a classifier, then compiles it) is checked once.
_CHECKED: dict[str, str | None] = {}
_CHECKED_MAX = 64


def _cpp_extension() -> str:
    """The file of onnx's native extension (the one this process uses)."""
    from onnx import onnx_cpp2py_export

    return str(onnx_cpp2py_export.__file__)


def _digest(skeleton: bytes, memory: int, seconds: float) -> str:
    key = hashlib.sha256(f"{_LIMITS}\0{_CHILD}\0{memory}\0{seconds!r}\0".encode())
    key.update(skeleton)
    return key.hexdigest()


def check_isolated(skeleton: bytes, label: str, memory: int | None = None,
                   seconds: float | None = None) -> str | None:
    """Run onnx's checker and shape inference on ``skeleton`` in a child process under memory
    and time limits. Returns the checker's message when it refuses the model (None when it
    passes); a crash, running out of memory or time raises :class:`ModelRejectedError`.
    An answer for the same bytes, script and limits earlier in this process is reused."""
    memory = ISOLATED_MEMORY_BYTES if memory is None else memory
    seconds = ISOLATED_SECONDS if seconds is None else seconds
    digest = _digest(skeleton, memory, seconds)
    if digest in _CHECKED:
        return _CHECKED[digest]
    message = _run_child(skeleton, label, memory, seconds)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.pop(next(iter(_CHECKED)))
    _CHECKED[digest] = message
    return message


def _run_child(skeleton: bytes, label: str, memory: int, seconds: float) -> str | None:
    """One run of the child (see :func:`check_isolated`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    argv = [sys.executable, "-I", "-S", "-c", _LIMITS + _CHILD, str(memory),
            str(math.ceil(seconds)), _cpp_extension()]
    try:
        done = subprocess.run(argv, input=skeleton, capture_output=True, timeout=seconds,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelRejectedError(
            f"model rejected: checking {label} took longer than {seconds:g} s") from None
    except OSError as exc:
        raise ModelRejectedError(f"model rejected: cannot start the checker process: "
                                 f"{exc}") from exc
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise ModelRejectedError(
            f"model rejected: the ONNX checker crashed on {label} ({name})")
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()
        why = tail[-1][:200] if tail else f"exit code {done.returncode}"
        if "MemoryError" in why or "bad_alloc" in why:
            why = f"ran out of memory (limit {memory} bytes)"
        raise ModelRejectedError(f"model rejected: the ONNX checker failed on {label}: {why}")
    try:
        reply = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ModelRejectedError(
            f"model rejected: the ONNX checker gave no answer on {label}") from None
    return reply.get("checker")
