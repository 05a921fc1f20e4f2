"""Hostile models and inputs: each is refused with its exact typed error, and neither
``compile_explainer`` nor ``aeq build`` writes anything (the tmp dir is unchanged)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aeq_onnx
from aeq_onnx.cli import main as cli_main
from aeq_onnx.errors import (
    AeqError,
    CustomDomainError,
    ExternalDataError,
    InputError,
    ModelLoadError,
    ModelRejectedError,
    NonFiniteWeightError,
    ResourceLimitError,
    UnsupportedOpError,
    VersionError,
)
from aeq_onnx.load import safety
from aeq_onnx.load.loading import load_model
from aeq_onnx.load.safety import isolate
from tests.helpers import Net
from tests.security.children import use_child

SHAPE = (3, 8, 8)
CLASSES = 3


def base_model() -> onnx.ModelProto:
    """input → Conv3×3 (weight 'w') → Relu → head: a valid, explainable classifier."""
    net = Net(SHAPE, seed=0)
    net.conv(4, 3, pads=1, name="conv")
    net.relu()
    model = net.head(CLASSES)
    model.graph.initializer[0].name = "w"
    for node in model.graph.node:
        node.input[:] = ["w" if i == "w_1" else i for i in node.input]
    return model


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (links not followed): size and sha256."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_symlink():
                out[str(path)] = (-1, os.readlink(path))
            else:
                data = path.read_bytes()
                out[str(path)] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Serialise without any check (the point is to hand the loader broken models)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def external(tmp: Path, **entries: str) -> Path:
    """The base model in tmp/m/ with 'w' in w.bin, its external_data entries then updated."""
    folder = tmp / "m"
    folder.mkdir(parents=True)
    path = folder / "model.onnx"
    onnx.save_model(base_model(), str(path), save_as_external_data=True, location="w.bin",
                    size_threshold=400)
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == "w")
    assert tensor.data_location == TensorProto.EXTERNAL
    info = {e.key: e.value for e in tensor.external_data} | entries
    del tensor.external_data[:]
    for key, value in info.items():
        tensor.external_data.add(key=key, value=value)
    (tmp / "outside.bin").write_bytes((folder / "w.bin").read_bytes())
    return save(model, path)


def with_init(tmp: Path, tensor: onnx.TensorProto) -> Path:
    """The base model with weight 'w' replaced by ``tensor``."""
    model = base_model()
    index = next(i for i, t in enumerate(model.graph.initializer) if t.name == "w")
    tensor.name = "w"
    model.graph.initializer[index].CopyFrom(tensor)
    return save(model, tmp / "model.onnx")


def weight_with(value: float) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        model = base_model()
        w = next(t for t in model.graph.initializer if t.name == "w")
        array = numpy_helper.to_array(w).copy()
        array[1, 2, 0, 1] = value
        w.CopyFrom(numpy_helper.from_array(array, "w"))
        return save(model, tmp / "model.onnx")
    return make


def big_shape_node(op: str) -> Callable[[Path], Path]:
    """A ConstantOfShape/Expand/Tile on a constant shape of 2^34 elements, added to the input."""
    def make(tmp: Path) -> Path:
        model = base_model()
        shape = numpy_helper.from_array(np.array([1, 3, 2**16, 2**16], np.int64), "big_shape")
        model.graph.initializer.append(shape)
        if op == "ConstantOfShape":
            node = helper.make_node(op, ["big_shape"], ["bomb"], name="bomb")
        elif op == "Expand":
            node = helper.make_node(op, ["input", "big_shape"], ["bomb"], name="bomb")
        else:
            reps = numpy_helper.from_array(np.array([1, 1, 2**16, 2**16], np.int64), "reps")
            model.graph.initializer.append(reps)
            node = helper.make_node(op, ["input", "reps"], ["bomb"], name="bomb")
        model.graph.node.insert(0, node)
        return save(model, tmp / "model.onnx")
    return make


def custom_node(tmp: Path) -> Path:
    model = base_model()
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.domain = "FastRelu", "com.evil"
    model.opset_import.append(helper.make_opsetid("com.evil", 1))
    return save(model, tmp / "model.onnx")


def custom_function(tmp: Path) -> Path:
    model = base_model()
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type, relu.domain = "MyRelu", "local.fn"
    model.functions.append(helper.make_function(
        "local.fn", "MyRelu", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_opsetid("", 17)]))
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    return save(model, tmp / "model.onnx")


def versions(ir: int | None = None, opset: int | None = None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        model = base_model()
        if ir is not None:
            model.ir_version = ir
        if opset is not None:
            model.opset_import[0].version = opset
        return save(model, tmp / "model.onnx")
    return make


def symlink_inside(tmp: Path) -> Path:
    path = external(tmp, location="alias.bin")
    (path.parent / "alias.bin").symlink_to(path.parent / "w.bin")
    return path


def symlink_dir_outside(tmp: Path) -> Path:
    path = external(tmp, location="link/outside.bin")
    (path.parent / "link").symlink_to(tmp)
    return path


def symlink_file_outside(tmp: Path) -> Path:
    path = external(tmp, location="stolen.bin")
    (path.parent / "stolen.bin").symlink_to("/etc/passwd")
    return path


def hardlink(tmp: Path) -> Path:
    path = external(tmp, location="hard.bin")
    os.link(tmp / "outside.bin", path.parent / "hard.bin")
    return path


def marker_in_bytes(tmp: Path) -> bytes:
    path = external(tmp, location="*/_ORT_MEM_ADDR_/*")
    return path.read_bytes()


def external_in_bytes(tmp: Path) -> bytes:
    return external(tmp).read_bytes()


def raw_tensor(dims: list[int], data_type: int = TensorProto.FLOAT,
               raw: bytes = b"") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        tensor = TensorProto(dims=dims, data_type=data_type, raw_data=raw)
        return with_init(tmp, tensor)
    return make


def nan_constant_node(tmp: Path) -> Path:
    model = base_model()
    bias = np.array([0.0, np.nan, 0.0, 0.0], np.float32).reshape(1, 4, 1, 1)
    model.graph.node.insert(1, helper.make_node(
        "Constant", [], ["nan_bias"], name="nan_const",
        value=numpy_helper.from_array(bias, "inner_name")))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    model.graph.node.insert(2, helper.make_node("Add", [relu.input[0], "nan_bias"],
                                                ["biased"], name="add_nan"))
    relu.input[0] = "biased"
    return save(model, tmp / "model.onnx")


def constant_node_bomb(tmp: Path) -> Path:
    """ConstantOfShape fed by a Constant node (value_ints) instead of an initializer."""
    model = base_model()
    model.graph.node.insert(0, helper.make_node("Constant", [], ["shape"], name="shape_const",
                                                value_ints=[2**20, 2**20]))
    model.graph.node.insert(1, helper.make_node("ConstantOfShape", ["shape"], ["bomb"],
                                                name="bomb"))
    return save(model, tmp / "model.onnx")


def huge_attribute_tensor(tmp: Path) -> Path:
    """A Constant node whose tensor declares 2^40 elements (and holds none)."""
    model = base_model()
    model.graph.node.insert(0, helper.make_node(
        "Constant", [], ["huge"], name="huge_const",
        value=TensorProto(name="huge", dims=[2**20, 2**20], data_type=TensorProto.FLOAT)))
    return save(model, tmp / "model.onnx")


def invalid_utf8(old: bytes, new: bytes) -> Callable[[Path], bytes]:
    """The base model's bytes with one string field's bytes swapped for invalid UTF-8."""
    def make(tmp: Path) -> bytes:
        data = base_model().SerializeToString()
        assert old in data
        return data.replace(old, new, 1)
    return make


def unsupported_op(tmp: Path) -> Path:
    model = base_model()
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sin"
    return save(model, tmp / "model.onnx")


def random_bytes(tmp: Path) -> Path:
    path = tmp / "model.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


ORT_OPSET = safety.ort_limits()[2]

Make = Callable[[Path], "Path | bytes"]
CASES: dict[str, tuple[Make, type[AeqError], str]] = {
    # external data: where it points
    "ext-parent-dir": (lambda t: external(t, location="../outside.bin"), ExternalDataError,
                       r"uses '\.\.'"),
    "ext-nested-parent-dir": (lambda t: external(t, location="sub/../../outside.bin"),
                              ExternalDataError, r"uses '\.\.'"),
    "ext-absolute-posix": (lambda t: external(t, location="/etc/passwd"), ExternalDataError,
                           "not a relative path"),
    "ext-windows-drive": (lambda t: external(t, location="C:\\Windows\\win.ini"),
                          ExternalDataError, "not a relative path"),
    "ext-windows-unc": (lambda t: external(t, location="\\\\server\\share\\w.bin"),
                        ExternalDataError, "not a relative path"),
    "ext-backslash-parent": (lambda t: external(t, location="..\\outside.bin"),
                             ExternalDataError, r"uses '\.\.'"),
    "ext-empty-location": (lambda t: external(t, location=""), ExternalDataError,
                           "not a relative path"),
    "ext-missing-file": (lambda t: external(t, location="nothere.bin"), ExternalDataError,
                         "is missing"),
    "ext-folder-not-file": (lambda t: external(t, location="."), ExternalDataError,
                            "is missing"),
    "ext-symlink-dir-outside": (symlink_dir_outside, ExternalDataError,
                                "resolves outside the model's folder"),
    "ext-symlink-file-outside": (symlink_file_outside, ExternalDataError,
                                 "resolves outside the model's folder"),
    "ext-symlink-inside": (symlink_inside, ExternalDataError, "symbolic link"),
    "ext-hardlink": (hardlink, ExternalDataError, "hard link"),
    "ext-ort-memory-marker": (lambda t: external(t, location="*/_ORT_MEM_ADDR_/*"),
                              ExternalDataError, "in-memory address marker"),
    "ext-ort-memory-marker-bytes": (marker_in_bytes, ExternalDataError,
                                    "in-memory address marker"),
    "ext-in-bytes-model": (external_in_bytes, ExternalDataError, "load it from its path"),
    # external data: keys and byte ranges
    "ext-unknown-key": (lambda t: external(t, basepath="/etc"), ExternalDataError,
                        "unknown key.*basepath"),
    "ext-negative-offset": (lambda t: external(t, offset="-16"), ExternalDataError,
                            "negative offset"),
    "ext-negative-length": (lambda t: external(t, length="-1"), ExternalDataError,
                            "negative length"),
    "ext-non-integer-offset": (lambda t: external(t, offset="0x10"), ExternalDataError,
                               "non-integer offset"),
    "ext-offset-past-end": (lambda t: external(t, offset=str(2**40)), ExternalDataError,
                            "runs past the end"),
    "ext-length-past-end": (lambda t: external(t, offset="0", length=str(2**33)),
                            ExternalDataError, "runs past the end"),
    "ext-length-too-short": (lambda t: external(t, offset="0", length="16"), ExternalDataError,
                             "holds 16 bytes, but dims"),
    # declared sizes
    "init-over-element-cap": (raw_tensor([2**16, 2**16]), ResourceLimitError,
                              "over the cap"),
    "init-over-byte-cap": (raw_tensor([2**30], TensorProto.DOUBLE), ResourceLimitError,
                           "over the cap"),
    "init-negative-dims": (raw_tensor([4, -3, 3, 3]), ModelLoadError, "negative dims"),
    "init-data-shorter-than-dims": (raw_tensor([4, 3, 3, 3], raw=b"\0" * 12), ModelLoadError,
                                    "holds 12 bytes, not 432"),
    "constantofshape-bomb": (big_shape_node("ConstantOfShape"), ResourceLimitError,
                             r"'bomb' \(ConstantOfShape\) would allocate"),
    "expand-bomb": (big_shape_node("Expand"), ResourceLimitError,
                    r"'bomb' \(Expand\) would allocate"),
    "constantofshape-bomb-constant-node": (constant_node_bomb, ResourceLimitError,
                                           r"'bomb' \(ConstantOfShape\) would allocate"),
    "attribute-tensor-over-cap": (huge_attribute_tensor, ResourceLimitError,
                                  "tensor 'huge' declares"),
    "tile-bomb": (big_shape_node("Tile"), ResourceLimitError, r"'bomb' \(Tile\) would allocate"),
    # domains and versions
    "custom-domain-node": (custom_node, CustomDomainError, r"com\.evil \(FastRelu\)"),
    "custom-domain-function": (custom_function, CustomDomainError, r"local\.fn \(MyRelu\)"),
    "ir-version-too-new": (versions(ir=onnx.IR_VERSION + 1), VersionError,
                           r"IR version \d+, but the installed onnx .* and onnxruntime "),
    "ir-version-onnx-ok-onnxruntime-too-new": (
        versions(ir=safety.ort_limits()[1] + 1), VersionError,
        r"IR version \d+, but .* onnxruntime \S+ at most IR version \d+"),
    "opset-onnx-ok-onnxruntime-too-new": (
        versions(opset=min(ORT_OPSET + 1, onnx.defs.onnx_opset_version())), VersionError,
        r"opset \d+, but .* onnxruntime \S+ at most opset \d+"),
    "opset-too-new": (versions(opset=max(onnx.defs.onnx_opset_version(), ORT_OPSET) + 1),
                      VersionError, r"opset \d+, but the installed onnx .* and onnxruntime "),
    # numerics
    "nan-weight": (weight_with(float("nan")), NonFiniteWeightError,
                   r"weight 'w' holds 1 NaN and 0 Inf .*index \(1, 2, 0, 1\)"),
    "inf-weight": (weight_with(float("-inf")), NonFiniteWeightError,
                   "weight 'w' holds 0 NaN and 1 Inf"),
    "nan-constant-node": (nan_constant_node, NonFiniteWeightError, "weight 'nan_bias' holds 1"),
    # not a model / not explainable
    "dim-param-invalid-utf8": (invalid_utf8(b"\x12\x01N", b"\x12\x01\xce"), ModelLoadError,
                               "dim_param that is not valid UTF-8"),
    "node-name-invalid-utf8": (invalid_utf8(b"n_conv", b"n_\xffonv"), ModelLoadError,
                               "NodeProto.name that is not valid UTF-8"),
    "random-bytes": (random_bytes, ModelLoadError, "not an ONNX model|corrupt|truncated"),
    "unsupported-op": (unsupported_op, UnsupportedOpError, "Sin"),
}


@pytest.mark.parametrize(("make", "error", "message"), CASES.values(), ids=CASES.keys())
def test_hostile_model_is_refused_and_nothing_is_written(
        tmp_path: Path, make: Make, error: type[AeqError], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The exact typed error, on one line, from the API and from ``aeq build``; no file under
    the tmp dir is created, changed or removed (the output path included)."""
    source = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(AeqError, match=message) as info:
        aeq_onnx.compile_explainer(source)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert "\n" not in str(info.value)
    if isinstance(source, Path):
        out = tmp_path / "out" / "explainer.onnx"
        code = cli_main(["build", str(source), "-o", str(out)])
        assert code == (2 if error is UnsupportedOpError else 1)
        assert "aeq: error:" in capsys.readouterr().err
        assert not out.exists()
    assert snapshot(tmp_path) == before


