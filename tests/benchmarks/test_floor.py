"""benchmarks/floor.py: the kernel split, and a run on the tiny ResNet that fills every column."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import floor


def event(op: str, dur_us: int) -> dict[str, object]:
    return {"dur": dur_us, "args": {"op_name": op}}


def test_split_sorts_products_from_the_rest_per_image() -> None:
    events = [event("Conv", 3000), event("ConvTranspose", 1000), event("Gemm", 500),
              event("FusedConv", 500), event("Mul", 800), event("ReorderOutput", 200)]
    got = floor.split(events, runs=2, batch=5)  # 10 images in all
    assert got.products == pytest.approx(0.5)  # 5000 µs / 10
    assert got.rest == pytest.approx(0.1)
    assert got.total == pytest.approx(0.6)


def test_row_takes_medians_and_the_floor_range() -> None:
    pairs = [(floor.Split(10.0, 0.0), floor.Split(60.0, 20.0)),
             (floor.Split(20.0, 0.0), floor.Split(140.0, 30.0)),
             (floor.Split(10.0, 0.0), floor.Split(70.0, 20.0))]
    cells = floor.row("resnet50", 2, 1, pairs, 6.41)
    assert cells[3:] == ["10.0", "90.0", "70.0", "8.50x", "7.00x", "6.00-7.00", "2.00x",
                         "6.41x"]


def test_tiny_run_fills_every_column(tmp_path: Path) -> None:
    output = tmp_path / "FLOOR.md"
    assert floor.main(["--models", "tiny", "--size", "64", "--rounds", "1", "--runs", "1",
                       "--threads", "1", "--batches", "1,2", "--output", str(output)]) == 0
    rows = [line.strip().strip("|").strip().split(" | ") for line in output.read_text().splitlines()
            if line.startswith("| tiny")]
    assert [r[2].strip() for r in rows] == ["1", "2"]
    for cells in rows:
        forward, explainer, products = (float(c) for c in cells[3:6])
        assert 0 < forward < explainer and 0 < products < explainer
        assert float(cells[7].rstrip("x")) == pytest.approx(products / forward, rel=0.05)
        assert float(cells[10].rstrip("x")) > 5  # the AE rule: ~7 products per Conv
