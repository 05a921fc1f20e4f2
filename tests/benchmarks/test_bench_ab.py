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
    assert all(float(c.rstrip("x")) > 0 for c in cells[1:8]), cells
    assert float(cells[8]) <= 1e-6, f"HEAD vs this checkout's relevance differ: {cells[8]}"


def test_flops_counts_a_hand_checked_model() -> None:
    """Conv 3→8 (3×3, pad 1) on 10×10, ConvTranspose 8→4 (2×2, stride 2), Gemm 4·20·20→5:
    MACs written out by hand."""
    from benchmarks import flops
    from tests.helpers import Net

    net = Net((3, 10, 10), seed=0)
    net.conv(8, 3, pads=1)
    w = net.weight((8, 4, 2, 2), fan_in=32)
    net.op("ConvTranspose", [net.cur, w], kernel_shape=[2, 2], strides=[2, 2])
    net.op("Flatten", [net.cur])
    net.gemm(5)
    want = 8 * 10 * 10 * 3 * 9 + 8 * 10 * 10 * 4 * 4 + 5 * (4 * 20 * 20)
    assert flops.macs(net.build(classes=5)) == want
