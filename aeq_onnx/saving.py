"""Write explainer models: one ``.onnx`` file, or with external data beside it when the model
would exceed protobuf's 2 GiB limit. Nothing is written but the chosen path and, for external
data, ``PATH.data`` beside it; a location taken from the input model is never reused."""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from aeq_onnx.errors import InputError

#: Above this many bytes of serialised model, tensors go to external data (protobuf caps 2 GiB).
EXTERNAL_THRESHOLD = 1_800_000_000
#: With external data, tensors of at least this many bytes go to ``PATH.data``.
EXTERNAL_MIN_BYTES = 1024


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
    (``EXTERNAL_THRESHOLD``). Returns the files written."""
    target = Path(os.fspath(path))
    if target.is_dir():
        raise InputError(f"'{target}' is a folder; give the explainer's file name")
    _clear_external(model)
    if external is None:
        external = model.ByteSize() > EXTERNAL_THRESHOLD
    if not external:
        onnx.save_model(model, os.fspath(target))
        return [target]
    data = target.with_name(target.name + ".data")
    if data.exists():
        data.unlink()  # save_model appends to an existing file
    onnx.save_model(model, os.fspath(target), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=data.name,
                    size_threshold=EXTERNAL_MIN_BYTES)
    return [target, data] if data.exists() else [target]
