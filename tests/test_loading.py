"""load_model: every source kind loads with its sha256; every broken input is a one-line error."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest
from onnx import numpy_helper

from aeq_onnx.errors import ModelLoadError
from aeq_onnx.load.loading import LoadedModel, load_model

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "vgg_mini.onnx"


def _tiny(text: str = "y = Relu(x)", ir: int = 8, opset: int = 17) -> onnx.ModelProto:
    """A one-node model with a dynamic batch, from ONNX text."""
    return onnx.parser.parse_model(
        f"""<ir_version: {ir}, opset_import: ["" : {opset}]>
        g (float[N, 3] x) => (float[N, 3] y) {{
          {text}
        }}"""
    )


def _write(path: Path, model: onnx.ModelProto) -> Path:
    """Serialise without any check (the point is to hand the loader broken models)."""
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("kind", ["str", "pathlike", "bytes", "proto"])
def test_sources_load_with_hash(kind: str) -> None:
    """A path (str or Path), bytes and a ModelProto all load; sha256 is of the same bytes."""
    data = GOLDEN.read_bytes()
    source = {
        "str": str(GOLDEN),
        "pathlike": GOLDEN,
        "bytes": data,
        "proto": onnx.load_from_string(data),
    }[kind]
    loaded = load_model(source)
    assert isinstance(loaded, LoadedModel)
    assert loaded.model.graph.output[0].name == "logits"
    assert loaded.path == (GOLDEN if kind in ("str", "pathlike") else None)
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.onnx"
    path.write_text("This is a text file that merely has an .onnx suffix.\n")
    return path


def _truncated(tmp: Path) -> Path:
    path = tmp / "cut.onnx"
    path.write_bytes(GOLDEN.read_bytes()[:5000])
    return path


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.onnx"
    path.write_bytes(b"")
    return path


def _new_ir(tmp: Path) -> Path:
    return _write(tmp / "future.onnx", _tiny(ir=onnx.IR_VERSION + 1))


def _new_opset(tmp: Path) -> Path:
    return _write(tmp / "opset.onnx", _tiny(opset=onnx.defs.onnx_opset_version() + 1))


def _no_outputs(tmp: Path) -> Path:
    model = _tiny()
    del model.graph.output[:]
    return _write(tmp / "no_outputs.onnx", model)


def _no_inputs(tmp: Path) -> Path:
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g () => (float[3] y) {
          y = Constant<value=float[3] {1, 2, 3}>()
        }"""
    )
    return _write(tmp / "no_inputs.onnx", model)


def _fails_checker(tmp: Path) -> Path:
    return _write(tmp / "bad.onnx", _tiny("y = Relu(undefined_tensor)"))


ERRORS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing-path": (lambda tmp: tmp / "absent.onnx", r"model file not found: '.*absent\.onnx'"),
    "directory": (lambda tmp: tmp, r"is a directory, not an ONNX model file"),
    "text-file": (_text_file, r"notes\.onnx' is not an ONNX model"),
    "truncated-file": (_truncated, r"cut\.onnx' is a truncated ONNX file"),
    "empty-file": (_empty, r"is empty, not an ONNX model"),
    "ir-too-new": (_new_ir, rf"IR version {onnx.IR_VERSION + 1}, .* at most IR version "),
    "opset-too-new": (_new_opset, r"opset \d+, but the installed onnx .* at most opset \d+"),
    "no-outputs": (_no_outputs, r"has a graph with no outputs"),
    "no-inputs": (_no_inputs, r"has a graph with no inputs"),
    "fails-checker": (_fails_checker, r"fails the ONNX checker: .*undefined_tensor"),
}


@pytest.mark.parametrize(("make", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_broken_sources_raise_model_load_error(tmp_path: Path, make, message: str) -> None:
    """Each problem is a ModelLoadError whose single line names it."""
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(make(tmp_path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("make", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_isolated_loading_gives_the_same_errors(tmp_path: Path, make, message: str) -> None:
    """With the checker in the limited child process (``isolate=True``), the same errors."""
    with pytest.raises(ModelLoadError, match=message) as info:
        load_model(make(tmp_path), isolate=True)
    assert "\n" not in str(info.value)


def test_isolated_and_in_process_loads_agree() -> None:
    """A valid model loads alike with and without isolation (same proto, same hash)."""
    isolated, plain = load_model(GOLDEN, isolate=True), load_model(GOLDEN, isolate=False)
    assert isolated.sha256 == plain.sha256
    assert isolated.model.SerializeToString() == plain.model.SerializeToString()


def test_truncated_bytes_are_reported_too() -> None:
    """The same diagnosis for in-memory bytes."""
    with pytest.raises(ModelLoadError, match="the model data is a truncated ONNX file"):
        load_model(GOLDEN.read_bytes()[:-40])


def _external_model(folder: Path) -> Path:
    """A Conv model saved with its weight in a separate file next to it."""
    model = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3, 4, 4] x) => (float[N, 2, 4, 4] y) {
          y = Conv<kernel_shape=[1, 1]>(x, w)
        }"""
    )
    weight = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    model.graph.initializer.append(numpy_helper.from_array(weight, "w"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save_model(
        model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
    )
    return path


def test_external_data_inside_the_folder_loads(tmp_path: Path) -> None:
    """External data next to the model is read into the proto."""
    loaded = load_model(_external_model(tmp_path / "m"))
    weight = numpy_helper.to_array(loaded.model.graph.initializer[0])
    assert weight.reshape(-1).tolist() == list(range(6))


def _relocate(path: Path, location: str) -> None:
    """Point the model's external tensor at another location."""
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    path.write_bytes(model.SerializeToString())


ESCAPES = {
    "parent-dir": ("../w.bin", r"uses '\.\.'"),
    "nested-parent-dir": ("sub/../../w.bin", r"uses '\.\.'"),
    "absolute": ("/etc/passwd", r"not a relative path inside the model's folder"),
    "missing-file": ("nothere.bin", r"'nothere\.bin' of tensor 'w' is missing"),
}


@pytest.mark.parametrize(("location", "message"), ESCAPES.values(), ids=ESCAPES.keys())
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, location, message) -> None:
    """Absolute or '..' locations (and missing files) are refused before anything is read."""
    path = _external_model(tmp_path / "m")
    (tmp_path / "w.bin").write_bytes((path.parent / "w.bin").read_bytes())
    _relocate(path, location)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)


def test_external_data_symlink_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    """A relative location that resolves (through a symlink) outside the folder is refused."""
    path = _external_model(tmp_path / "m")
    (tmp_path / "w.bin").write_bytes((path.parent / "w.bin").read_bytes())
    (path.parent / "link").symlink_to(tmp_path)
    _relocate(path, "link/w.bin")
    with pytest.raises(ModelLoadError, match="resolves outside the model's folder"):
        load_model(path)


def test_external_data_needs_a_path(tmp_path: Path) -> None:
    """Bytes that reference external files cannot be resolved and are refused."""
    path = _external_model(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="references external data files"):
        load_model(path.read_bytes())
