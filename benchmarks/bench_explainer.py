"""Benchmark the AE explainer against the plain forward pass on onnxruntime CPU.

For each model (torchvision, seeded random weights, torchscript export, 224x224): compile time
of ``aeq_onnx.compile_explainer``, median latency of the plain model and of the explainer at
each batch size, their ratio, and the peak RSS of each session. Every measurement runs in a
fresh subprocess (so ``ru_maxrss`` is that session's own peak). Prints a markdown report and
writes it to ``benchmarks/RESULTS.md`` (``--output``).

    python benchmarks/bench_explainer.py            # VGG-16 + ResNet-50, batch 1 and 8
    python benchmarks/bench_explainer.py --quick    # smoke run: ResNet-50, batch 1, 1 repeat
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
MODELS = ("vgg16", "resnet50")
TITLES = {"vgg16": "VGG-16", "resnet50": "ResNet-50"}
SIZE = 224
EXPORTER = "torchscript"
RATIO_TARGET = 10.0  # explainer latency / forward latency
COMPILE_TARGET_S = 10.0


# --------------------------------------------------------------------------- workers
# Each worker runs in its own interpreter and prints one JSON line as its last stdout line.

def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_compile(model: str, out: str) -> dict[str, Any]:
    """Compile ``model`` into ``out``; the time covers loading the file and compiling."""
    import onnx

    import aeq_onnx

    start = time.perf_counter()
    explainer = aeq_onnx.compile_explainer(model)
    compile_s = time.perf_counter() - start
    onnx.save(explainer, out)
    return {"compile_s": compile_s, "nodes": len(explainer.graph.node),
            "explainer_mb": os.path.getsize(out) / 1e6, "compile_rss_mib": peak_rss_mib()}


def _session(model: str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _feeds(batch: int, explainer: bool) -> dict[str, Any]:
    import numpy as np

    x = np.random.default_rng(0).standard_normal((batch, 3, SIZE, SIZE)).astype(np.float32)
    return {"input": x, "target": np.full(batch, -1, np.int64)} if explainer else {"input": x}


def worker_session(model: str, batch: int, explainer: bool, threads: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that loads one session and runs it once."""
    start = time.perf_counter()
    session = _session(model, threads)
    load_s = time.perf_counter() - start
    session.run(None, _feeds(batch, explainer))
    return {"load_s": load_s, "rss_mib": peak_rss_mib()}


