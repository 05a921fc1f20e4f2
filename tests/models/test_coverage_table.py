"""``scripts/coverage_table.py`` without running any model: the matrix, the error summary and
the markdown it writes (the model runs themselves are ``test_architectures.py``'s job)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.errors import UnsupportedOpError  # noqa: E402
from fixtures import torchvision_models as tvm  # noqa: E402
from scripts import coverage_table as ct  # noqa: E402


def test_matrix_covers_every_opset_or_only_defaults_when_quick() -> None:
    full = ct.cases(["mobilenet_v2"], tvm.EXPORTERS, None, quick=False)
    assert full == [("mobilenet_v2", "torchscript", o) for o in tvm.OPSETS["torchscript"]] + [
        ("mobilenet_v2", "dynamo", o) for o in tvm.OPSETS["dynamo"]]
    quick = ct.cases(["alexnet", "vgg16"], ["torchscript", "dynamo"], None, quick=True)
    assert quick == [("alexnet", "torchscript", 17), ("alexnet", "dynamo", 18),
                     ("vgg16", "torchscript", 17), ("vgg16", "dynamo", 18)]
    # an opset an exporter is not exercised at is dropped, not passed on
    assert ct.cases(["alexnet"], ["dynamo"], [11, 18], quick=False) == [("alexnet", "dynamo", 18)]


#: fixtures outside docs/coverage.md: the token models, tested by test_token_models.py
#: (vit_b_16 at its native 224 only by benchmarks/bench_tokens.py: too slow for the suite)
TOKEN_MODELS = {"vit_b_16", "vit_b_16_32", "swin_t", "swin_v2_t", "convnext_tiny", "maxvit_t"}


def test_every_fixture_is_in_the_coverage_table_or_the_token_tests() -> None:
    assert set(ct.ARCHS) | TOKEN_MODELS == set(tvm.MODELS)
    assert not set(ct.ARCHS) & TOKEN_MODELS
    source = (Path(__file__).parent / "test_token_models.py").read_text(encoding="utf-8")
    assert [n for n in sorted(TOKEN_MODELS - {"vit_b_16"}) if f'"{n}"' not in source] == []


def test_unsupported_summary_counts_ops_with_their_reason() -> None:
    exc = UnsupportedOpError([("Mul", "/a/Mul: Mul of 2 non-constant operands", 17),
                              ("Mul", "/b/Mul: Mul of 2 non-constant operands", 17),
                              ("Pad", "/c/Pad", 17)], ["Conv"])
    assert ct.unsupported_summary(exc) == (
        "UnsupportedOpError: Mul x2 (Mul of 2 non-constant operands), Pad x1")


def test_markdown_has_one_row_per_case_and_escapes_pipes() -> None:
    ok = ct.CaseResult("mobilenet_v2", "torchscript", 17, 64, status="pass", logits_err=1e-6,
                       relevance_err=5e-6, times={"compile": 0.3, "session": 1.0,
                                                  "explain": 2.0})
    bad = ct.CaseResult("efficientnet_b0", "dynamo", 18, 64, status="unsupported",
                        error="UnsupportedOpError: Mul x65 (a|b)", unsupported_ops=["Mul"])
    lines = ct.markdown([ok, bad]).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| architecture |")
    assert "✅ pass" in lines[2] and "1.0e-06" in lines[2] and "5.0e-06" in lines[2]
    assert "❌ unsupported" in lines[3] and "Mul x65 (a\\|b)" in lines[3]
    assert "UnsupportedOpError" not in lines[3]
    columns = [line.count("|") - line.count("\\|") for line in lines]
    assert len(set(columns)) == 1, columns


def test_parse_results_reads_back_what_markdown_writes() -> None:
    ok = ct.CaseResult("vgg16", "dynamo", 18, 224, status="pass", logits_err=1e-7,
                       relevance_err=2e-7)
    bad = ct.CaseResult("alexnet", "torchscript", 11, 224, status="reference error",
                        error="NotImplementedError: x | y")
    assert ct.parse_results(ct.document([ok, bad])) == {
        ("vgg16", "dynamo", 18): True, ("alexnet", "torchscript", 11): False}


def test_coverage_doc_is_one_full_run() -> None:
    """docs/coverage.md holds exactly the full matrix (a partial run cannot overwrite it)."""
    rows = ct.parse_results(ct.DOC.read_text(encoding="utf-8"))
    assert sorted(rows) == sorted(ct.cases(ct.ARCHS, tvm.EXPORTERS, None, quick=False))


def test_partial_run_does_not_write_the_doc(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    ran: list[tuple[str, str, int]] = []

    def fake(arch: str, exporter: str, opset: int) -> ct.CaseResult:
        ran.append((arch, exporter, opset))
        return ct.CaseResult(arch, exporter, opset, 64, status="pass", logits_err=0.0,
                             relevance_err=0.0)

    monkeypatch.setattr(ct, "run_case", fake)
    monkeypatch.setattr(ct, "DOC", tmp_path / "coverage.md")
    assert ct.main(["--arch", "alexnet", "--exporter", "dynamo"]) == 0
    assert ran == [("alexnet", "dynamo", 18)] and not (tmp_path / "coverage.md").exists()
    assert ct.main(["--arch", "alexnet", "--exporter", "dynamo", "--out",
                    str(tmp_path / "part.md")]) == 0
    assert (tmp_path / "part.md").exists()


def test_resume_keeps_passing_rows_and_reruns_the_rest(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    matrix = ct.cases(ct.ARCHS, tvm.EXPORTERS, None, quick=False)
    old = [ct.CaseResult(a, e, o, 64, status="pass", logits_err=1e-7, relevance_err=2e-7)
           for a, e, o in matrix]
    old[-1] = ct.CaseResult(*matrix[-1], 64, status="export error", error="OSError: x | y")
    doc = tmp_path / "coverage.md"
    doc.write_text(ct.document(old), encoding="utf-8")
    assert list(ct.parse_rows(doc.read_text()).values()) == old  # the table reads back whole
    ran: list[tuple[str, str, int]] = []

    def fake(arch: str, exporter: str, opset: int) -> ct.CaseResult:
        ran.append((arch, exporter, opset))
        return ct.CaseResult(arch, exporter, opset, 64, status="pass", logits_err=0.0,
                             relevance_err=0.0)

    monkeypatch.setattr(ct, "run_case", fake)
    monkeypatch.setattr(ct, "DOC", doc)
    assert ct.main(["--resume"]) == 0
    assert ran == [matrix[-1]]
    text = doc.read_text()
    assert all(ct.parse_results(text).values()) and "re-run " + " ".join(map(str, matrix[-1])) \
        in text
    with pytest.raises(SystemExit):
        ct.main(["--resume", "--quick"])