def test_the_base_model_is_fine(tmp_path: Path) -> None:
    """Control: the unmodified model and its external-data twin compile; ``aeq build`` and
    ``Explainer.save`` write exactly their output path and nothing else."""
    path = save(base_model(), tmp_path / "model.onnx")
    ext = external(tmp_path / "ext")
    assert load_model(ext).model.graph.node
    before = snapshot(tmp_path)
    out = tmp_path / "out.onnx"
    assert cli_main(["build", str(path), "-o", str(out)]) == 0
    explainer = aeq_onnx.Explainer(path, device="cpu")
    explainer.save(tmp_path / "saved.onnx")
    after = snapshot(tmp_path)
    assert set(after) - set(before) == {str(out), str(tmp_path / "saved.onnx")}
    assert {k: after[k] for k in before} == before


def test_inf_clip_bound_is_allowed(tmp_path: Path) -> None:
    """An infinite Clip bound is a meaningful weight, not a numeric accident."""
    model = base_model()
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    model.graph.initializer.extend([numpy_helper.from_array(np.float32(0.0), "lo"),
                                    numpy_helper.from_array(np.float32(np.inf), "hi")])
    relu.op_type = "Clip"
    relu.input.extend(["lo", "hi"])
    assert load_model(model).model


def test_custom_domains_can_be_allowed(tmp_path: Path) -> None:
    """``allow_custom_domains=True`` loads the model (the compiler still has no rule for it)."""
    loaded = load_model(custom_node(tmp_path), allow_custom_domains=True)
    assert any(n.domain == "com.evil" for n in loaded.model.graph.node)


