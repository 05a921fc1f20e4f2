"""Byte-mutation fuzzing: flip / truncate / insert / delete / overwrite / duplicate bytes of a
small valid model; loading and compiling each must end in a clean ``AeqError`` (or a compiled
explainer) and never crash the calling process.

The cases run in a child process (``mutate_worker.py``) so that a native crash is caught and
named by its case number. ``AEQ_MUTATION_CASES`` (default 1000) sets how many; the seed is fixed
(``AEQ_MUTATION_SEED``, default 0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests import reliability
from tests.helpers import Net

CASES = int(os.environ.get("AEQ_MUTATION_CASES", "1000"))
SEED = int(os.environ.get("AEQ_MUTATION_SEED", "0"))
WORKER = Path(__file__).with_name("mutate_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def small_model(path: Path) -> Path:
    net = Net((3, 8, 8), seed=0)
    net.conv(4, 3, pads=1)
    net.relu()
    net.op("MaxPool", [net.cur], kernel_shape=[2, 2], strides=[2, 2])
    net.conv(4, 3, pads=1)
    net.relu()
    path.write_bytes(net.head(3).SerializeToString())
    return path


def test_mutated_model_bytes_fail_cleanly(tmp_path: Path) -> None:
    model = small_model(tmp_path / "model.onnx")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(WORKER), str(model), str(SEED), str(CASES)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    results = [r for r in lines if "outcome" in r]
    last = lines[-1] if lines else None
    assert done.returncode == 0, (
        f"worker died (rc {done.returncode}) in case {last}; reproduce with "
        f"python {WORKER} MODEL {SEED} 1 {last['case'] if last else 0}\n{done.stderr[-2000:]}")
    outcomes = Counter(str(r["outcome"]) for r in results)
    summary = {"test": "mutation_fuzz", "cases": len(results), "seed": SEED,
               "outcomes": dict(sorted(outcomes.items())),
               "seconds": round(time.perf_counter() - start, 1)}
    print(f"\n[mutation fuzz] {json.dumps(summary)}")
    reliability.FUZZ["mutation_fuzz"] = summary
    target = os.environ.get("AEQ_FUZZ_REPORT")
    if target:
        path = Path(target)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["mutation_fuzz"] = summary
        path.write_text(json.dumps(data, indent=2) + "\n")
    bad = [r for r in results if r["outcome"] in ("untyped", "multiline")]
    assert len(results) == CASES
    assert not bad, f"{len(bad)} case(s) without a clean typed error: {bad[:5]}"


@pytest.mark.parametrize("case", [8625, 2073, 8276, 9534],
                         ids=["conv-group-0", "maxpool-kernel-too-big", "channel-mismatch",
                              "gemm-transB-65"])
def test_formerly_untyped_mutations_give_typed_errors(tmp_path: Path, case: int) -> None:
    """Seed-2 mutations that once escaped as ZeroDivisionError / InferenceError."""
    model = small_model(tmp_path / "model.onnx")
    done = subprocess.run([sys.executable, str(WORKER), str(model), "2", "1", str(case)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    results = [json.loads(line) for line in done.stdout.splitlines() if '"outcome"' in line]
    assert done.returncode == 0 and len(results) == 1, done.stderr[-1000:]
    assert str(results[0]["outcome"]).startswith("typed:"), results[0]
