"""The isolated checker: its limits hold whatever check the child runs, it checks the same
things as onnx's Python checker, its child imports no more than the standard library and onnx's
native extension, and a model checked once in a process is not checked again (the same bytes,
child program and limits only)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import onnx.checker
import onnx.parser
import pytest
from onnx import helper

from aeq_onnx.errors import ModelLoadError, ModelRejectedError
from aeq_onnx.load import protos
from aeq_onnx.load.loading import load_model
from aeq_onnx.load.safety import isolate
from tests.security.children import use_child
from tests.security.test_hostile import base_model


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no remembered answers."""
    monkeypatch.setattr(isolate, "_CHECKED", {})


def skeleton(model: onnx.ModelProto | None = None) -> bytes:
    return protos.skeleton(model or base_model()).SerializeToString()


def test_limits_are_set_before_the_check(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    """The child's ``main`` sets the memory and CPU limits before it checks anything: a check
    replaced by a probe reports the limits it runs under."""
    use_child(monkeypatch, tmp_path, """
        import resource
        found = [resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CPU)]
        return {"checker": str(found)}""")
    got = isolate.check_isolated(skeleton(), "m", memory=3 * 2**30, seconds=7.5)
    assert got == str([(3 * 2**30, 3 * 2**30), (8, 9)])


def test_child_loads_only_the_native_extension(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    """No onnx Python package, protobuf or numpy in the child: only onnx's C++ extension."""
    use_child(monkeypatch, tmp_path, """
        real_check(native, data)
        found = [m for m in sys.modules if m.split('.')[0] in ('onnx', 'google', 'numpy')]
        return {"checker": str(sorted(found))}""")
    found = ast.literal_eval(isolate.check_isolated(skeleton(), "m") or "[]")
    assert "onnx.onnx_cpp2py_export.checker" in found
    assert all(m.startswith("onnx.onnx_cpp2py_export.") for m in found), found


def test_the_real_child_imports_the_standard_library_only() -> None:
    """The child program itself, run as the checker runs it (``-X importtime`` lists every
    module it imports): standard-library modules only, the few the check needs."""
    argv = isolate.child_argv(isolate.ISOLATED_MEMORY_BYTES, 10.0)
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], input=skeleton(),
                          capture_output=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == b'{"ok": true}', done.stderr
    names = {line.split("|")[-1].strip() for line in done.stderr.decode().splitlines()
             if line.startswith("import time:") and "|" in line} - {"imported package"}
    assert names and not {n for n in names if n.split(".")[0] in ("onnx", "google", "numpy",
                                                                "aeq_onnx")}, names
    stdlib = set(sys.stdlib_module_names) | {"_frozen_importlib_external"}
    assert {n.split(".")[0] for n in names} <= stdlib, names
    assert {"json", "resource", "importlib.util"} <= names


def test_child_spawns_without_preexec_fn(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``preexec_fn`` (which forces a fork of the whole parent): vfork/posix_spawn."""
    calls: list[dict[str, Any]] = []
    real = subprocess.run

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    assert isolate.check_isolated(skeleton(), "m") is None
    assert len(calls) == 1 and calls[0].get("preexec_fn") is None


def _missing_opsets(model: onnx.ModelProto) -> None:
    del model.opset_import[:]


def _duplicate_metadata(model: onnx.ModelProto) -> None:
    helper.set_model_props(model, {"a": "1"})
    model.metadata_props.add(key="a", value="2")


def _unknown_op(model: onnx.ModelProto) -> None:
    model.graph.node[0].op_type = "NoSuchOp"


def _undefined_input(model: onnx.ModelProto) -> None:
    model.graph.node[0].input[0] = "undefined_tensor"


def _duplicate_output(model: onnx.ModelProto) -> None:
    model.graph.node[1].output[0] = model.graph.node[0].output[0]


BROKEN: dict[str, Callable[[onnx.ModelProto], None]] = {
    "missing-opsets": _missing_opsets, "duplicate-metadata": _duplicate_metadata,
    "unknown-op": _unknown_op, "undefined-input": _undefined_input,
    "duplicate-output": _duplicate_output,
}


@pytest.mark.parametrize("breaker", BROKEN.values(), ids=BROKEN.keys())
def test_same_verdict_as_the_python_checker(breaker: Callable[[onnx.ModelProto], None]) -> None:
    """The child's checker (C++ on the bytes) refuses with onnx.checker's own message."""
    model = base_model()
    breaker(model)
    data = skeleton(model)
    with pytest.raises(onnx.checker.ValidationError) as expected:
        onnx.checker.check_model(onnx.load_from_string(data))
    assert isolate.check_isolated(data, "m") == str(expected.value)
    with pytest.raises(ModelLoadError, match="fails the ONNX checker"):
        load_model(model, isolate=True)


def test_shape_errors_are_left_to_the_compiler() -> None:
    """A strict shape-inference error passes the isolated check (as without isolation)."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 3] x, float[4, 5] w) => (float[N, 5] y) { y = MatMul(x, w) }""")
    with pytest.raises(onnx.shape_inference.InferenceError):
        onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert isolate.check_isolated(skeleton(model), "m") is None


def counting(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every child actually started (its stdin)."""
    started: list[bytes] = []
    real = isolate._run_child

    def run(data: bytes, *args: Any) -> str | None:
        started.append(data)
        return real(data, *args)

    monkeypatch.setattr(isolate, "_run_child", run)
    return started


def test_same_bytes_are_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model loaded twice in a process (``aeq explain`` loads, then compiles) starts one
    child; other bytes or limits start their own."""
    started = counting(monkeypatch)
    for _ in range(3):
        load_model(base_model(), isolate=True)
    assert len(started) == 1
    other = base_model()
    other.graph.node[0].name = "renamed"
    load_model(other, isolate=True)
    isolate.check_isolated(skeleton(), "m", memory=2**31)
    assert len(started) == 3


def test_refusals_are_remembered_and_rejections_are_not(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A checker refusal is the same answer again; a crash is never cached (it reruns)."""
    started = counting(monkeypatch)
    model = base_model()
    _undefined_input(model)
    for _ in range(2):
        with pytest.raises(ModelLoadError, match="undefined_tensor"):
            load_model(model, isolate=True)
    assert len(started) == 1
    use_child(monkeypatch, tmp_path, "import os; os.abort()")
    for _ in range(2):
        with pytest.raises(ModelRejectedError, match="SIGABRT"):
            load_model(base_model(), isolate=True)
    assert len(started) == 3


def test_cache_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(isolate, "_CHECKED_MAX", 2)
    use_child(monkeypatch, tmp_path, 'return {"ok": True}')
    for n in range(4):
        isolate.check_isolated(skeleton() + bytes([n]), "m")
    assert len(isolate._CHECKED) == 2


def test_another_child_program_is_another_check(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    """The program's bytes are part of the cache key: a changed child checks again."""
    started = counting(monkeypatch)
    load_model(base_model(), isolate=True)
    use_child(monkeypatch, tmp_path, "return real_check(native, data)")
    load_model(base_model(), isolate=True)
    assert len(started) == 2
