"""Write explainer models: one ``.onnx`` file, or with external data beside it when the model
would exceed protobuf's 2 GiB limit. Nothing is written but the chosen path and, for external
data, ``PATH.data`` beside it; a location taken from the input model is never reused.

Every output of aeq goes through :func:`check_output` (before any work: the path can be
written and is not an input) and :func:`atomic_output` (missing folders created, the file
written beside its target and renamed onto it, so that a failed write leaves no partial file).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import onnx
from onnx import numpy_helper

from aeq_onnx.errors import InputError
from aeq_onnx.load import protos

EXTERNAL = onnx.TensorProto.EXTERNAL
#: Offsets of tensors in ``PATH.data`` are multiples of this (a page: memory-mappable).
ALIGN = 4096

#: Above this many bytes of serialised model, tensors go to external data (protobuf caps 2 GiB).
EXTERNAL_THRESHOLD = 1_800_000_000
#: With external data, tensors of at least this many bytes go to ``PATH.data``.
EXTERNAL_MIN_BYTES = 1024


def _same_path(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file or folder (links and relative paths resolved)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists."""
    current = path.absolute()
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def check_output(path: str | os.PathLike[str], *, folder: bool = False,
                 inputs: Sequence[object] = (),
                 what: str = "output") -> Path:
    """Refuse, before any work, an output path that cannot or must not be written: a folder
    where a file goes (or a file where a folder goes), a path under a regular file, a place
    without write permission, or one of ``inputs`` (the paths the command reads; other
    objects are ignored). Creates nothing; returns the path."""
    target = Path(os.fspath(path))
    if not folder and target.is_dir():
        raise InputError(f"the {what} '{target}' is an existing folder; give a file name")
    if folder and target.exists() and not target.is_dir():
        raise InputError(f"the {what} '{target}' is an existing file; give a folder")
    for source in inputs:
        if isinstance(source, str | os.PathLike) and _same_path(target, Path(source)):
            raise InputError(f"the {what} '{target}' is also an input; choose another path")
    base = _nearest_existing(target if folder else target.parent)
    if not base.is_dir():
        raise InputError(f"cannot write '{target}': '{base}' is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"cannot write '{target}': no permission to write in '{base}'")
    return target


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create folder ``path`` and its parents (no error if it exists); InputError if not."""
    folder = Path(os.fspath(path))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create folder '{folder}': {exc.strerror or exc}") from None
    return folder


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to (its folders created): renamed onto
    ``path`` when the block succeeds, removed when it fails, so that a failed write leaves no
    partial file. An OSError while writing becomes an InputError naming ``path``."""
    target = Path(os.fspath(path))
    make_folder(target.parent)
    # same suffix as the target: onnx.save_model picks its format from the file name
    temporary = target.with_name(f".{target.stem}.{os.getpid()}.part{target.suffix}")
    try:
        yield temporary
        os.replace(temporary, target)
    except OSError as exc:
        raise InputError(f"cannot write '{target}': {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _clear_external(model: onnx.ModelProto) -> None:
    """Forget external-data fields inherited from the input model (data must be in memory)."""
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            if not tensor.HasField("raw_data"):
                raise InputError(f"tensor '{tensor.name}' has its data outside the model; load "
                                 "the model with aeq_onnx.load_model before saving")
            tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def save_explainer(model: onnx.ModelProto, path: str | os.PathLike[str],
                   external: bool | None = None) -> list[Path]:
    """Save ``model`` to ``path``; ``external`` None: external data only when it must be
    (``EXTERNAL_THRESHOLD``). Returns the files written; ``model`` keeps its weights."""
    target = check_output(path, what="explainer path")
    _clear_external(model)
    if external is None:
        external = protos.serialized_size(model) > EXTERNAL_THRESHOLD
    light, moved = (protos.in_memory_split(model, EXTERNAL_MIN_BYTES) if external
                    else (model, []))
    if not moved:
        with atomic_output(target) as temporary:
            onnx.save_model(light, os.fspath(temporary))
        return [target]
    data = target.with_name(target.name + ".data")
    with atomic_output(data) as data_part, atomic_output(target) as model_part:
        _write_data(light, moved, data_part, data.name)
        onnx.save_model(light, os.fspath(model_part))
    return [target, data]


def _raw_bytes(tensor: onnx.TensorProto) -> bytes:
    """The tensor's data as little-endian bytes (ONNX's external-data layout)."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    array = numpy_helper.to_array(tensor)
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _write_data(light: onnx.ModelProto, moved: list[onnx.TensorProto], data: Path,
                location: str) -> None:
    """Write the moved tensors' bytes to ``data`` (each at a 4 KiB-aligned offset, so that
    onnxruntime can map them) and point ``light``'s stubs at them (file name ``location``)."""
    stubs = {t.name: t for t in light.graph.initializer if t.data_location == EXTERNAL}
    with open(data, "wb") as out:
        for tensor in moved:
            raw = _raw_bytes(tensor)
            offset = -(-out.tell() // ALIGN) * ALIGN
            out.seek(offset)
            out.write(raw)
            stub = stubs[tensor.name]
            del stub.external_data[:]
            for key, value in (("location", location), ("offset", str(offset)),
                               ("length", str(len(raw)))):
                stub.external_data.add(key=key, value=value)
