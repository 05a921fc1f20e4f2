"""External data: only files inside the model's own folder, reached without links, with
offsets and lengths that fit the file and the tensor."""

from __future__ import annotations

import math
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from aeq_onnx.errors import ExternalDataError
from aeq_onnx.load.safety.limits import FIXED_SIZE

#: The keys ONNX defines for ``TensorProto.external_data``.
EXTERNAL_KEYS = frozenset({"location", "offset", "length", "checksum"})
#: onnxruntime reads a location with this marker as a raw memory address.
ORT_MEMORY_MARKER = "_ORT_MEM_ADDR_"


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
    size = FIXED_SIZE.get(tensor.data_type)
    if size is not None and length != math.prod(tensor.dims) * size:
        raise ExternalDataError(
            f"{where} holds {length} bytes, but dims {list(tensor.dims)} need "
            f"{math.prod(tensor.dims) * size}")
