"""Load an ONNX model (path, bytes or proto): parse, version-gate, contain external data, check."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx
import onnx.checker
import onnx.defs
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from aeq_onnx import protos
from aeq_onnx.errors import ModelLoadError

_LENGTH_DELIMITED = {
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_MESSAGE,
}
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


def load_model(source: Source) -> LoadedModel:
    """Load and validate a model; every problem is a one-line ModelLoadError."""
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
    _check_versions(model, label)
    _load_external_data(model, path.parent if path is not None else None, label)
    _check_io(model, label)
    _check(model, label, path)
    return LoadedModel(model=model, sha256=hashlib.sha256(data).hexdigest(), path=path)


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


def _check_versions(model: onnx.ModelProto, label: str) -> None:
    """Refuse IR or opset versions newer than the installed onnx understands."""
    if model.ir_version > onnx.IR_VERSION:
        raise ModelLoadError(
            f"{label} uses ONNX IR version {model.ir_version}, but the installed onnx "
            f"{onnx.__version__} supports at most IR version {onnx.IR_VERSION}"
        )
    newest = onnx.defs.onnx_opset_version()
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx") and entry.version > newest:
            raise ModelLoadError(
                f"{label} uses ONNX opset {entry.version}, but the installed onnx "
                f"{onnx.__version__} supports at most opset {newest}"
            )


def _load_external_data(model: onnx.ModelProto, folder: Path | None, label: str) -> None:
    """Read external tensor data, only from files inside the model's own folder."""
    tensors = [t for t in _all_tensors(model) if external_data_helper.uses_external_data(t)]
    if not tensors:
        return
    if folder is None:
        raise ModelLoadError(f"{label} references external data files; load it from its path")
    root = folder.resolve()
    for tensor in tensors:
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        _check_location(location, root, tensor.name, label)
    try:
        external_data_helper.load_external_data_for_model(model, str(root))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelLoadError(f"{label}: cannot load external data: {_one_line(exc)}") from exc


def _check_location(location: str, root: Path, tensor: str, label: str) -> None:
    """Refuse an external-data location that is absolute, climbs with '..', or leaves `root`."""
    where = f"{label}: external data '{location}' of tensor '{tensor}'"
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if not location or posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise ModelLoadError(f"{where} is not a relative path inside the model's folder")
    if ".." in posix.parts or ".." in windows.parts:
        raise ModelLoadError(f"{where} uses '..'; only files inside the model's folder are read")
    target = (root / location).resolve()
    if not target.is_relative_to(root):
        raise ModelLoadError(f"{where} resolves outside the model's folder")
    if not target.is_file():
        raise ModelLoadError(f"{where} is missing")


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor stored in the model: initializers and attribute tensors, subgraphs included."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and node-attribute tensors of a graph and its subgraphs."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    """Tensors held by a node's attributes, subgraphs included."""
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for graph in attr.graphs:
            yield from _graph_tensors(graph)


def _check_io(model: onnx.ModelProto, label: str) -> None:
    """Refuse a graph without real (non-initializer) inputs or without outputs."""
    initializers = {t.name for t in model.graph.initializer}
    if not [i for i in model.graph.input if i.name not in initializers]:
        raise ModelLoadError(f"{label} has a graph with no inputs")
    if not model.graph.output:
        raise ModelLoadError(f"{label} has a graph with no outputs")


def _check(model: onnx.ModelProto, label: str, path: Path | None) -> None:
    """Run onnx's checker (on the file when the model is too large to check in memory)."""
    try:
        protos.check(model)
    except (onnx.checker.ValidationError, ValueError, OSError) as exc:
        raise ModelLoadError(f"{label} fails the ONNX checker: {_one_line(exc)}") from exc


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception message on one line (its lines joined), cut at `limit` characters."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = text or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