# ----------------------------------------------------------------------------- hostile inputs

INPUTS: dict[str, tuple[Callable[[], np.ndarray], object, str]] = {
    "input-nan": (lambda: np.full((1, *SHAPE), np.nan, np.float32), None, "NaN or Inf"),
    "input-inf": (lambda: np.full((1, *SHAPE), np.inf, np.float32), None, "NaN or Inf"),
    "input-int": (lambda: np.zeros((1, *SHAPE), np.int64), None, "not a float type"),
    "input-object": (lambda: np.array([[object()]]), None, "not a float type"),
    "input-wrong-rank": (lambda: np.zeros(SHAPE, np.float32), None, "rank 3"),
    "input-wrong-size": (lambda: np.zeros((1, 3, 9, 8), np.float32), None, "does not match"),
    "input-empty": (lambda: np.zeros((0, *SHAPE), np.float32), None, "empty"),
    "target-too-big": (lambda: np.zeros((1, *SHAPE), np.float32), 2**40, "out of range"),
    "target-negative": (lambda: np.zeros((1, *SHAPE), np.float32), -2, "out of range"),
    "target-wrong-shape": (lambda: np.zeros((2, *SHAPE), np.float32), [0, 1, 2], "shape"),
}


@pytest.fixture(scope="module")
def explainer() -> aeq_onnx.Explainer:
    return aeq_onnx.Explainer(base_model(), device="cpu", threads=1)


