"""Classifiers from two more exporters compile and explain: a small Flax CNN through jax2onnx
(opset 23: NHWC, Conv/BatchNormalization/MaxPool between Transposes, the mean over H and W
written as ReduceSum then Div) and Paddle's resnet18 and mobilenet_v3_small through
paddle2onnx (opset 17: the flatten as Shape -> Slice -> Concat -> Reshape, Identity for the
dropouts); seeded random weights (``fixtures/jax_models.py``, ``fixtures/paddle_models.py``,
exported once per cache in a child process by ``fixtures/exporters.py``).

For each: the framework's own logits equal onnxruntime's on the export (the exporter is
faithful), the explainer's logits equal onnxruntime's (1e-5), and the relevance, R0 and split
gradient equal the independent torch reference (``tests/reference``) within 1e-4 of max |R|,
for the top-1 and given classes; ``aeq build`` / ``aeq explain`` run on each export.

Needs the ``jax`` / ``paddle`` extras of pyproject.toml (``make test`` installs both); a case
whose exporter is not installed is skipped with the missing packages named (shown by ``-ra``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `fixtures` is a top-level folder, not an installed package
    sys.path.insert(0, str(ROOT))

from aeq_onnx.cli import main  # noqa: E402
from fixtures import exporters, paddle_models  # noqa: E402
from tests.helpers import compare_with_reference, run_model  # noqa: E402
from tests.models import common  # noqa: E402

#: framework logits vs onnxruntime on the export: max |Δ| <= this x max |logits| (summation order
#: differs between the frameworks and onnxruntime's kernels); measured max |Δ|: Flax 1.2e-7
#: (|logits| <= 1.4), resnet18 4.6e-5 (|logits| <= 79), mobilenet_v3_small 7.5e-7 (<= 0.7)
FRAMEWORK_TOL = 1e-5
CASES = [("jax", "cnn"), *(("paddle", name) for name in paddle_models.MODELS)]


def exported(kind: str, name: str) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """The export, the seeded batch and the framework's logits on it (skipped, naming the
    packages, when the exporter is not installed)."""
    missing = exporters.missing(kind)
    if missing:
        pytest.skip(f"{kind} exporter not installed (missing {', '.join(missing)}: "
                    f"pip install -e .[{kind}] and the Makefile's EXPORTERS with --no-deps)")
    path = exporters.export(kind, name)
    saved = np.load(exporters.outputs_path(path))
    return onnx.load(str(path)), saved["batch"], saved["logits"]


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_export_matches_reference(kind: str, name: str, request: pytest.FixtureRequest) -> None:
    model, batch, framework = exported(kind, name)
    scale = max(1.0, float(np.abs(framework).max()))
    np.testing.assert_allclose(run_model(model, batch), framework, rtol=0,
                               atol=FRAMEWORK_TOL * scale)
    top1 = compare_with_reference(model, batch)
    classes = framework.shape[1]
    chosen = [3 % classes, (classes - 1)]
    compare_with_reference(model, batch, target=chosen)
    ops = sorted({n.op_type for n in model.graph.node})
    split = top1.reference["split"]
    common.report(request, f"\n[{kind}-{name}] split {split}; ops {' '.join(ops)}")


def test_flax_mean_is_reduce_sum_then_div() -> None:
    """The Flax export holds the form this file is about (a guard against the exporter
    changing): ReduceSum then Div, no ReduceMean; the split is the ReduceSum's input."""
    model, batch, _ = exported("jax", "cnn")
    ops = [n.op_type for n in model.graph.node]
    assert "ReduceMean" not in ops
    at = ops.index("ReduceSum")
    assert ops[at + 1] == "Div"
    reduce_sum = model.graph.node[at]
    got = compare_with_reference(model, batch)
    assert got.reference["split"] == reduce_sum.input[0]


@pytest.mark.parametrize("kind,name", CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_export_explains_from_the_cli(kind: str, name: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """``aeq build`` and ``aeq explain`` on the exported file (Flax: an NHWC ``.npy`` batch)."""
    model, batch, _ = exported(kind, name)
    path = tmp_path / f"{kind}-{name}.onnx"
    onnx.save(model, path)
    np.save(tmp_path / "x.npy", batch)
    assert main(["build", str(path), "-o", str(tmp_path / "e.onnx")]) == 0
    assert main(["explain", str(tmp_path / "e.onnx"), str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "r.npy")]) == 0
    relevance = np.load(tmp_path / "r.npy")
    assert relevance.shape == batch.shape and np.isfinite(relevance).all()
    assert np.abs(relevance).max() > 0
    assert "error" not in capsys.readouterr().err
