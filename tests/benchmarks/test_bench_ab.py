"""Smoke test of ``benchmarks/bench_ab.py`` on the tiny ResNet, against HEAD itself: the table
is filled and the two explainers of the same code agree exactly (the relevance column is a
real comparison: any emission change between the revisions would show there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ab_against_head_runs_and_agrees(tmp_path: Path) -> None:
    out = tmp_path / "AB.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_ab.py"), "--ref", "HEAD",
                    "--models", "tiny", "--rounds", "2", "--out", str(out)],
                   check=True, cwd=ROOT, capture_output=True, timeout=300)
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines()
            if line.startswith("| tiny")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0]]
    assert all(float(c.rstrip("x")) > 0 for c in cells[1:6]), cells
    assert float(cells[7]) <= 1e-6, f"HEAD vs this checkout's relevance differ: {cells[7]}"
