"""The audit's reports depend on the rows, never on the order they were computed in (the local
engine, Ray with any number of workers and a resumed run each complete the cases in their own
order): the same rows, sanity rows and failures fed in shuffled orders give the same bytes of
``report.json``, ``report.md``, ``report.html`` and the Parquet file, and the means are exact."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aeq_onnx.audit import GroundTruthSource, audit, summary
from aeq_onnx.audit.engine import AuditConfig, AuditRun
from aeq_onnx.audit.methods import parse_methods
from aeq_onnx.audit.report import write
from aeq_onnx.audit.scoring import CurveSettings
from aeq_onnx.audit.store import Row
from aeq_onnx.render.presets import get_preset, input_spec
from tests.helpers_models import audit_dataset

SIZE = 8
METHODS = "ae,gradient,rise:masks=16"
SHUFFLES = 5
#: Per case: the float sum depends on the order (1 + 1e-16 is 1, 1e-16 + 1e-16 + 1 is not).
TINY = (1.0, 1e-16, 1e-16, 1e-16, 0.1, 0.2)


def spread(rng: np.random.Generator) -> float:
    """A value whose sum with others depends on the order they are added in."""
    return float(rng.random() * 10.0 ** rng.integers(-6, 6))


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[AuditRun, AuditConfig]:
    """A real audit (three methods, sanity check on two cases) whose deletion AUCs are then
    replaced by :data:`TINY` (and curves by values of very different magnitudes), plus three
    failures, one twice."""
    data = audit_dataset(tmp_path_factory.mktemp("order"), 6, SIZE)
    result = audit(data["model"], GroundTruthSource([data["img"]], masks=data["masks"]),
                   methods=METHODS, out=data["root"] / "out", preset="unit", size=SIZE,
                   curves=CurveSettings(steps=6), sanity_cases=2)
    assert len(result.run.rows) == 6 * 3 and result.run.sanity and not result.run.failures
    rng = np.random.default_rng(0)
    for row in result.run.rows:
        row["deletion_blur"] = TINY[int(row["case"][2:])]
        row["curves"]["deletion_blur"] = [spread(rng) for _ in row["curves"]["deletion_blur"]]
    for row in result.run.sanity:
        row["ssim"] = spread(rng)
    result.run.failures = [("b.png", "unreadable"), ("a.png", "bad mask"), ("b.png", "again"),
                           ("a.png", "bad mask")]
    preset = get_preset("unit", size=SIZE)
    config = AuditConfig(parse_methods(METHODS), data["root"] / "out", preset,
                         input_spec(["N", 3, SIZE, SIZE], preset))
    return result.run, config


def shuffled(run: AuditRun, seed: int) -> AuditRun:
    """The same run with rows, sanity rows and failures in another order (rows copied)."""
    rng = random.Random(seed)

    def mix(items: list[Any]) -> list[Any]:
        return rng.sample(items, len(items))

    return AuditRun(mix([dict(r) for r in run.rows]), mix([dict(r) for r in run.sanity]),
                    mix(list(run.failures)), list(run.methods))


def report_bytes(run: AuditRun, config: AuditConfig, seed: int) -> dict[str, bytes]:
    """The three reports' bytes; the run information (command, date) differs on purpose."""
    info = {"model": "model.onnx", "sha256": "0" * 64, "command": f"aeq audit --seed {seed}",
            "date": f"2026-01-0{seed + 1} 00:00 UTC", "curve_steps": 6}
    paths = write(run, config, info)
    assert f"--seed {seed}" in paths["run"].read_text()  # run.json has what varies
    return {k: paths[k].read_bytes() for k in ("json", "md", "html")}


def test_the_data_is_order_sensitive_for_a_naive_mean(audited: tuple[AuditRun,
                                                                     AuditConfig]) -> None:
    """Guard: without fsum the shuffles below would give different tables (np.mean does)."""
    run, _ = audited
    means = {float(np.mean([r["deletion_blur"] for r in shuffled(run, s).rows
                            if r["method"] == "ae"])) for s in range(20)}
    assert len(means) > 1