@pytest.mark.parametrize(("make", "target", "message"), INPUTS.values(), ids=INPUTS.keys())
def test_hostile_input_is_refused(explainer: aeq_onnx.Explainer, make: Callable[[], np.ndarray],
                                  target: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        explainer.explain(make(), target)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- isolation


def test_isolated_load_passes_a_valid_model(tmp_path: Path) -> None:
    path = save(base_model(), tmp_path / "model.onnx")
    assert load_model(path, isolate=True).model.graph.node


def test_isolated_checker_refusal_is_the_usual_error() -> None:
    model = base_model()
    model.graph.node[0].input[0] = "undefined_tensor"
    with pytest.raises(ModelLoadError, match=r"fails the ONNX checker: .*undefined_tensor"):
        load_model(model, isolate=True)


CHILDREN = {
    "checker-crash": ("import os; os.abort()", {}, r"crashed .*SIGABRT"),
    "checker-segfault": ("import ctypes; ctypes.string_at(0)", {}, r"crashed .*SIGSEGV"),
    "checker-out-of-memory": ("b = bytearray(8 * 2**30)", {}, "ran out of memory"),
    "checker-hang": ("import time; time.sleep(30)", {"ISOLATED_SECONDS": 1.0},
                     "took longer than 1 s"),
    "checker-busy-loop": ("while True: pass", {"ISOLATED_SECONDS": 1.0},
                          "took longer than 1 s|SIGXCPU|SIGKILL"),
}


@pytest.mark.parametrize(("child", "limits", "message"), CHILDREN.values(), ids=CHILDREN.keys())
def test_isolated_checker_failure_is_a_clean_rejection(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, child: str, limits: dict[str, float],
        message: str) -> None:
    """What a native crash, a memory blow-up or a hang in onnx's C++ checker would do to the
    child process, simulated (the child's check replaced, its limits as set by its ``main``);
    the caller gets ``ModelRejectedError('model rejected: ...')``."""
    use_child(monkeypatch, tmp_path, child)
    for name, value in limits.items():
        monkeypatch.setattr(isolate, name, value)
    with pytest.raises(ModelRejectedError, match=f"^model rejected: .*({message})"):
        load_model(base_model(), isolate=True)


def test_isolation_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    """``AEQ_ISOLATE=1`` turns isolation on for every load that passes no ``isolate=`` (the
    documented fallback of the Python API); an explicit ``isolate=False`` wins."""
    use_child(monkeypatch, tmp_path, "import os; os.abort()")
    monkeypatch.setenv("AEQ_ISOLATE", "1")
    with pytest.raises(ModelRejectedError):
        load_model(base_model())
    assert load_model(base_model(), isolate=False).model
    monkeypatch.setenv("AEQ_ISOLATE", "0")
    assert load_model(base_model()).model
