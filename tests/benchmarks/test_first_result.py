"""benchmarks/bench_first_result.py: phase timers, targets from the numbers, and a one-round
run on the tiny ResNet that fills every table."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import first_result_probe as probe
from benchmarks import first_result_report as fr
from tests.benchmarks.test_bench_smoke import tables

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_first_result.py"


def test_nested_phases_count_once() -> None:
    """The load inside a compile counts as load, not twice."""
    clock = probe.Clock(time.time())
    load = clock.wrap("load_check", lambda: time.sleep(0.05))

    def compile_() -> None:
        time.sleep(0.05)
        load()

    clock.wrap("compile", compile_)()
    assert 0.05 <= clock.totals["load_check"] < 0.09
    assert 0.05 <= clock.totals["compile"] < 0.09


def sample(first_png: float, run: float = 0.1, isolated: float = 0.0) -> dict[str, Any]:
    phases = dict.fromkeys(probe.PHASES, 0.0) | {"run": run}
    return {"first_png": first_png, "exit": first_png + 0.1, "isolated": isolated,
            "phases": phases}


def samples(iso_extra: list[float]) -> fr.Samples:
    """Three rounds; the isolated commands take ``iso_extra`` longer than --no-isolate."""
    plain = [2.0, 2.2, 1.8]
    runs = {"forward": [sample(0.5)] * 3}
    for kind in ("model", "explainer"):
        runs[kind] = [sample(p + e, isolated=e) for p, e in zip(plain, iso_extra, strict=True)]
        runs[f"{kind} --no-isolate"] = [sample(p) for p in plain]
    return {"resnet50": runs}


def test_isolation_extra_is_the_median_paired_difference() -> None:
    got = samples([0.1, 0.9, 0.2])
    assert fr.extra(got["resnet50"]["model"], got["resnet50"]["model --no-isolate"]) == (
        pytest.approx(0.2))


@pytest.mark.parametrize(("extra", "status"), [(0.45, "MET"), (0.55, "MISSED")])
def test_isolation_target(extra: float, status: str) -> None:
    """25 % of the --no-isolate median (2.0 s): 0.45 s meets it, 0.55 s misses."""
    rows = fr.target_rows(samples([extra] * 3))
    assert [r[3] for r in rows if "isolation" in r[1]] == [status, status]


def test_forward_target() -> None:
    """3 × 0.5 s forward + 0.1 s run = 1.6 s: an explainer at 2.0 s+ misses."""
    row = next(r for r in fr.target_rows(samples([0.0] * 3)) if "forward" in r[1])
    assert "(1.60 s)" in row[1] and row[3] == "MISSED"


@pytest.mark.slow
def test_one_round_on_the_tiny_model(tmp_path: Path) -> None:
    output = tmp_path / "FIRST_RESULT.md"
    command = [sys.executable, str(SCRIPT), "--models", "tiny", "--size", "64", "--repeats",
               "1", "--output", str(output)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = output.read_text()
    found = tables(text)
    first = found["First heatmap (seconds from process start to the PNG written)"]
    assert len(first) == 2
    numbers = [float(c.split()[0]) for c in first[1][1:]]  # extras may be negative (noise)
    assert all(numbers[i] > 0 for i in (0, 1, 2, 4, 5)) and numbers[7] >= 0, text
    targets = found["Targets (computed from the numbers above)"][1:]
    assert len(targets) == 3 and all(row[3] in ("MET", "MISSED") for row in targets)
    phases = found["Phase split (median seconds; `first PNG` and `exit` from process start)"]
    variants = {row[1] for row in phases[1:]}
    assert variants == {"forward", "model", "model --no-isolate", "explainer",
                        "explainer --no-isolate"}
    for row in phases[1:]:
        values = [float(c) for c in row[2:]]
        assert values[-2] > 0 and values[-1] >= values[-2], text  # first PNG, then exit
        assert (values[2] > 0) == (row[1] in ("model", "explainer")), text  # isolated child
        assert values[4] > 0, text  # session
