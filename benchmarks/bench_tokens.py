"""Cost of explaining the torchvision token models (issue 21, item 7): compile time, explainer /
forward latency ratio, peak memory.

For ``vit_b_16``, ``swin_t`` and ``convnext_tiny`` (torchvision, built by
``fixtures/torchvision_models.py``: ``weights=None``, ``torch.manual_seed(0)``, ViT's zero head
redrawn; 224x224, TorchScript exporter at opset 17, cached in ``fixtures/.cache/``), each
measurement in a fresh subprocess (the workers of ``benchmarks/workers.py``, so each peak RSS is
its own): the AE explainer's compile time, node count, file size and the compiling process's
peak RSS; the onnxruntime forward and explainer latencies at batch 1 (one process, interleaved
rounds, 2 threads) and their ratio; the peak RSS of a process that runs the forward alone and
one that runs the explainer alone. A model that does not compile gets its error in the table.
Prints the table and writes ``benchmarks/results/TOKENS.md``::

    .venv/bin/python benchmarks/bench_tokens.py [--models vit_b_16,swin_t,convnext_tiny]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_compile import cpu  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "TOKENS.md"
MODELS = ("vit_b_16", "swin_t", "convnext_tiny")
SIZE = 224
OPSET = 17


def worker_export(name: str) -> dict[str, Any]:
    """Export (or find in the cache) the TorchScript opset-17 file of ``name`` at 224 px."""
    from fixtures import torchvision_models as tvm

    return {"path": str(tvm.export(name, "torchscript", OPSET, SIZE))}


def run_worker(*args: Any) -> dict[str, Any]:
    """This script as a worker subprocess; its JSON result or ``{"error": last stderr line}``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1][:600] if lines else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(name: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one model's row (stops at the first failing step)."""
    row: dict[str, Any] = {"model": name}
    exported = run_worker("export-tv", name)
    if "error" in exported:
        return {**row, "error": f"export: {exported['error']}"}
    model = exported["path"]
    row["source_mb"] = os.path.getsize(model) / 1e6
    explainer = workdir / f"{name}-explainer.onnx"
    compiled = run_worker("compile", model, explainer)
    if "error" in compiled:
        return {**row, "error": f"compile: {compiled['error']}"}
    row.update(compiled)
    print(f"{name}: compiled in {compiled['compile_s']:.1f} s", file=sys.stderr, flush=True)
    pair = run_worker("pair", model, explainer, 1, SIZE, 2, args.warmup, args.repeats,
                      args.rounds)
    if "error" in pair:
        return {**row, "error": f"run: {pair['error']}"}
    row.update(pair)
    for which, path in (("forward", model), ("explainer", explainer)):
        found = run_worker("session", path, which, 1, SIZE, 2)
        row[f"{which}_rss_mib"] = found.get("rss_mib")
    explainer.unlink(missing_ok=True)
    return row


def _num(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table."""
    lines = ["| model | source MB | compile s | explainer nodes | explainer MB "
             "| compile peak RSS MiB | forward ms | explainer ms | explainer / forward "
             "| forward peak RSS MiB | explainer peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r and "compile_s" not in r:
            lines.append(f"| {r['model']} | {_num(r.get('source_mb'), '.1f')} | "
                         f"fails: {r['error'].replace('|', '/')} | | | | | | | | |")
            continue
        ratio = (r["explainer_ms"] / r["forward_ms"]) if "forward_ms" in r else None
        lines.append(
            f"| {r['model']} | {r['source_mb']:.1f} | {r['compile_s']:.1f} | {r['nodes']} "
            f"| {r['explainer_mb']:.1f} | {r['compile_rss_mib']:.0f} "
            f"| {_num(r.get('forward_ms'), '.0f')} | {_num(r.get('explainer_ms'), '.0f')} "
            f"| {_num(ratio, '.2f')}× | {_num(r.get('forward_rss_mib'), '.0f')} "
            f"| {_num(r.get('explainer_rss_mib'), '.0f')} |")
    return "\n".join(lines)


def document(rows: Sequence[dict[str, Any]], args: argparse.Namespace, seconds: float) -> str:
    """``benchmarks/results/TOKENS.md``."""
    import onnxruntime
    import torch

    import aeq_onnx

    command = " ".join([".venv/bin/python benchmarks/bench_tokens.py", *args.argv])
    return "\n".join([
        "# Token models: compile time, explainer / forward, peak memory", "",
        f"`{command}` on {datetime.date.today()}, {cpu()} ({os.cpu_count()} cores, shared with "
        f"other jobs), {seconds / 60:.1f} min; Python {platform.python_version()}, aeq_onnx "
        f"{aeq_onnx.__version__}, onnxruntime {onnxruntime.__version__}, torch "
        f"{torch.__version__}. torchvision models with `weights=None` after "
        "`torch.manual_seed(0)`, ViT's zero-initialised head redrawn (seeded; "
        f"`fixtures/torchvision_models.py`), {SIZE}x{SIZE}, TorchScript exporter opset {OPSET}; AE "
        "explainer with the library's defaults; batch 1, 2 onnxruntime threads, medians of "
        f"{args.rounds} interleaved rounds of {args.repeats} runs (after {args.warmup} warm-up "
        "runs) of the forward and the explainer in one process. Peak RSS: `ru_maxrss` of a "
        "fresh process (Python, onnxruntime and aeq_onnx included) that compiles, or that "
        "loads one session and runs it three times. Export time is not included. No target: "
        "issue 21 asks for the figures only.", "", table(rows), ""])


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(argv) if argv is not None else sys.argv[1:]
    if raw[:1] == ["--worker"]:
        from benchmarks import workers

        if raw[1] == "export-tv":
            print(json.dumps(worker_export(raw[2])))
            return 0
        return workers.worker_main(raw[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args(raw)
    args.argv = raw
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(measure(name, Path(tmp), args))
            print(table(rows[-1:]), flush=True)
    text = table(rows)
    print(text)
    if str(args.output):
        args.output.write_text(document(rows, args, time.perf_counter() - start),
                               encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
