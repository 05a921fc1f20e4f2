"""``aeq audit --engine ray`` on one local 2-CPU Ray cluster shared by the module: the same rows,
heatmaps and report bytes as the local engine (any number of workers, resumed or not), a worker
killed mid-run, a corrupt image, resuming, a case that kills its worker every time, and the
Parquet output. Skipped without ``ray[data]``."""

from __future__ import annotations

import functools
import json
import os
import pickle
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data")  # tests/ray/ itself would pass for a namespace package `ray`
import ray
from ray.data import DataContext

from aeq_onnx.audit import (
    AuditResult,
    GroundTruthSource,
    RayOptions,
    audit,
    ray_engine,
)
from aeq_onnx.audit.ray_engine import AuditActor
from aeq_onnx.audit.scoring import CurveSettings
from tests.helpers_models import audit_dataset

SIZE = 8
IMAGES = 7
BATCH = 3  # chunks of 3, 3, 1: batch composition must match the local engine's
METHODS = "ae,gradient"
METRICS = ("pointing", "energy", "outside_inside", "iou", "insertion_blur", "deletion_blur")
REPORTS = ("json", "md", "html")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local Ray cluster with 2 CPUs for the whole module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model, seven 8x8 photos and their masks."""
    return audit_dataset(tmp_path_factory.mktemp("ray"), IMAGES, SIZE)


def run(data: dict[str, Path], out: Path, engine: RayOptions | None = None,
        img: Path | None = None, masks: bool = True, **kw: Any) -> AuditResult:
    """The audit of ``img`` (default: the seven photos), one session thread like the actors."""
    source = GroundTruthSource([img or data["img"]], masks=data["masks"] if masks else None)
    return audit(data["model"], source, methods=METHODS, out=out, preset="unit", size=SIZE,
                 curves=CurveSettings(steps=8), batch_size=BATCH, threads=1, engine=engine,
                 **kw)


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Rows as canonical JSON by (case, method)."""
    return {(r["case"], r["method"]): json.dumps(r, sort_keys=True) for r in rows}


def report_bytes(result: AuditResult) -> dict[str, bytes]:
    """The bytes of report.json, .md and .html (run.json, with the date and engine, aside)."""
    return {kind: result.report[kind].read_bytes() for kind in REPORTS}


def resumable(source: Path, out: Path, drop: set[str]) -> Path:
    """A copy of the output folder ``source`` with the rows of the cases ``drop`` removed from
    results.jsonl and the remaining lines shuffled (as if written in another order)."""
    shutil.copytree(source, out)
    lines = [x for x in (out / "results.jsonl").read_text().splitlines()
             if json.loads(x)["case"] not in drop]
    random.Random(0).shuffle(lines)
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    for kind in REPORTS:
        (out / f"report.{kind}").unlink()
    return out


def counts(out: Path, result: AuditResult) -> list[Counter[tuple[str, str]]]:
    """(case, method) counts in results.jsonl, results.parquet and the AuditRun's rows."""
    import pyarrow.parquet as pq

    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    table = pq.read_table(out / "results.parquet").to_pylist()
    return [Counter((r["case"], r["method"]) for r in rows)
            for rows in (lines, table, result.run.rows)]


def test_rows_heatmaps_and_reports_equal_the_local_engines(cluster: None, data: dict[str, Path],
                                                   tmp_path: Path) -> None:
    local = run(data, tmp_path / "local")
    remote = run(data, tmp_path / "ray", RayOptions(workers=2))
    assert not local.run.failures and not remote.run.failures
    assert len(remote.run.rows) == IMAGES * 2
    assert by_key(remote.run.rows) == by_key(local.run.rows)
    for row in remote.run.rows:
        for metric in METRICS:
            assert row[metric] is not None, (row["case"], row["method"], metric)
        ours = (tmp_path / "ray" / row["heatmap"]).read_bytes()
        assert ours == (tmp_path / "local" / row["heatmap"]).read_bytes(), row["heatmap"]
    assert report_bytes(remote) == report_bytes(local)  # tables whatever the completion order
    assert remote.run.throughput is not None  # type: ignore[attr-defined]
    assert remote.run.throughput.images == IMAGES  # type: ignore[attr-defined]
    assert json.loads(remote.report["run"].read_text())["engine"] == "ray"
    assert json.loads(local.report["run"].read_text())["engine"] == "local"


def test_one_worker_and_resumed_runs_write_the_same_report_bytes(
        cluster: None, data: dict[str, Path], tmp_path: Path) -> None:
    """One actor, and runs resumed (local and Ray) from a shuffled results.jsonl missing two
    cases, give the local engine's report bytes; the Ray runs the same Parquet bytes."""
    import pyarrow.parquet as pq

    local = report_bytes(run(data, tmp_path / "local"))
    one = run(data, tmp_path / "one", RayOptions(workers=1))
    assert report_bytes(one) == local
    ray_resumed = run(data, resumable(tmp_path / "local", tmp_path / "r", {"im1", "im5"}),
                      RayOptions(workers=2))
    assert ray_resumed.run.throughput.images == 2  # type: ignore[attr-defined]
    assert report_bytes(ray_resumed) == local
    local_resumed = run(data, resumable(tmp_path / "local", tmp_path / "l", {"im0", "im4"}))
    assert report_bytes(local_resumed) == local
    parquet = [(tmp_path / name / "results.parquet" / "part-00000.parquet").read_bytes()
               for name in ("one", "r")]
    assert parquet[0] == parquet[1]
    assert pq.read_table(tmp_path / "r" / "results.parquet").num_rows == IMAGES * 2


