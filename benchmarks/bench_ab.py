"""A/B of explainer emission: this checkout against a git revision, in one run.

For each model, compiles the AE explainer twice — with this checkout's ``aeq_onnx`` and with
the ``aeq_onnx`` of ``--ref`` (extracted by ``git archive`` into a temporary folder and
imported from there in a subprocess) — then times the onnxruntime forward, the reference
explainer and the current explainer in interleaved rounds (one run of each per round, so
machine load hits all three alike) and reports medians, the current/reference time ratio and
how far the two explainers' relevance maps differ (max |ΔR| / max |R|: the change must not
move the answer), with the current explainer's multiply-accumulates over the forward's
(``benchmarks/flops.py``), the floor that the time ratio can approach. Prints a Markdown
table and writes ``benchmarks/results/AB.md``::

    .venv/bin/python benchmarks/bench_ab.py --ref 976dc30 [--models vgg16,resnet50]
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import flops, models  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "AB.md"
_COMPILE = ("import sys; sys.path.insert(0, sys.argv[1]); import aeq_onnx, onnx; "
            "onnx.save(aeq_onnx.compile_explainer(sys.argv[2]), sys.argv[3])")


def compile_with(package_root: Path, model: Path, out: Path) -> Path:
    """Compile ``model`` with the aeq_onnx found under ``package_root`` (fresh process)."""
    subprocess.run([sys.executable, "-c", _COMPILE, str(package_root), str(model), str(out)],
                   check=True, cwd=package_root)
    return out


def extract(rev: str, into: Path) -> Path:
    """``aeq_onnx/`` of git revision ``rev`` under ``into``."""
    archive = subprocess.run(["git", "archive", rev, "aeq_onnx"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feeds(sess: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    out = {sess.get_inputs()[0].name: x}
    if len(sess.get_inputs()) > 1:
        out["target"] = np.full(x.shape[0], -1, np.int64)
    return out


def interleaved(runs: dict[str, tuple[ort.InferenceSession, dict]], rounds: int
                ) -> dict[str, float]:
    """Median ms per variant over ``rounds`` rounds of one run each (after one warm-up)."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for sess, feed in runs.values():
        sess.run(None, feed)
    for _ in range(rounds):
        for name, (sess, feed) in runs.items():
            start = time.perf_counter()
            sess.run(None, feed)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


def relevance_gap(ref: ort.InferenceSession, cur: ort.InferenceSession, x: np.ndarray) -> float:
    """max |R_cur - R_ref| / max |R_ref| on ``x``."""
    names = [o.name for o in ref.get_outputs()]
    r_ref = ref.run(None, feeds(ref, x))[names.index("relevance")]
    r_cur = cur.run(None, feeds(cur, x))[names.index("relevance")]
    return float(np.abs(r_cur - r_ref).max() / max(float(np.abs(r_ref).max()), 1e-30))


def bench_model(name: str, ref_root: Path, work: Path, args: argparse.Namespace) -> str:
    size = 64 if name == models.TINY else 224
    source = models.export(name, size, work)
    ref = compile_with(ref_root, source, work / f"{name}-ref.onnx")
    cur = compile_with(ROOT, source, work / f"{name}-cur.onnx")
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    sessions = {k: session(p, args.threads) for k, p in
                (("forward", source), ("reference", ref), ("current", cur))}
    ms = interleaved({k: (s, feeds(s, x)) for k, s in sessions.items()}, args.rounds)
    gap = relevance_gap(sessions["reference"], sessions["current"], x)
    mac_ratio = flops.macs(onnx.load(str(cur))) / flops.macs(onnx.load(str(source)))
    return (f"| {name} | {ms['forward']:.1f} | {ms['reference']:.1f} | {ms['current']:.1f} "
            f"| {ms['reference'] / ms['forward']:.2f}x | {ms['current'] / ms['forward']:.2f}x "
            f"| {mac_ratio:.2f}x | {ms['current'] / ms['reference']:.3f} | {gap:.1e} |")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ref", required=True, help="git revision to compare against")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["vgg16", "resnet50"])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT, help="results file")
    args = parser.parse_args(argv)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    lines = ["| model | forward ms | reference explainer ms | current explainer ms "
             "| reference / forward | current / forward | MACs current / forward "
             "| current / reference | relevance max abs diff / max |R| |",
             "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        ref_root = extract(args.ref, Path(tmp) / "ref")
        for name in args.models:
            lines.append(bench_model(name, ref_root, Path(tmp), args))
            print(lines[-1], file=sys.stderr, flush=True)
    command = " ".join(["benchmarks/bench_ab.py", *(argv if argv is not None else sys.argv[1:])])
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    text = (f"# Explainer A/B: checkout {head} (with local changes, if any) vs {args.ref}\n\n"
            f"`.venv/bin/python {command}` on {when} UTC, CPU, {args.threads} threads, "
            f"batch 1, medians of {args.rounds} "
            "interleaved rounds (forward, reference, current). MACs: "
            "Conv/ConvTranspose/Gemm/MatMul multiply-accumulates of the graphs "
            "(benchmarks/flops.py), the FLOP floor of the time ratio.\n\n"
            + "\n".join(lines) + "\n")
    print(text)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
