"""Load an ONNX model (path, bytes or proto): parse, version-gate, contain external data, sort,
check."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.checker
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from aeq_onnx.errors import ModelLoadError
from aeq_onnx.load import order, protos, safety
from aeq_onnx.load.safety.versions import AcceptedOps

_LENGTH_DELIMITED = {
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_MESSAGE,
}
#: The documented fallback of ``isolate=None``: ``AEQ_ISOLATE=1`` isolates every load.
ISOLATE_VARIABLE = "AEQ_ISOLATE"
_NOT_ONNX = "is not an ONNX model (not a protobuf ModelProto)"
_TRUNCATED = "is a truncated ONNX file (the data ends in the middle of a field)"
_CORRUPT = "is a corrupt ONNX file (its protobuf data does not parse)"

Source = str | os.PathLike[str] | bytes | onnx.ModelProto


@dataclass(frozen=True)
class LoadedModel:
    """A parsed, checked model, the sha256 of its bytes, and the file it came from (if any)."""

    model: onnx.ModelProto
    sha256: str
    path: Path | None


def load_model(source: Source, *, isolate: bool | None = None,
               allow_custom_domains: bool = False,
               accepted_ops: AcceptedOps | None = None) -> LoadedModel:
    """Load and validate a model; every problem is a one-line ModelLoadError (or subclass).

    ``isolate`` runs onnx's checker and shape inference in a memory- and time-limited child
    process, so a native crash on a hostile model becomes a :class:`ModelRejectedError`; a
    process checks the same skeleton bytes once (:func:`aeq_onnx.load.safety.check_isolated`).
    Every caller passes it down (the ``aeq`` command: True unless ``--no-isolate``); None, the
    default of the Python API, falls back to the environment variable ``AEQ_ISOLATE=1``
    (SECURITY.md). Ops from custom domains are refused unless ``allow_custom_domains``, save
    ``accepted_ops`` (by domain: the compiler passes the custom-domain ops that have a rule,
    onnxruntime's quantized com.microsoft ops; docs/deployed.md).
    """
    path: Path | None = None
    if isinstance(source, onnx.ModelProto):
        label, data = "the in-memory model", _serialize(source)
        model = onnx.ModelProto()
        model.CopyFrom(source)
    elif isinstance(source, bytes):
        label, data = "the model data", source
        model = _parse(data, label)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        label, data = f"'{path}'", _read(path)
        model = _parse(data, label)
    else:
        raise TypeError(f"load_model expects a path, bytes or onnx.ModelProto, not {type(source)}")
    sha256 = hashlib.sha256(data).hexdigest()
    del data  # the parsed proto holds the weights now: one copy, not two, for the checks below
    if isolate is None:
        isolate = os.environ.get(ISOLATE_VARIABLE, "") == "1"
    safety.check_strings(model, label)
    safety.check_versions(model, label)
    if not allow_custom_domains:
        safety.check_domains(model, label, accepted_ops)
    safety.check_tensor_sizes(model, label)
    safety.check_allocations(model, label)
    _load_external_data(model, path.parent if path is not None else None, label)
    _check_io(model, label)
    order.sort_nodes(model, label)  # a graph valid but for its node order is sorted, not refused
    _check(model, label, isolate)
    safety.check_finite_weights(model, label)
    return LoadedModel(model=model, sha256=sha256, path=path)


def _serialize(model: onnx.ModelProto) -> bytes:
    """The proto's bytes (for the hash)."""
    try:
        return model.SerializeToString()
    except ValueError as exc:  # over 2 GiB
        raise ModelLoadError(f"the in-memory model cannot be serialised: {_one_line(exc)}") from exc


def _read(path: Path) -> bytes:
    """The file's bytes, or a ModelLoadError saying why they cannot be read."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: '{path}'")
    if path.is_dir():
        raise ModelLoadError(f"'{path}' is a directory, not an ONNX model file")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file '{path}': {exc.strerror or exc}") from exc


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    """Parse ModelProto bytes; a failure says whether the data is truncated or not ONNX at all."""
    if not data:
        raise ModelLoadError(f"{label} is empty, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise ModelLoadError(f"{label} {_diagnose(data)}") from exc
    if not model.HasField("graph"):
        raise ModelLoadError(f"{label} is not an ONNX model (it holds no graph)")
    return model


def _diagnose(data: bytes) -> str:
    """Why bytes failed to parse, from a walk over the top-level ModelProto fields."""
    fields = {f.number: f for f in onnx.ModelProto.DESCRIPTOR.fields}
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _varint(data, pos)
        field = fields.get(tag >> 3) if tag is not None else None
        wire = 2 if field is not None and field.type in _LENGTH_DELIMITED else 0
        if tag is None or field is None or tag & 7 != wire:
            return _NOT_ONNX if start == 0 else _CORRUPT
        value, pos = _varint(data, pos)
        if value is None or (wire == 2 and pos + value > len(data)):
            return _TRUNCATED
        pos += value if wire == 2 else 0
    return _CORRUPT


def _varint(data: bytes, pos: int) -> tuple[int | None, int]:
    """Decode a protobuf varint at `pos`: (value, next position), value None when it runs off."""
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
    return None, pos


def _load_external_data(model: onnx.ModelProto, folder: Path | None, label: str) -> None:
    """Read external tensor data, only from files inside the model's own folder."""
    tensors = [t for t in safety.all_tensors(model)
               if external_data_helper.uses_external_data(t)]
    if not tensors:
        return
    root = folder.resolve() if folder is not None else None
    safety.check_external_data(tensors, root, label)
    try:
        external_data_helper.load_external_data_for_model(model, str(root))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelLoadError(f"{label}: cannot load external data: {_one_line(exc)}") from exc


def _check_io(model: onnx.ModelProto, label: str) -> None:
    """Refuse a graph without real (non-initializer) inputs or without outputs."""
    initializers = {t.name for t in model.graph.initializer}
    if not [i for i in model.graph.input if i.name not in initializers]:
        raise ModelLoadError(f"{label} has a graph with no inputs")
    if not model.graph.output:
        raise ModelLoadError(f"{label} has a graph with no outputs")


def _check(model: onnx.ModelProto, label: str, isolate: bool) -> None:
    """Run onnx's checker on the weight-free skeleton (in a limited child when ``isolate``)."""
    try:
        if isolate:
            message = safety.check_isolated(protos.skeleton(model).SerializeToString(), label)
            if message is not None:
                raise onnx.checker.ValidationError(message)
        else:
            protos.check(model)
    except (onnx.checker.ValidationError, ValueError, OSError) as exc:
        raise ModelLoadError(f"{label} fails the ONNX checker: {_one_line(exc)}") from exc


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception message on one line (its lines joined), cut at `limit` characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
