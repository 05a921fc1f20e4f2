"""Compile time per architecture (issue: <= 10 s each on this machine).

For every torchvision architecture of ``fixtures/torchvision_models.py`` (TorchScript exporter,
opset 17, the tests' input sizes; VGG-16 and ResNet-50 at 224), EfficientNet-Lite0 with its
real weights, and the Keras models of ``fixtures/keras_models.py`` (when tensorflow is
installed): ``aeq_onnx.compile_explainer(path)`` timed ``--repeats`` times (median), the
explainer's node count and file size. Prints a Markdown table and writes
``benchmarks/COMPILE.md``::

    .venv/bin/python benchmarks/bench_compile.py [--repeats 3] [--only vgg16,resnet50]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aeq_onnx  # noqa: E402

OUT = ROOT / "benchmarks" / "COMPILE.md"
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


def table(rows: Sequence[tuple[str, float, int, float]]) -> str:
    """The Markdown table."""
    lines = ["| model | compile s (median) | ≤ 10 s | explainer nodes | explainer MB |",
             "|---|---|---|---|---|"]
    for name, seconds, nodes, size in rows:
        lines.append(f"| {name} | {seconds:.2f} | {'MET' if seconds <= LIMIT_S else 'MISSED'} "
                     f"| {nodes} | {size:.1f} |")
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
        seconds, nodes, size = measure(export(), args.repeats)
        print(f"{name}: {seconds:.2f} s", file=sys.stderr, flush=True)
        results.append((name, seconds, nodes, size))
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
