"""Peak live intermediate tensors of an onnxruntime CPU session, in the order it ran the nodes.

onnxruntime's profiler lists the nodes of a run in execution order with each node's output
bytes; the optimized graph that the same session writes (layout nodes such as
``ReorderOutput`` included) says which node reads which tensor. A node's outputs are live
from its run to the run of their last reader (to the end for graph outputs); the peak of the
sum over that timeline is what a perfect allocator would need at once, beside the weights.
Allocator slack and in-place reuse are not modelled: compare graphs, not allocators.

    from benchmarks import liveness
    report = liveness.measure(Path("explainer.onnx"), feeds, work=Path(tmpdir))
    print(report.peak_bytes, report.position, report.nodes, report.top)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

#: onnxruntime execution providers, each a name or (name, options).
Providers = Sequence[str | tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Liveness:
    """The peak: bytes live at once, at which node of how many, and the biggest op types."""

    peak_bytes: int
    position: int
    nodes: int
    top: list[tuple[str, int]]


def profiling_options(work: Path, threads: int) -> ort.SessionOptions:
    """make_session's CPU settings (threads, memory pattern off) with the profiler writing
    under ``work``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_mem_pattern = False
    options.enable_profiling = True
    options.profile_file_prefix = str(work / "profile")
    options.log_severity_level = 3  # an optimized file with NCHWc nodes warns: expected
    return options


def kernel_events(session: ort.InferenceSession) -> list[dict[str, Any]]:
    """The profiler's node events of ``session`` so far, in execution order (ends profiling)."""
    events = json.loads(Path(session.end_profiling()).read_text())
    return sorted((e for e in events if e.get("cat") == "Node"
                   and e["name"].endswith("_kernel_time")), key=lambda e: e["ts"])


def profiled_runs(model: Path, feeds: Mapping[str, np.ndarray], runs: int, threads: int,
                  work: Path, providers: Providers = ("CPUExecutionProvider",),
                  ) -> list[dict[str, Any]]:
    """The kernel events of ``runs`` runs of a fresh profiling session, after one warm-up run
    (whose events are dropped: on CUDA it holds cuDNN's algorithm search)."""
    session = ort.InferenceSession(str(model), profiling_options(work, threads),
                                   providers=list(providers))
    for _ in range(runs + 1):
        session.run(None, dict(feeds))
    events = kernel_events(session)
    return events[len(events) // (runs + 1):]


def run_profiled(model: Path, feeds: Mapping[str, np.ndarray], work: Path, threads: int = 2,
                 ) -> tuple[list[tuple[str, int]], onnx.GraphProto]:
    """``(node name, output bytes)`` in execution order for one run, and the optimized graph."""
    options = profiling_options(work, threads)
    options.optimized_model_filepath = str(work / "optimized.onnx")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, dict(feeds))
    order = [(e["name"].removesuffix("_kernel_time"), int(e["args"].get("output_size", 0)))
             for e in kernel_events(session)]
    graph = onnx.load(str(work / "optimized.onnx"), load_external_data=False).graph
    return order, graph


def peak(order: list[tuple[str, int]], graph: onnx.GraphProto) -> Liveness:
    """The liveness peak of ``order`` (from :func:`run_profiled`) over ``graph``'s edges."""
    step = {name: i for i, (name, _) in enumerate(order)}
    nodes = {n.name: n for n in graph.node if n.name in step}
    producer = {out: n.name for n in nodes.values() for out in n.output}
    outputs = {o.name for o in graph.output}
    last = {name: step[name] for name in nodes}
    for n in nodes.values():
        for name in n.input:
            if name in producer:
                last[producer[name]] = max(last[producer[name]], step[n.name])
    for out in outputs & producer.keys():
        last[producer[out]] = len(order)
    timeline = np.zeros(len(order) + 1, np.int64)
    for name, size in order:
        if name in nodes:
            timeline[step[name]:last[name] + 1] += size
    at = int(timeline.argmax())
    top: Counter[str] = Counter()
    for name, size in order:
        if name in nodes and step[name] <= at <= last[name]:
            top[nodes[name].op_type] += size
    return Liveness(int(timeline[at]), at, len(order), top.most_common(5))


def measure(model: Path, feeds: Mapping[str, np.ndarray], work: Path, threads: int = 2,
            ) -> Liveness:
    """Run ``model`` once on ``feeds`` with profiling and return its liveness peak."""
    return peak(*run_profiled(model, feeds, work, threads))
