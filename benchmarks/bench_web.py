"""Benchmark the EfficientNet-Lite0 explainer per image outside Python: Chromium (onnxruntime-web,
WebAssembly single- and multi-threaded), Node (onnxruntime-node) and Python onnxruntime, same
explainer, same photo, same machine.

The explainer is ``make demo``'s (real ImageNet weights, ``imagenet`` preset stored); the photo
``fixtures/images/chelsea.jpg``, explained for its top-1 class. Each runtime preprocesses the
photo itself (the page and Node with aeq-core.js, Python with aeq_onnx.render.presets) and times
only the explainer run: ``session.run`` in the page and Node, ``Explainer.explain`` in Python; one
warm-up run, then ``--runs`` timed runs, in ``--rounds`` interleaved rounds (every runtime once
per round); medians over all timed runs. Beside the times: each runtime's relevance against
Python's (max and 99.9th percentile of |ΔR| / max |R|), its top-5 and its input tensor.
Prints a Markdown report and writes it to ``benchmarks/results/WEB.md`` (``--output``).

    python benchmarks/bench_web.py                 # ~3 min on 2 cores
    python benchmarks/bench_web.py --runs 3 --rounds 1 --output /tmp/web.md
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402

PHOTO = ROOT / "fixtures" / "images" / "chelsea.jpg"
NODE_EXAMPLE = ROOT / "examples" / "node"
PROBE = """
await aeq.ready;
const blob = await (await fetch('photo.jpg')).blob();
const [card] = await aeq.explainFiles([new File([blob], 'photo.jpg', { type: blob.type })]);
if (card.error) return { error: card.error };
const times = [];
for (let i = 0; i < RUNS; i++) times.push((await aeq.run(card.tensor, -1)).ms);
return { backend: aeq.backend, times, relevance: b64(card.relevance), tensor: b64(card.tensor),
  top5: card.top5.map((c) => c.index), agent: navigator.userAgent };
"""


@dataclass
class Runtime:
    """One runtime's timed runs and what it computed."""

    name: str
    threads: str
    times: list[float] = field(default_factory=list)
    relevance: np.ndarray | None = None
    tensor: np.ndarray | None = None
    top5: list[int] | None = None


def explainer_path(workdir: Path) -> Path:
    """make demo's explainer when it exists, else compiled here the same way."""
    demo = ROOT / "out" / "demo" / "efficientnet-lite0.explainer.onnx"
    if demo.is_file():
        return demo
    import aeq_onnx
    from fixtures.efficientnet_lite0 import export

    model = aeq_onnx.store_preset(aeq_onnx.compile_explainer(export()), "imagenet")
    path = workdir / "efficientnet-lite0.explainer.onnx"
    aeq_onnx.Explainer(model, device="cpu").save(path)
    return path


def python_runs(path: Path, threads: int | None, runs: int, rt: Runtime) -> None:
    """Explainer.explain on the CPU: one warm-up, then ``runs`` timed runs."""
    import aeq_onnx
    from aeq_onnx.render.imaging import load_image
    from aeq_onnx.render.presets import get_preset, input_spec, preprocess

    ex = aeq_onnx.Explainer(path, device="cpu", threads=threads)
    preset = get_preset(ex.metadata["preset"])
    x, _ = preprocess(load_image(PHOTO), preset, input_spec(list(ex._input.shape), preset))
    result = ex.explain(x[None], target=-1)
    for _ in range(runs):
        t0 = time.perf_counter()
        ex.explain(x[None], target=-1)
        rt.times.append((time.perf_counter() - t0) * 1000)
    if rt.relevance is None:
        rt.relevance, rt.tensor = result.relevance[0], x
        rt.top5 = np.argsort(-result.logits[0], kind="stable")[:5].tolist()


def node_runs(path: Path, threads: int | None, runs: int, rt: Runtime, workdir: Path) -> None:
    """examples/node/explain.js --repeat: its first run is the warm-up."""
    out = workdir / "node"
    command = ["node", str(NODE_EXAMPLE / "explain.js"), str(path), str(PHOTO), "-o", str(out),
               "--json", "--save-input", "--repeat", str(runs + 1)]
    command += ["--threads", str(threads)] if threads else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=True)
    [result] = json.loads(done.stdout.strip().splitlines()[-1])["results"]
    rt.times += result["times"][1:]
    if rt.relevance is None:
        rt.relevance = np.load(result["files"]["npy"])
        rt.tensor = np.load(result["files"]["npy"].replace(".npy", ".input.npy"))
        rt.top5 = [c["index"] for c in result["top5"]]


def chromium_runs(site: Path, isolate: bool, runs: int, rt: Runtime) -> str:
    """The page's own explain (its warm-up) and ``runs`` timed ``aeq.run`` calls."""
    from tests.web.page_driver import floats, run_probe

    got = run_probe(site, PROBE.replace("RUNS", str(runs)), isolate=isolate, timeout=1800)
    if "error" in got:
        raise RuntimeError(f"the page failed: {got['error']}")
    rt.times += got["times"]
    rt.threads = str(got["backend"]["threads"])
    if rt.relevance is None:
        rt.relevance, rt.tensor, rt.top5 = floats(got["relevance"]), floats(got["tensor"]), \
            got["top5"]
    return str(got["agent"])