def worker_pair(model: str, explainer: str, batch: int, threads: int, warmup: int,
                repeats: int) -> dict[str, Any]:
    """Median latencies of the forward and the explainer in one process: a forward block, an
    explainer block, a second forward block (each warmed up), so both see the same machine
    and the forward is timed at its best, with drift between the blocks shown."""
    sessions = [(_session(model, threads), _feeds(batch, False)),
                (_session(explainer, threads), _feeds(batch, True))]
    blocks = []
    for k in (0, 1, 0):
        session, feeds = sessions[k]
        times = []
        for i in range(warmup + repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        blocks.append(times)
    return {"forward_ms": 1e3 * statistics.median(blocks[0] + blocks[2]),
            "explainer_ms": 1e3 * statistics.median(blocks[1]),
            "forward_drift": statistics.median(blocks[2]) / statistics.median(blocks[0])}


def run_worker(*args: str) -> dict[str, Any]:
    """Run this script as a worker subprocess and parse its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args[:2])} failed ({done.returncode}):\n"
                           f"{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- driver

@dataclass
class Row:
    """One (model, batch) line of the results table."""

    model: str
    batch: int
    forward_ms: float
    explainer_ms: float
    forward_rss: float
    explainer_rss: float
    compile_s: float

    @property
    def ratio(self) -> float:
        return self.explainer_ms / self.forward_ms


def bench_model(name: str, batches: list[int], args: argparse.Namespace,
                workdir: Path) -> tuple[list[Row], dict[str, Any]]:
    """Export (cached), compile in a subprocess, then time both sessions per batch size."""
    sys.path.insert(0, str(ROOT))
    from fixtures import torchvision_models

    model = torchvision_models.export(name, EXPORTER, size=SIZE)
    explainer = workdir / f"{name}-explainer.onnx"
    log(f"{name}: compiling {model.name}")
    compiled = run_worker("compile", str(model), str(explainer))
    log(f"{name}: compiled in {compiled['compile_s']:.1f} s")
    rows = []
    for batch in batches:
        common = [str(batch), str(args.threads)]
        timed = run_worker("pair", str(model), str(explainer), *common, str(args.warmup),
                           str(args.repeats))
        log(f"{name} b{batch}: forward {timed['forward_ms']:.0f} ms, "
            f"explainer {timed['explainer_ms']:.0f} ms")
        forward = run_worker("session", str(model), "forward", *common)
        explain = run_worker("session", str(explainer), "explainer", *common)
        rows.append(Row(name, batch, timed["forward_ms"], timed["explainer_ms"],
                        forward["rss_mib"], explain["rss_mib"], compiled["compile_s"]))
    explainer.unlink(missing_ok=True)
    return rows, compiled


def log(line: str) -> None:
    print(f"[bench] {line}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def render(rows: list[Row], compiled: dict[str, dict[str, Any]], args: argparse.Namespace,
           command: str) -> str:
    """The markdown report: context, the table and the targets."""
    ort_dist = "onnxruntime-gpu" if version("onnxruntime-gpu") != "not installed" else (
        "onnxruntime")
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = ["# aeq_onnx explainer benchmark", ""]
    if args.quick:
        lines += ["> Quick smoke run (`--quick`: ResNet-50, batch 1, 1 repeat): not a "
                  "measurement to quote.", ""]
    lines += [
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Command: `{command}`",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical cores ({usable} usable), "
        f"{memory_gib()} RAM, {platform.system()} {platform.release()}",
        f"- Versions: Python {platform.python_version()}, {ort_dist} {version(ort_dist)}, "
        f"onnx {version('onnx')}, torch {version('torch')}, "
        f"torchvision {version('torchvision')}, aeq_onnx {version('aeq_onnx')}",
        f"- Setup: onnxruntime CPUExecutionProvider, intra_op_num_threads={args.threads}, "
        "inter_op_num_threads=1, ORT_ENABLE_ALL; torchvision models with seeded random weights "
        f"(`weights=None`), {EXPORTER} export (opset 17), {SIZE}x{SIZE} input; explainer "
        "compiled with the defaults (ratio 2, add_rule residual), target = top-1",
        f"- Latency: median of {args.repeats} run(s) after {args.warmup} warm-up run(s), in one "
        "process per (model, batch): a forward block, an explainer block, a second forward "
        "block (the forward figure is the median of both). Peak RSS: `ru_maxrss` of a fresh "
        "process that loads one session and "
        "runs it once "
        "(includes the Python + onnxruntime baseline). Compile: `compile_explainer(path)` "
        "wall time, file load included.",
        "",
        "| model | batch | forward (ms) | explainer (ms) | ratio | forward peak RSS (MiB) "
        "| explainer peak RSS (MiB) | compile (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {TITLES[r.model]} | {r.batch} | {r.forward_ms:.1f} | "
                     f"{r.explainer_ms:.1f} | {r.ratio:.2f}x | {r.forward_rss:.0f} | "
                     f"{r.explainer_rss:.0f} | {r.compile_s:.1f} |")
    lines += ["", f"Targets: explainer ≤ {RATIO_TARGET:g}x the forward; "
                  f"compile ≤ {COMPILE_TARGET_S:g} s.", ""]
    for name, info in compiled.items():
        worst = max(r.ratio for r in rows if r.model == name)
        ok_ratio = "met" if worst <= RATIO_TARGET else "MISSED"
        ok_compile = "met" if info["compile_s"] <= COMPILE_TARGET_S else "MISSED"
        lines.append(f"- {TITLES[name]}: ratio ≤ {RATIO_TARGET:g}x {ok_ratio} (worst "
                     f"{worst:.2f}x); compile ≤ {COMPILE_TARGET_S:g} s {ok_compile} "
                     f"({info['compile_s']:.1f} s, compile peak RSS "
                     f"{info['compile_rss_mib']:.0f} MiB, explainer "
                     f"{info['explainer_mb']:.0f} MB / {info['nodes']} nodes)")
    return "\n".join(lines) + "\n"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: ResNet-50 only, batch 1, 1 repeat")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=2, help="intra_op_num_threads")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="markdown file to write (default benchmarks/RESULTS.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.batches, args.repeats = ["resnet50"], [1], 1
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1:])
    args = parse(argv)
    command = " ".join(["python", "benchmarks/bench_explainer.py", *map(shlex.quote, argv)])
    rows: list[Row] = []
    compiled: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aeq-bench-") as tmp:
        for name in args.models:
            model_rows, compiled[name] = bench_model(name, args.batches, args, Path(tmp))
            rows += model_rows
    report = render(rows, compiled, args, command)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    log(f"wrote {args.output}")
    return 0


def worker_main(argv: list[str]) -> int:
    kind, *rest = argv
    if kind == "compile":
        result = worker_compile(*rest)
    elif kind == "pair":
        model, explainer, batch, threads, warmup, repeats = rest
        result = worker_pair(model, explainer, int(batch), int(threads), int(warmup),
                             int(repeats))
    else:
        model, which, batch, threads = rest
        result = worker_session(model, int(batch), which == "explainer", int(threads))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