def test_shuffled_rows_give_byte_identical_reports(audited: tuple[AuditRun,
                                                                 AuditConfig]) -> None:
    run, config = audited
    first = report_bytes(shuffled(run, 0), config, 0)
    for seed in range(1, SHUFFLES):
        again = report_bytes(shuffled(run, seed), config, seed)
        for kind, data in first.items():
            assert again[kind] == data, (kind, seed)
    assert first["json"].count(b'"item"') == 3  # failures once each
    assert b"--seed" not in first["json"] + first["md"] + first["html"]


def test_examples_are_the_first_cases_by_key(audited: tuple[AuditRun, AuditConfig]) -> None:
    run, config = audited
    page = report_bytes(shuffled(run, 3), config, 3)["html"].decode()
    examples = page[page.index("<h2>Examples</h2>"):]
    assert [f"<th>im{k}</th>" in examples for k in range(6)] == [True] * 4 + [False] * 2


def rows_of(values: list[float], curves: list[list[float]]) -> list[Row]:
    """Rows of one method with a metric and a curve per case, plus a second method."""
    return [{"case": f"c{i}", "method": m, "iou": v if m == "a" else -v,
             "curves": {"insertion_blur": c}}
            for i, (v, c) in enumerate(zip(values, curves, strict=True)) for m in ("a", "b")]


def test_means_are_exact_in_any_order() -> None:
    rng = np.random.default_rng(1)
    values = [spread(rng) for _ in range(40)]
    curves = [[spread(rng) for _ in range(5)] for _ in values]
    rows = rows_of(values, curves)
    sanity = [{"case": f"c{i}", "method": "a", "step": str(s), "layer": f"l{s}",
               "ssim": spread(rng), "spearman": spread(rng), "spearman_abs": None}
              for i in range(7) for s in range(1, 12)]
    want = summary.table(rows, sanity, ["a", "b"])
    assert want["a"]["iou"] == math.fsum(values) / len(values)
    assert want["b"]["iou"] == -want["a"]["iou"]
    first = (want, summary.mean_curves(rows, ["a", "b"]), summary.sanity_curves(sanity, ["a"]))
    assert first[1]["insertion_blur"]["a"] == [round(math.fsum(p) / len(p), 6)
                                               for p in zip(*curves, strict=True)]
    assert [p["step"] for p in first[2]["a"]] == list(range(1, 12))  # steps as numbers
    for seed in range(SHUFFLES):
        order = random.Random(seed)
        mixed = order.sample(rows, len(rows))
        mixed_sanity = order.sample(sanity, len(sanity))
        assert (summary.table(mixed, mixed_sanity, ["a", "b"]),
                summary.mean_curves(mixed, ["a", "b"]),
                summary.sanity_curves(mixed_sanity, ["a"])) == first


def test_parquet_bytes_do_not_depend_on_row_order(audited: tuple[AuditRun, AuditConfig],
                                                  tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from aeq_onnx.audit.ray_engine import write_parquet

    run, _ = audited
    parts = {write_parquet(shuffled(run, seed).rows, tmp_path / f"p{seed}").joinpath(
        "part-00000.parquet").read_bytes() for seed in range(SHUFFLES)}
    assert len(parts) == 1


def test_means_of_extreme_values_do_not_raise() -> None:
    big, inf = 1.5e308, math.inf
    assert summary.mean([big, big, None]) == big
    assert summary.mean([big, -big, big]) == summary.mean([big, big, -big]) == big / 3
    assert summary.mean([inf, 1.0]) == inf
    assert math.isnan(summary.mean([inf, -inf]) or 0.0)
    assert math.isnan(summary.mean([math.nan, 1.0]) or 0.0)
    assert summary.mean([None]) is None