def test_parquet_dataset_has_one_row_per_image_and_method(cluster: None, data: dict[str, Path],
                                                          tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    result = run(data, tmp_path / "o", RayOptions(workers=2))
    table = pq.read_table(tmp_path / "o" / "results.parquet")
    assert {"case", "path", "method", "target", "probability", "heatmap", *METRICS} <= set(
        table.column_names)
    stored = {(r["case"], r["method"]): r for r in table.to_pylist()}
    assert len(stored) == table.num_rows == IMAGES * 2
    for row in result.run.rows:
        assert stored[row["case"], row["method"]]["iou"] == row["iou"]
        assert (tmp_path / "o" / stored[row["case"], row["method"]]["heatmap"]).is_file()


def crashing_actor(marker: Path, key: str, always: bool = False) -> type[AuditActor]:
    """An actor whose process dies (``os._exit``) on the chunk holding case ``key``: the first
    time only (a marker file remembers), or every time."""

    class Crashing(AuditActor):
        def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            keys = {c.key for blob in batch["cases"] for c in pickle.loads(blob)}
            if key in keys and (always or not marker.exists()):
                with marker.open("a") as handle:
                    handle.write("died\n")
                os._exit(1)
            return super().__call__(batch)

    return Crashing


def use_actor(monkeypatch: pytest.MonkeyPatch, actor: type[AuditActor]) -> None:
    """Make audit() run ``actor`` (it looks run_audit_ray up on its module when called)."""
    monkeypatch.setattr(ray_engine, "run_audit_ray",
                        functools.partial(ray_engine.run_audit_ray, actor=actor))


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
        cluster: None, data: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "crashed"
    out = tmp_path / "o"
    use_actor(monkeypatch, crashing_actor(marker, "im4"))  # chunk 2 of 3
    result = run(data, out, RayOptions(workers=2))
    assert marker.read_text() == "died\n"  # the actor did die, once
    assert not result.run.failures
    want = Counter({(f"im{k}", m): 1 for k in range(IMAGES) for m in METHODS.split(",")})
    assert counts(out, result) == [want, want, want]


def test_a_case_that_always_kills_its_worker_is_a_failure_not_a_hang(
        cluster: None, data: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "crashed"
    use_actor(monkeypatch, crashing_actor(marker, "im6", always=True))  # the last chunk
    result = run(data, tmp_path / "o", RayOptions(workers=2))
    assert marker.read_text().count("died") >= 2  # retried before giving up
    assert [item for item, _ in result.run.failures] == [str(data["img"] / "im6.png")]
    assert {r["case"] for r in result.run.rows} == {f"im{k}" for k in range(6)}


def test_a_corrupt_image_is_a_failure_and_the_rest_completes(
        cluster: None, data: dict[str, Path], tmp_path: Path) -> None:
    img = tmp_path / "img"
    img.mkdir()
    for k in range(IMAGES):
        (img / f"im{k}.png").write_bytes((data["img"] / f"im{k}.png").read_bytes())
    (img / "im2.png").write_text("not an image")  # no masks: the actor finds it unreadable
    result = run(data, tmp_path / "o", RayOptions(workers=2), img=img, masks=False)
    assert [item for item, _ in result.run.failures] == [str(img / "im2.png")]
    assert {r["case"] for r in result.run.rows} == {f"im{k}" for k in range(IMAGES)} - {"im2"}
    report = json.loads(result.report["json"].read_text())
    assert any("im2.png" in json.dumps(f) for f in report["failures"])


def test_a_rerun_computes_nothing_new_and_a_partial_one_only_what_is_missing(
        cluster: None, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o"
    first = run(data, out, RayOptions(workers=2))
    lines = (out / "results.jsonl").read_text().splitlines()
    second = run(data, out, RayOptions(workers=2))
    assert second.run.throughput.images == 0  # type: ignore[attr-defined]
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert by_key(second.run.rows) == by_key(first.run.rows)
    kept = [x for x in lines if json.loads(x)["case"] != "im5"
            or json.loads(x)["method"] != "gradient"]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n")
    third = run(data, out, RayOptions(workers=2))
    assert third.run.throughput.images == 1  # type: ignore[attr-defined]
    new = (out / "results.jsonl").read_text().splitlines()[len(kept):]
    assert [(json.loads(x)["case"], json.loads(x)["method"]) for x in new] == [("im5",
                                                                                 "gradient")]
    assert by_key(third.run.rows) == by_key(first.run.rows)
