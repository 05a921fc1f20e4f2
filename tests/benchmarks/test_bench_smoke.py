"""Smoke test of the benchmark: ``--quick`` on the tiny ResNet must produce every table with
every column filled, every method row, and computed MET/MISSED targets (< 60 s)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report, workers

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_explainer.py"
SECTIONS = {
    "Attribution methods, batch 1": report.METHOD_COLUMNS,
    "onnxruntime forward vs explainer": report.BATCH_COLUMNS,
    "Targets (computed from the numbers above)": report.TARGET_COLUMNS,
    "onnxruntime session options (explainer, batch 1)": report.OPTION_COLUMNS,
}


def tables(text: str) -> dict[str, list[list[str]]]:
    """Each ``## section``'s Markdown table as rows of cells (header first, rule dropped)."""
    out: dict[str, list[list[str]]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            out.setdefault(section, []).append(cells)
    return out


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> str:
    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    command = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--output",
               str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    assert text == done.stdout.rstrip("\n") + "\n"  # printed and written alike
    return text


def test_every_table_has_every_column(quick_report: str) -> None:
    found = tables(quick_report)
    for section, columns in SECTIONS.items():
        assert section in found, f"missing table {section!r}"
        header, *rows = found[section]
        assert tuple(header) == columns
        assert rows, f"table {section!r} has no rows"
        for row in rows:
            assert len(row) == len(columns), row
            assert all(cell for cell in row[:4]), row


def test_every_method_and_number(quick_report: str) -> None:
    rows = tables(quick_report)["Attribution methods, batch 1"][1:]
    labels = " ".join(row[1] for row in rows)
    for method, label in report.METHODS.items():
        assert label.split("{")[0].split(",")[0] in labels, method
    for row in rows:
        assert float(row[3]) > 0 and row[5].endswith("x") and row[6].endswith("x"), row
    agreement = next(row[8] for row in rows if row[1] == report.METHODS["torch_ae"])
    assert float(agreement) < report.AGREEMENT_TARGET  # torch_ae and the explainer agree


def test_targets_are_computed(quick_report: str) -> None:
    rows = tables(quick_report)["Targets (computed from the numbers above)"][1:]
    assert len(rows) == 9
    for *_, measured, status in rows:
        assert status in ("MET", "MISSED")
        float(measured)
    variants = [row[1] for row in tables(quick_report)[
        "onnxruntime session options (explainer, batch 1)"][1:]]
    assert set(variants) <= set(workers.VARIANTS) and "runtime" in variants
    assert "## " in quick_report and "- Machine: " in quick_report
    assert "- Command: `" in quick_report and "torch 2" in quick_report
