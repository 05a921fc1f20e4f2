"""One fresh process of ``bench_first_result.py``: times an ``aeq`` command by phase, or an
onnxruntime forward, from the moment the driver started the process.

Run by path (not as a package module), so that ``aeq_onnx`` is whichever copy ``PYTHONPATH``
names (the benchmark compares this checkout with another one)::

    python benchmarks/first_result_probe.py OUT.json T0 aeq [AEQ ARGS...]
    python benchmarks/first_result_probe.py OUT.json T0 forward MODEL.onnx cpu|cuda

``T0`` is the driver's ``time.time()`` just before it started this process. ``aeq`` mode
imports what ``aeq explain`` uses, wraps the functions of each phase with exclusive timers
(a phase nested in another, e.g. the load inside the compile, counts only once) and calls the
CLI's ``main`` (what the ``aeq`` console script calls). Phases: ``import`` (start to the CLI
imported), ``load_check`` (``loading.load_model``, of which ``isolated`` in the child process),
``compile``, ``session`` (``runtime.make_session``), ``run`` (``Explainer.explain``),
``render`` (panel, PNG, gallery), ``other`` (the rest: argument parsing, the photo, ...);
``first_png`` is the time from T0 to the first heatmap PNG written, ``main_done`` to ``main``
returning. Writes a JSON object to OUT.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

PHASES = ("import", "load_check", "compile", "session", "run", "render", "other")


class Clock:
    """Exclusive phase timers: time in a nested phase is taken out of the enclosing one."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.totals: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.totals["isolated"] = 0.0
        self.stack: list[list[Any]] = []  # [phase, start, time spent in nested phases]
        self.marks: dict[str, float] = {}

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.stack.append([phase, time.perf_counter(), 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, start, nested = self.stack.pop()
                spent = time.perf_counter() - start
                self.totals[name] = self.totals.get(name, 0.0) + spent - nested
                if self.stack:
                    self.stack[-1][2] += spent
        return timed

    def mark(self, name: str) -> None:
        """Seconds since T0, kept for the first call only."""
        self.marks.setdefault(name, time.time() - self.t0)


def _modules() -> tuple[Any, ...]:
    """The CLI and the modules of each phase, in the issue-19 layout or the one before it (the
    benchmark compares checkouts); the last is the module that calls ``load_model`` to
    compile."""
    try:
        from aeq_onnx import cli
        from aeq_onnx.compile import compiler, prepare
        from aeq_onnx.load import loading, safety
        from aeq_onnx.render import imaging
        from aeq_onnx.run import runtime
    except ImportError:  # before issue 19
        from aeq_onnx import cli, compiler, imaging, loading, runtime, safety  # type: ignore
        prepare = compiler
    return cli, compiler, imaging, loading, runtime, safety, prepare


def instrument(clock: Clock) -> Callable[[list[str]], int]:
    """Import the CLI and what it uses, wrap each phase's functions; returns ``main``."""
    cli, compiler, imaging, loading, runtime, safety, prepare = _modules()

    loading.load_model = clock.wrap("load_check", loading.load_model)
    prepare.load_model = loading.load_model
    compiler.compile_explainer = clock.wrap("compile", compiler.compile_explainer)
    safety.check_isolated = clock.wrap("isolated", safety.check_isolated)
    runtime.make_session = clock.wrap("session", runtime.make_session)
    runtime.Explainer.explain = clock.wrap(  # type: ignore[method-assign]
        "run", runtime.Explainer.explain)
    imaging.panel = clock.wrap("render", imaging.panel)
    imaging.write_gallery = clock.wrap("render", imaging.write_gallery)
    save_png = clock.wrap("render", imaging.save_png)

    def save_and_mark(*args: Any, **kwargs: Any) -> None:
        save_png(*args, **kwargs)
        clock.mark("first_png")

    imaging.save_png = save_and_mark
    return cli.main


def run_aeq(clock: Clock, argv: list[str]) -> dict[str, Any]:
    main = instrument(clock)
    imported = time.time() - clock.t0
    start = time.perf_counter()
    code = main(argv)
    wall = time.perf_counter() - start
    clock.mark("main_done")
    totals = clock.totals
    isolated = totals.pop("isolated")
    totals["load_check"] += isolated  # the child's time is part of loading and checking
    totals["import"] = imported
    totals["other"] = wall - sum(v for k, v in totals.items() if k not in ("import", "other"))
    return {"code": code, "phases": totals, "isolated": isolated, **clock.marks}


def run_forward(clock: Clock, model: str, device: str) -> dict[str, Any]:
    """import onnxruntime + numpy, one session, one run on a random batch of one."""
    import numpy as np
    import onnxruntime as ort

    imported = time.time() - clock.t0
    providers: list[Any] = ["CPUExecutionProvider"]
    if device == "cuda":
        providers.insert(0, ("CUDAExecutionProvider", {"use_tf32": "0"}))
    t = time.perf_counter()
    session = ort.InferenceSession(model, providers=providers)
    created = time.perf_counter() - t
    spec = session.get_inputs()[0]
    shape = [1 if not isinstance(d, int) else d for d in spec.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    t = time.perf_counter()
    session.run(None, {spec.name: x})
    ran = time.perf_counter() - t
    phases = dict.fromkeys(PHASES, 0.0)
    phases.update({"import": imported, "session": created, "run": ran})
    return {"code": 0, "phases": phases, "isolated": 0.0, "provider": session.get_providers()[0],
            "first_png": time.time() - clock.t0, "main_done": time.time() - clock.t0}


def main() -> int:
    out, t0, mode, *rest = sys.argv[1:]
    clock = Clock(float(t0))
    result = run_aeq(clock, rest) if mode == "aeq" else run_forward(clock, rest[0], rest[1])
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return int(result["code"])


if __name__ == "__main__":
    sys.exit(main())
