"""The convolution floor: the least time any emission of the AE rule could take here.

Every correct emission keeps the rule's convolution products (per Conv below the split:
``conv(x⁺,|W|)``, ``conv(a,|W|)``, ``conv(ā,|W|)`` and three transposed products, spec 4.1-4.3;
the only shortcut, ``conv(ā,|W|) = conv(1,|W|) − conv(a,|W|)``, cancels, see
``aeq_onnx/rules/shared/equilibrium.py``). So the explainer's own convolution and matrix
kernels, timed by onnxruntime's profiler, bound its time from below: what is left when every
elementwise op, reduction, pool and layout reorder costs nothing.

For each model, thread count and batch, ``--rounds`` rounds each profile the forward session
and then the explainer session (``--runs`` runs after one warm-up; fresh sessions each round)
and sum kernel times per image: ``forward`` (all of the model's kernels), ``products`` (the
explainer's Conv / ConvTranspose / Gemm / MatMul kernels, NCHWc and fused forms included) and
``rest`` (the explainer's other kernels). ``products / forward`` is the floor of the
explainer/forward ratio with onnxruntime's kernels on this machine; the MAC ratio
(``benchmarks/flops.py``) is beside it. The profiler adds a few µs per node, so ``rest`` is an
upper estimate; the convolutions are long enough to be timed fairly. Prints and writes
``benchmarks/results/FLOOR.md``::

    python benchmarks/floor.py [--models resnet50,vgg16] [--threads 1,2] [--batches 1,8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aeq_onnx.compile.compiler import compile_explainer  # noqa: E402
from benchmarks import flops, liveness, models, report, workers  # noqa: E402

OUTPUT = ROOT / "benchmarks" / "results" / "FLOOR.md"
#: Kernels that do the rule's multiply-accumulates (op_name in onnxruntime's profile).
PRODUCTS = frozenset({"Conv", "ConvTranspose", "FusedConv", "Gemm", "FusedGemm", "MatMul",
                      "FusedMatMul"})
COLUMNS = ("model", "threads", "batch", "forward (ms/img)", "explainer (ms/img)",
           "products (ms/img)", "explainer / forward", "floor: products / forward",
           "floor range", "rest / forward", "MAC ratio")


@dataclass(frozen=True)
class Split:
    """Kernel milliseconds per image of one profiled session: products and everything else."""

    products: float
    rest: float

    @property
    def total(self) -> float:
        return self.products + self.rest


def split(events: Sequence[dict[str, Any]], runs: int, batch: int) -> Split:
    """Sum kernel durations (µs) of ``runs`` runs into products and rest, ms per image."""
    products = sum(int(e["dur"]) for e in events
                   if e.get("args", {}).get("op_name") in PRODUCTS)
    rest = sum(int(e["dur"]) for e in events) - products
    scale = 1e3 * runs * batch
    return Split(products / scale, rest / scale)


def profiled(path: Path, explainer: bool, batch: int, size: int, threads: int, runs: int,
             work: Path) -> Split:
    """Kernel times of ``runs`` runs of a fresh session after one warm-up."""
    inputs = workers.feeds(batch, size, explainer)
    return split(liveness.profiled_runs(path, inputs, runs, threads, work), runs, batch)


def row(name: str, threads: int, batch: int, pairs: list[tuple[Split, Split]],
        mac_ratio: float) -> list[str]:
    """One table row from the rounds' (forward, explainer) splits: medians, floor range."""
    floors = [e.products / f.total for f, e in pairs]
    med = statistics.median
    forward, explainer = med(f.total for f, _ in pairs), med(e.total for _, e in pairs)
    return [report.TITLES.get(name, name), str(threads), str(batch), f"{forward:.1f}",
            f"{explainer:.1f}", f"{med(e.products for _, e in pairs):.1f}",
            f"{med(e.total / f.total for f, e in pairs):.2f}x", f"{med(floors):.2f}x",
            f"{min(floors):.2f}-{max(floors):.2f}",
            f"{med(e.rest / f.total for f, e in pairs):.2f}x", f"{mac_ratio:.2f}x"]


def measure(name: str, args: argparse.Namespace, work: Path) -> list[list[str]]:
    """Rows of one model: every (threads, batch) pair, rounds interleaving the two sessions."""
    source = models.export(name, args.size, work)
    explainer = work / f"{name}-explainer.onnx"
    compiled = compile_explainer(source)
    onnx.save(compiled, explainer)
    mac_ratio = flops.macs(compiled) / flops.macs(onnx.load(source))
    rows = []
    for threads in args.threads:
        for batch in args.batches:
            pairs = [(profiled(source, False, batch, args.size, threads, args.runs, work),
                      profiled(explainer, True, batch, args.size, threads, args.runs, work))
                     for _ in range(args.rounds)]
            rows.append(row(name, threads, batch, pairs, mac_ratio))
            print(f"[floor] {' | '.join(rows[-1])}", file=sys.stderr, flush=True)
    return rows


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", type=lambda s: s.split(","), default=["resnet50", "vgg16"])
    parser.add_argument("--threads", type=ints, default=[1, 2])
    parser.add_argument("--batches", type=ints, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="aeq-floor-") as tmp:
        rows = [r for name in args.models for r in measure(name, args, Path(tmp))]
    text = "\n".join([
        *report.header("The convolution floor of the AE explainer (onnxruntime CPU profiler)",
                       "floor.py", argv),
        f"- Kernel times per image, medians of {args.rounds} rounds (forward session, then "
        f"explainer session, fresh each round), each {args.runs} profiled runs after one "
        "warm-up; input side "
        f"{args.size}. products = the explainer's Conv/ConvTranspose/Gemm/MatMul kernels; "
        "floor = products / forward, the least explainer/forward ratio any emission with "
        "these products reaches with onnxruntime's kernels here (floor range: its lowest and "
        "highest round); rest = the other kernels, with the profiler's per-node overhead.",
        "", *report.table(COLUMNS, rows), ""])
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