def versions(agent: str) -> str:
    def npm(folder: Path, package: str) -> str:
        manifest = folder / "node_modules" / package / "package.json"
        return json.loads(manifest.read_text())["version"] if manifest.is_file() else "missing"

    from tests.web.page_driver import CHROMIUM

    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    chrome = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True)
    return (f"{report.versions()}; node {node}, onnxruntime-node "
            f"{npm(NODE_EXAMPLE, 'onnxruntime-node')}, onnxruntime-web "
            f"{npm(ROOT / 'web', 'onnxruntime-web')}, {chrome.stdout.strip() or agent}")


def rows(runtimes: list[Runtime]) -> list[list[str]]:
    ref = runtimes[0]
    assert ref.relevance is not None and ref.tensor is not None
    scale = float(np.abs(ref.relevance).max())
    base = {rt.threads: statistics.median(rt.times) for rt in runtimes if rt.name.startswith("Py")}
    out = []
    for rt in runtimes:
        median = statistics.median(rt.times)
        assert rt.relevance is not None and rt.tensor is not None
        diff = np.abs(rt.relevance.reshape(ref.relevance.shape) - ref.relevance) / scale
        py = base.get(rt.threads)
        out.append([rt.name, rt.threads, f"{median:.1f}",
                    f"{min(rt.times):.0f}–{max(rt.times):.0f}", str(len(rt.times)),
                    f"{median / py:.2f}x" if py else "–",
                    f"{diff.max():.2g} / {np.quantile(diff, 0.999):.2g}",
                    "yes" if rt.top5 == ref.top5 else f"no {rt.top5}",
                    "yes" if np.array_equal(rt.tensor.ravel(), ref.tensor.ravel()) else "no"])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per round (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "WEB.md")
    args = parser.parse_args(argv)
    from tests.web.page_driver import CHROMIUM

    if CHROMIUM is None or shutil.which("node") is None:
        print("needs chromium and node (make browser npm)", file=sys.stderr)
        return 1
    from aeq_onnx.web import write_site

    start_load, wall = os.getloadavg()[0], time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="aeq-bench-web-"))
    try:
        path = explainer_path(workdir)
        site = write_site(path, workdir / "site", webgpu=False).root
        shutil.copyfile(PHOTO, site / "photo.jpg")
        cores = os.cpu_count() or 1
        runtimes = [Runtime("Python onnxruntime", "1"), Runtime("Python onnxruntime", str(cores)),
                    Runtime("Node onnxruntime-node", "1"),
                    Runtime("Node onnxruntime-node", str(cores)),
                    Runtime("Chromium onnxruntime-web WASM", "1"),
                    Runtime("Chromium onnxruntime-web WASM, COOP/COEP", str(cores))]
        agent = ""
        steps: list[Callable[[], object]] = [
            lambda: python_runs(path, 1, args.runs, runtimes[0]),
            lambda: python_runs(path, None, args.runs, runtimes[1]),
            lambda: node_runs(path, 1, args.runs, runtimes[2], workdir),
            lambda: node_runs(path, None, args.runs, runtimes[3], workdir),
            lambda: chromium_runs(site, False, args.runs, runtimes[4]),
            lambda: chromium_runs(site, True, args.runs, runtimes[5])]
        for round_ in range(args.rounds):
            for step in steps:
                value = step()
                agent = value if isinstance(value, str) else agent
            print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    columns = ("runtime", "threads", "median (ms)", "min–max (ms)", "runs",
               "× Python (same threads)",
               "ΔR vs Python: max / 99.9th pct (of max abs R)", "top-5 = Python",
               "input tensor = Python")
    lines = report.header("aeq_onnx explainer outside Python: browser, Node, Python",
                          "bench_web.py", argv)
    lines[-1] = f"- Versions: {versions(agent)}"
    end_load, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = ("; the machine was busy with other work, so absolute times are inflated and the "
            "multi-thread rows compete with it for the cores: compare runtimes at the same "
            "thread count (the × Python column), measured in the same interleaved rounds"
            ) if max(start_load, end_load) > cores / 2 else ""
    lines += [
        f"- Load: 1-min load average {start_load:.2f} at start, {end_load:.2f} at the end on "
        f"{cores} cores; wall time {(time.monotonic() - wall) / 60:.1f} min{busy}",
        f"- Setup: EfficientNet-Lite0 explainer (real ImageNet weights, AE, `imagenet` preset), "
        f"{PHOTO.relative_to(ROOT)}, batch 1, top-1 class; 1 warm-up + {args.runs} timed runs "
        f"per round, {args.rounds} interleaved round(s); the explainer run only (session.run / "
        "Explainer.explain), not preprocessing or drawing. Chromium: headless, `--disable-gpu`, "
        "WebAssembly single-threaded without COOP/COEP headers, multi-threaded (one thread per "
        "core) with them. Python: aeq_onnx.Explainer (ORT_ENABLE_ALL, CPU).",
        "", *report.table(columns, rows(runtimes)), ""]
    text = "\n".join(lines)
    print(text)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
