"""Compile time per architecture (issue: <= 10 s each on this machine).

For every torchvision architecture of ``fixtures/torchvision_models.py`` (TorchScript exporter,
opset 17, the tests' input sizes; VGG-16 and ResNet-50 at 224), EfficientNet-Lite0 with its
real weights, and the Keras models of ``fixtures/keras_models.py`` (when tensorflow is
installed): ``aeq_onnx.compile_explainer(path)`` timed ``--repeats`` times (median), the
explainer's node count and file size, and the compile's peak memory: a fresh process imports
aeq_onnx, notes its RSS, compiles once and reports its peak RSS (``VmHWM``); the peak above
that baseline should stay within the source model plus the explainer (the issue's "never more
than one extra copy of the weights": the input model and the output model, nothing more).
Prints a Markdown table and writes ``benchmarks/results/COMPILE.md``::

    .venv/bin/python benchmarks/bench_compile.py [--repeats 3] [--only vgg16,resnet50]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aeq_onnx  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "COMPILE.md"
LIMIT_S = 10.0


def sources() -> list[tuple[str, Callable[[], Path]]]:
    """(row name, exporter of the cached .onnx) for every model in the table."""
    from fixtures import efficientnet_lite0
    from fixtures import torchvision_models as tvm

    rows: list[tuple[str, Callable[[], Path]]] = []
    for name in ("alexnet", "vgg16", "resnet50", "inception_v3", "densenet121", "mobilenet_v2",
                 "efficientnet_b0"):
        size = 224 if name in ("vgg16", "resnet50") else tvm.MODELS[name].size
        rows.append((f"{name} ({size}²)", lambda n=name, s=size: tvm.export(n, "torchscript",
                                                                              17, s)))
    rows.append(("efficientnet-lite0 (224², real weights)", efficientnet_lite0.export))
    try:
        from fixtures import keras_models

        keras_models.load_triton_first()
        import tensorflow  # noqa: F401
    except ImportError:
        return rows
    for name in keras_models.MODELS:
        rows.append((f"keras {name} (tf2onnx)", lambda n=name: keras_models.export(n, 13)))
    return rows


def measure(path: Path, repeats: int) -> tuple[float, int, float]:
    """Median compile seconds, explainer nodes, explainer size in MB."""
    times = []
    model = None
    for _ in range(repeats):
        start = time.perf_counter()
        model = aeq_onnx.compile_explainer(path)
        times.append(time.perf_counter() - start)
    assert model is not None
    return statistics.median(times), len(model.graph.node), model.ByteSize() / 1e6


_PEAK_PROBE = """
import sys
import aeq_onnx
def status_mb(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) / 1024 * 1.048576
base = status_mb('VmRSS')
aeq_onnx.compile_explainer(sys.argv[1])
print(base, status_mb('VmHWM'))
"""
# VmHWM (this address space's peak RSS) starts afresh at exec; ru_maxrss would not: Linux
# carries it over from the parent, which has compiled every model before.


def peak_above_baseline(path: Path) -> float:
    """MB of peak RSS above the RSS after ``import aeq_onnx``, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _PEAK_PROBE, str(path)], check=True,
                         capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[-1]) - float(out[-2])


Row = tuple[str, float, int, float, float, float]


def table(rows: Sequence[Row]) -> str:
    """The Markdown table."""
    lines = ["| model | compile s (median) | ≤ 10 s | explainer nodes | source MB "
             "| explainer MB | compile peak MB above baseline | ≤ source + explainer |",
             "|---|---|---|---|---|---|---|---|"]
    for name, seconds, nodes, source, size, peak in rows:
        lines.append(f"| {name} | {seconds:.2f} | {'MET' if seconds <= LIMIT_S else 'MISSED'} "
                     f"| {nodes} | {source:.1f} | {size:.1f} | {peak:.0f} "
                     f"({peak / max(source, 1e-9):.1f}× source) "
                     f"| {'MET' if peak <= source + size else 'MISSED'} |")
    return "\n".join(lines)


def cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=None, help="comma list of row-name prefixes")
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else None
    results = []
    for name, export in sources():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        path = export()
        seconds, nodes, size = measure(path, args.repeats)
        peak = peak_above_baseline(path)
        print(f"{name}: {seconds:.2f} s, peak +{peak:.0f} MB", file=sys.stderr, flush=True)
        results.append((name, seconds, nodes, path.stat().st_size / 1e6, size, peak))
    text = table(results)
    print(text)
    OUT.write_text(
        "# Compile time per architecture\n\n"
        f"`{' '.join(['.venv/bin/python benchmarks/bench_compile.py', *(argv or sys.argv[1:])])}`"
        f" on {datetime.date.today()}, {cpu()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, aeq_onnx {aeq_onnx.__version__}. Export time is not "
        "included (models come from `fixtures/.cache/`).\n\n" + text + "\n", encoding="utf-8")
    return 0 if all(r[1] <= LIMIT_S for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
