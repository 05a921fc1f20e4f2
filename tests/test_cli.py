"""The ``aeq`` command line: commands work, and bad input gives one line, no traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from aeq_onnx.cli import build_parser, main
from tests.helpers import Net
from tests.helpers_models import small_cnn

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A good model and batch, and the bad files the errors are tested with."""
    paths = {name: tmp_path / name for name in (
        "model.onnx", "batch.npy", "text.onnx", "truncated.onnx", "sin.onnx", "big.npy",
        "ints.npy", "notnpy.npy")}
    onnx.save(small_cnn(), paths["model.onnx"])
    np.save(paths["batch.npy"], np.random.default_rng(0).normal(size=(3, 3, 8, 8)).astype("f4"))
    paths["text.onnx"].write_text("this is not a model\n")
    paths["truncated.onnx"].write_bytes((GOLDEN / "vgg_mini.onnx").read_bytes()[:4000])
    onnx.save(small_cnn([("Sin", "sine")]), paths["sin.onnx"])
    np.save(paths["big.npy"], np.zeros((2, 3, 16, 16), np.float32))
    np.save(paths["ints.npy"], np.zeros((2, 3, 8, 8), np.int64))
    paths["notnpy.npy"].write_text("nope")
    return paths


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_build_then_explain(files: dict[str, Path], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "explainer.onnx"
    code, text, _ = run(["build", files["model.onnx"], "-o", out, "--ratio", "1.5"], capsys)
    assert code == 0 and out.exists() and "wrote" in text
    relevance = tmp_path / "r.npy"
    code, text, _ = run(["explain", out, files["batch.npy"], "-o", relevance,
                         "--batch-size", "2"], capsys)
    assert code == 0 and "CPUExecutionProvider" in text
    assert np.load(relevance).shape == (3, 3, 8, 8)


def test_inspect_lists_rules(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, text, _ = run(["inspect", files["model.onnx"]], capsys)
    assert code == 0
    assert "AE bounded z^B input rule (4.3)" in text and "split tensor 'r'" in text


def test_inspect_unsupported_exit_2(files: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = run(["inspect", files["sin.onnx"]], capsys)
    assert code == 2 and "UNSUPPORTED: sine" in text and "1 unsupported" in err


@pytest.mark.parametrize(("args", "message"), [
    (["build", "{text}", "-o", "{out}"], "is not an ONNX model"),
    (["build", "{truncated}", "-o", "{out}"], "truncated"),
    (["build", "{missing}", "-o", "{out}"], "missing"),
    (["build", "{sin}", "-o", "{out}"], "unsupported node(s): Sin (node 'sine', opset 17)"),
    (["explain", "{model}", "{batch}", "--target", "7"], "target 7 is out of range"),
    (["explain", "{model}", "{big}"], "does not match the model's"),
    (["explain", "{model}", "{ints}"], "dtype int64 is not a float type"),
    (["explain", "{model}", "{notnpy}"], "as a .npy array"),
    (["build", "{model}", "-o", "{out}", "--layer", "nope"], "layer 'nope'"),
], ids=["not-onnx", "truncated", "missing-file", "unsupported-op", "target-range",
        "wrong-shape", "wrong-dtype", "bad-npy", "bad-layer"])
def test_errors_are_one_line(files: dict[str, Path], tmp_path: Path, args: list[str],
                             message: str, capsys: pytest.CaptureFixture[str]) -> None:
    names = {k.split(".")[0]: str(v) for k, v in files.items()} | {
        "out": str(tmp_path / "o.onnx"), "missing": str(tmp_path / "missing.onnx")}
    code, _, err = run([a.format(**names) for a in args], capsys)
    assert code != 0
    assert message in err
    assert err.count("\n") == 1 and err.startswith("aeq: error: ")
    assert "Traceback" not in err
    assert not (tmp_path / "o.onnx").exists()


def test_console_script_help_and_debug(files: dict[str, Path]) -> None:
    """The installed entry point runs; --debug adds the traceback."""
    aeq = [sys.executable, "-m", "aeq_onnx.cli"]
    for command in ("build", "explain", "inspect"):
        done = subprocess.run([*aeq, command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "usage: aeq" in done.stdout
    done = subprocess.run([*aeq, "--debug", "build", str(files["text.onnx"]), "-o", "x.onnx"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" in done.stderr


def _command(name: str, files: dict[str, Path], tmp_path: Path) -> list[object]:
    """One run of a command that loads a model (the audit on a tiny dataset)."""
    from tests.helpers_models import audit_dataset

    if name == "audit":
        (tmp_path / "audit").mkdir()
        data = audit_dataset(tmp_path / "audit", images=2)
        return ["audit", data["model"], "--images", data["img"], "--methods", "gradient",
                "--out", tmp_path / "audit-out", "--steps", "2", "--size", "8"]
    return {
        "build": ["build", files["model.onnx"], "-o", tmp_path / "e.onnx"],
        "explain": ["explain", files["model.onnx"], files["batch.npy"], "-o", tmp_path / "r"],
        "inspect": ["inspect", files["model.onnx"]],
        "web": ["web", files["model.onnx"], "-o", tmp_path / "site"],
    }[name]


@pytest.mark.parametrize("command", ["build", "explain", "inspect", "audit", "web"])
@pytest.mark.parametrize("flags,isolated", [([], True), (["--no-isolate"], False)],
                         ids=["default-isolated", "no-isolate"])
def test_cli_checks_models_in_a_child_by_default(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], flags: list[str], isolated: bool,
        command: str) -> None:
    """Untrusted by default: every command passes ``isolate=True`` down to every model load
    (the checker runs in a child) unless ``--no-isolate``; nothing goes through the
    environment."""
    from aeq_onnx.load import loading, safety

    if command == "web":
        pytest.importorskip("aeq_onnx.web").find_ort_web()  # the site needs onnxruntime-web
    calls: list[str] = []
    loads: list[bool] = []
    real, real_check = safety.check_isolated, loading._check
    monkeypatch.delenv("AEQ_ISOLATE", raising=False)
    monkeypatch.setattr(safety, "check_isolated",
                        lambda skeleton, label: calls.append(label) or real(skeleton, label))
    monkeypatch.setattr(loading, "_check", lambda model, label, isolate: loads.append(
        isolate) or real_check(model, label, isolate))
    code, _, err = run([*flags, *_command(command, files, tmp_path)], capsys)
    assert code == 0, err
    assert loads and set(loads) == {isolated}, loads
    assert bool(calls) == isolated
    assert "AEQ_ISOLATE" not in __import__("os").environ


@pytest.mark.parametrize("method", ["gradient", "gradcam", "lrp-zplus"])
def test_build_and_explain_with_a_baseline_method(files: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  method: str) -> None:
    out = tmp_path / f"{method}.onnx"
    code, printed, err = run(["build", files["model.onnx"], "-o", out, "--method", method],
                             capsys)
    assert code == 0, err
    assert f"method {method}" in printed
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["aeq_onnx.method"] == method
    code, _, err = run(["explain", out, files["batch.npy"], "-o", tmp_path / "r.npy"], capsys)
    assert code == 0, err
    relevance = np.load(tmp_path / "r.npy")
    assert relevance.shape == (3, 3, 8, 8) and np.isfinite(relevance).all()


def layered_cnn() -> onnx.ModelProto:
    """conv3x3 -> relu -> conv3x3 -> relu -> conv1x1 -> relu -> GAP -> Flatten -> Gemm: an
    input layer, a hidden 3x3 and a hidden 1x1 conv below the split, a dense head above."""
    net = Net((3, 8, 8), seed=3)
    for kernel, name in ((3, "c1"), (3, "c2"), (1, "c3")):
        net.conv(4, kernel, pads=kernel // 2, name=name)
        net.relu(name=f"{name}_relu")
    return net.head(classes=4)


#: Per method: the rule (or role) ``aeq inspect --nodes`` must show for each node.
INSPECT_RULES = {
    "ae": {"n_c1": ("relevance", "AE bounded z^B input rule (4.3)"),
           "n_c2": ("relevance", "AE equilibrium rule, r=1.5 (4.1)"),
           "n_c3": ("relevance", "AE 1x1 rule (4.2)"),
           "n_y": ("gradient", "VJP: MatMul with W^T")},
    "gradcam": {"n_c1": ("forward", "forward only"), "n_c2": ("forward", "forward only"),
                "n_y": ("gradient", "VJP: MatMul with W^T")},
    "gradient": {"n_c1": ("gradient", "VJP: ConvTranspose with W"),
                 "n_c1_relu": ("gradient", "VJP: g·1[x>0]"),
                 "n_y": ("gradient", "VJP: MatMul with W^T")},
    "gradient-x-input": {"n_c2": ("gradient", "VJP: ConvTranspose with W")},
    "integrated-gradients": {"n_c3": ("gradient", "VJP: ConvTranspose with W")},
    "lrp-epsilon": {"n_c1": ("relevance", "bounded z^B input rule (4.3)"),
                    "n_c2": ("relevance", "LRP-epsilon, eps=0.5"),
                    "n_c3": ("relevance", "LRP-epsilon, eps=0.5"),
                    "n_y": ("relevance", "LRP-epsilon, eps=0.5")},
    "lrp-zplus": {"n_c2": ("relevance", "LRP-z+"), "n_y": ("relevance", "LRP-z+")},
}


@pytest.mark.parametrize("method", sorted(INSPECT_RULES))
def test_inspect_shows_the_rule_of_each_method(tmp_path: Path, method: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``aeq inspect --method M`` lists the rule M gives every node: AE's relevance rules below
    the split and VJPs above, Grad-CAM's head VJPs only, the gradient family's VJPs and LRP's
    relevance variants on the whole network."""
    model = tmp_path / "layered.onnx"
    onnx.save(layered_cnn(), model)
    code, text, err = run(["--no-isolate", "inspect", model, "--nodes", "--method", method,
                           "--ratio", "1.5", "--epsilon", "0.5"], capsys)
    assert code == 0 and err == ""
    header, *rows = text.splitlines()
    assert f"method {method} (" in header
    assert ("split tensor" in header) == (method in ("ae", "gradcam"))
    shown = {row.split()[-1]: row for row in rows}
    assert len(shown) == 9  # every node
    for name, (role, rule) in INSPECT_RULES[method].items():
        assert shown[name].split()[1] == role and rule in shown[name], shown[name]
    if method not in ("ae", "gradcam"):  # from the logits: no node is forward only
        assert "forward only" not in text


def test_inspect_takes_every_option_of_build() -> None:
    """The options are spelled out once: inspect accepts all of build's but -o (it writes
    nothing)."""
    def options(command: str) -> set[str]:
        sub = next(a for a in build_parser()._actions
                   if isinstance(a, argparse._SubParsersAction)).choices[command]
        return {o for a in sub._actions for o in a.option_strings}

    assert options("build") - {"-o", "--out"} <= options("inspect")
    assert {"--method", "--steps", "--baseline", "--epsilon", "--precision"} <= options("build")


def test_inspect_reports_what_stops_a_method(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Integrated Gradients needs a free batch axis: inspect says so (exit 2), one line."""
    model = small_cnn()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "static.onnx"
    onnx.save(model, path)
    code, text, err = run(["--no-isolate", "inspect", path, "--method", "integrated-gradients"],
                          capsys)
    assert code == 2 and "VJP: " in text
    assert err.count("\n") == 1 and "static batch size 1" in err
    code, _, err = run(["--no-isolate", "inspect", path, "--method", "gradient"], capsys)
    assert code == 0 and err == ""


def test_warnings_are_one_line(files: dict[str, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """A warning (here: an fp16 explainer run on the CPU) is ``aeq: warning: ...``, one line."""
    code, _, err = run(["--no-isolate", "explain", files["model.onnx"], files["batch.npy"],
                        "--precision", "fp16", "--device", "cpu"], capsys)
    assert code == 0
    assert err.splitlines() == [line for line in err.splitlines()
                                if line.startswith("aeq: warning: ")]
    assert "meant for CUDA" in err
