"""Architecture coverage table: which torchvision classifiers aeq_onnx explains, per exporter and
opset, checked against the independent torch reference (``tests/reference/ae_torch.py``).

For every (architecture, exporter, opset): export (cached by ``fixtures/torchvision_models.py``),
``compile_explainer``, explain a seeded batch of 2 on CPU, compare the logits with the torch
module's and the relevance with ``reference_explain`` on the same ONNX file. Prints a markdown
table and writes it to ``docs/coverage.md``::

    python scripts/coverage_table.py                    # full matrix (slow: every opset)
    python scripts/coverage_table.py --quick            # default opset of each exporter only
    python scripts/coverage_table.py --arch mobilenet_v2 --exporter torchscript --no-write

Importable: ``run_case(...)`` returns one ``CaseResult``; ``markdown(results)`` renders them.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests"):  # `fixtures` and `tests` are folders, not installed
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from fixtures import torchvision_models as tvm  # noqa: E402

DOC = ROOT / "docs" / "coverage.md"
BATCH = 2
SEED = 0
LOGIT_TOL = 1e-4  # rtol, and atol x max |logit|, against the torch module's logits
RELEVANCE_TOL = 1e-4  # max |R - R_ref| / max |R_ref|, per sample
# Where float32 cannot reach RELEVANCE_TOL on this batch: the reference itself, run in float32,
# differs from its float64 run by 3.3e-3 of max |R| on Inception-v3 (aeq_onnx: 2.2e-3) and by
# 1.9e-3 on VGG-16's first image (aeq_onnx: 1.9e-3; second image 5e-7).
RELEVANCE_TOL_BY_ARCH = {"inception_v3": 5e-3, "vgg16": 5e-3}
# Architectures in table order: the paper's (AlexNet, Inception-v3, DenseNet-121; VGG-16 and
# ResNet-50, the slowest, last), then two of today's mobile CNNs in between.
ARCHS = ("alexnet", "inception_v3", "densenet121", "mobilenet_v2", "efficientnet_b0",
         "vgg16", "resnet50")


@dataclass
class CaseResult:
    """What happened to one (arch, exporter, opset)."""

    arch: str
    exporter: str
    opset: int
    size: int
    status: str = "fail"  # pass | fail | unsupported | export error | reference error
    error: str = ""  # first line of the error (empty on pass)
    unsupported_ops: list[str] = field(default_factory=list)  # sorted op types, if any
    logits_err: float | None = None  # max |logits - torch| / max |torch logits|
    relevance_err: float | None = None  # max over samples of max|ΔR| / max|R_ref|
    times: dict[str, float] = field(default_factory=dict)  # export/compile/explain/reference s

    @property
    def ok(self) -> bool:
        return self.status == "pass"


def batch_for(size: int, batch: int = BATCH, seed: int = SEED) -> np.ndarray:
    """The seeded input batch ``[batch, 3, size, size]`` (float32 standard normal)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 3, size, size)).astype(np.float32)


def torch_logits(arch: str, batch: np.ndarray) -> np.ndarray:
    """Logits of the seeded torch module (built fresh, freed afterwards)."""
    import torch

    model = tvm.build(arch)
    with torch.no_grad():
        out = model(torch.from_numpy(batch)).numpy()
    del model
    return out


def relevance_error(relevance: np.ndarray, reference: np.ndarray) -> float:
    """Worst per-sample max |R - R_ref| relative to that sample's max |R_ref|."""
    errs = []
    for r, ref in zip(relevance, reference, strict=True):
        scale = float(np.abs(ref).max())
        errs.append(float(np.abs(r - ref).max()) / (scale if scale > 0 else 1.0))
    return max(errs)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def unsupported_summary(exc: BaseException) -> str:
    """``UnsupportedOpError``'s node list condensed to op types with counts and the reason the
    first node of each op type gave (e.g. ``Mul x65 (Mul of 2 non-constant operands)``)."""
    counts: dict[str, int] = {}
    why: dict[str, str] = {}
    for op, name, _ in getattr(exc, "nodes", []):
        counts[op] = counts.get(op, 0) + 1
        if ": " in name:  # the compiler appends the reason to the node name
            why.setdefault(op, name.split(": ", 1)[1])
    parts = [f"{op} x{n}" + (f" ({why[op]})" if op in why else "") for op, n in counts.items()]
    return f"UnsupportedOpError: {', '.join(parts)}"


def _timed(times: dict[str, float], key: str, start: float) -> None:
    times[key] = round(time.perf_counter() - start, 2)


def run_case(arch: str, exporter: str, opset: int | None = None, size: int | None = None,
             batch: int = BATCH, threads: int = 2) -> CaseResult:
    """Export (cached), compile, explain a seeded batch and check it against torch and the
    reference. Never raises for a model-level failure: the result says what went wrong."""
    import onnx

    import aeq_onnx
    from aeq_onnx.errors import UnsupportedOpError
    from tests.reference import ae_torch

    opset = tvm.DEFAULT_OPSET[exporter] if opset is None else opset
    size = tvm.MODELS[arch].size if size is None else size
    res = CaseResult(arch, exporter, opset, size)
    t = time.perf_counter()
    try:
        path = tvm.export(arch, exporter, opset, size)
    except Exception as exc:  # exporter failure: report it, keep going
        res.status, res.error = "export error", _first_line(exc)
        return res
    _timed(res.times, "export", t)
    t = time.perf_counter()
    try:
        proto = aeq_onnx.compile_explainer(path)
    except UnsupportedOpError as exc:
        res.status, res.error = "unsupported", unsupported_summary(exc)
        res.unsupported_ops = sorted({op for op, _, _ in exc.nodes})
        return res
    except Exception as exc:
        res.error = _first_line(exc)
        return res
    _timed(res.times, "compile", t)
    x = batch_for(size, batch)
    try:
        t = time.perf_counter()
        explainer = aeq_onnx.Explainer(proto, device="cpu", threads=threads)
        del proto
        _timed(res.times, "session", t)
        t = time.perf_counter()
        result = explainer.explain(x)
        _timed(res.times, "explain", t)
        del explainer
        expected = torch_logits(arch, x)
        scale = float(np.abs(expected).max()) or 1.0
        res.logits_err = float(np.abs(result.logits - expected).max()) / scale
        if not np.allclose(result.logits, expected, rtol=LOGIT_TOL, atol=LOGIT_TOL * scale):
            res.error = f"logits differ from torch: max |Δ| {res.logits_err:.2e} of max |logit|"
            return res
        if not np.isfinite(result.relevance).all():
            res.error = "relevance has non-finite values"
            return res
    except Exception as exc:
        res.error = _first_line(exc)
        return res
    t = time.perf_counter()
    try:
        model = onnx.load(str(path))
        ref = ae_torch.reference_explain(model, x)
        del model
    except Exception as exc:  # e.g. an op the reference interpreter lacks
        res.status, res.error = "reference error", _first_line(exc)
        return res
    finally:
        gc.collect()
    _timed(res.times, "reference", t)
    res.relevance_err = relevance_error(result.relevance, ref["R"])
    if not np.array_equal(ref["target"], result.target):
        res.error = "reference picked another target"
    elif res.relevance_err > RELEVANCE_TOL_BY_ARCH.get(arch, RELEVANCE_TOL):
        res.error = f"relevance differs from the reference: {res.relevance_err:.2e} of max |R|"
    else:
        res.status = "pass"
    return res


def cases(archs: Iterable[str], exporters: Iterable[str], opsets: Sequence[int] | None,
          quick: bool) -> list[tuple[str, str, int]]:
    """The (arch, exporter, opset) matrix: every opset in ``tvm.OPSETS`` (or ``opsets``, where
    the exporter supports them), or only each exporter's default opset when ``quick``."""
    out = []
    for arch in archs:
        for exporter in exporters:
            if quick:
                chosen: Sequence[int] = (tvm.DEFAULT_OPSET[exporter],)
            elif opsets:
                chosen = [o for o in opsets if o in tvm.OPSETS[exporter]]
            else:
                chosen = tvm.OPSETS[exporter]
            out.extend((arch, exporter, o) for o in chosen)
    return out


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.1e}"


def markdown(results: Sequence[CaseResult]) -> str:
    """The results as a markdown table (one row per case) with a short legend."""
    lines = [
        "| architecture | exporter | opset | input | result | logits Δ / max \\|logit\\| | "
        "relevance Δ / max \\|R\\| | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mark = "✅ pass" if r.ok else f"❌ {r.status}"
        detail = r.error.removeprefix("UnsupportedOpError: ") if r.unsupported_ops else r.error
        detail = detail.replace("|", "\\|")
        if len(detail) > 160:
            detail = detail[:157] + "..."
        lines.append(
            f"| {r.arch} | {r.exporter} | {r.opset} | {r.size}² | {mark} | {_fmt(r.logits_err)} | "
            f"{_fmt(r.relevance_err)} | {detail} |"
        )
    return "\n".join(lines) + "\n"


def parse_results(text: str) -> dict[tuple[str, str, int], bool]:
    """``{(arch, exporter, opset): passed}`` for every row of a table written by
    :func:`markdown` (tests use it to hold ``docs/coverage.md`` to what the code does)."""
    return {case: res.ok for case, res in parse_rows(text).items()}


def parse_rows(text: str) -> dict[tuple[str, str, int], CaseResult]:
    """The rows of a table written by :func:`markdown`, as results (errors as printed)."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) < 8 or not cells[2].isdigit():
            continue
        status = "pass" if cells[4] == "✅ pass" else cells[4].removeprefix("❌ ")
        errors = [None if c == "–" else float(c) for c in cells[5:7]]
        found[(cells[0], cells[1], int(cells[2]))] = CaseResult(
            cells[0], cells[1], int(cells[2]), int(cells[3].rstrip("²")), status=status,
            error=" | ".join(cells[7:]).replace("\\|", "|"), logits_err=errors[0],
            relevance_err=errors[1])
    return found


def versions_line() -> str:
    """The library versions a table was made with (its rows are only comparable within one)."""
    import onnx
    import onnxruntime
    import torch

    return (f"torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime "
            f"{onnxruntime.__version__}, Python {platform.python_version()}.")


def document(results: Sequence[CaseResult], resumed: str = "") -> str:
    """``docs/coverage.md``: heading, how it was made, the table."""
    return (
        "# Architecture coverage\n\n"
        "Generated by `python scripts/coverage_table.py` (do not edit by hand). Each row: a "
        "torchvision classifier with seeded random weights (`weights=None`, eval mode), exported "
        "to ONNX, compiled with `aeq_onnx.compile_explainer`, run on a batch of "
        f"{BATCH} seeded images on CPU. *pass* means: logits within {LOGIT_TOL:g} (rtol, and "
        "atol relative to max |logit|) "
        "of the torch module's, relevance finite, and relevance within "
        f"{RELEVANCE_TOL:g}·max|R| (Inception-v3 and VGG-16: "
        f"{RELEVANCE_TOL_BY_ARCH['inception_v3']:g}, their float32 conditioning) of the "
        "independent torch reference (`tests/reference/ae_torch.py`, float64) on the same ONNX "
        "file. The whole matrix is rewritten by one full run (a partial run with `--arch`, "
        "`--exporter`, `--opset` or `--quick` prints its rows and writes only to an explicit "
        "`--out`), and the model tests of `make test` fail when a row here disagrees with their "
        "own outcome (`tests/models/common.py`). Compile times: "
        "`benchmarks/results/COMPILE.md`.\n\n"
        + (f"{resumed}\n\n" if resumed else "")
        + versions_line() + "\n\n" + markdown(results)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/coverage_table.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=sorted(tvm.MODELS),
                        help="architecture (repeatable; default: all)")
    parser.add_argument("--exporter", action="append", choices=tvm.EXPORTERS,
                        help="exporter (repeatable; default: both)")
    parser.add_argument("--opset", type=int, action="append",
                        help="opset (repeatable; default: every opset in OPSETS)")
    parser.add_argument("--quick", action="store_true",
                        help="only each exporter's default opset (torchscript 17, dynamo 18)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"markdown file (default {DOC}, for the full matrix only)")
    parser.add_argument("--no-write", action="store_true", help="print only, write no file")
    parser.add_argument("--resume", action="store_true",
                        help=f"full matrix only: keep the passing rows of {DOC} (made with the "
                        "same library versions) and re-run the others, e.g. after an "
                        "interrupted run or an environment failure")
    args = parser.parse_args(argv)
    partial = bool(args.arch or args.exporter or args.opset or args.quick)
    if args.resume and partial:
        parser.error("--resume re-runs the full matrix's failed rows; it takes no filter")
    out = args.out or (None if partial or args.no_write else DOC)
    if partial and args.out is None and not args.no_write:
        print(f"a partial matrix is not written to {DOC} (it would leave other rows stale); "
              "printing only (give --out FILE to write it elsewhere)", file=sys.stderr)
    matrix = cases(args.arch or ARCHS, args.exporter or tvm.EXPORTERS, args.opset, args.quick)
    kept = reusable_rows() if args.resume else {}
    results = []
    for arch, exporter, opset in matrix:
        if (arch, exporter, opset) in kept:
            results.append(kept[(arch, exporter, opset)])
            continue
        start = time.perf_counter()
        res = run_case(arch, exporter, opset)
        print(f"{arch}-{exporter}-op{opset}: {res.status} ({time.perf_counter() - start:.1f} s)"
              f"{' ' + res.error if res.error else ''}", file=sys.stderr, flush=True)
        results.append(res)
    print(markdown(results))
    rerun = [f"{r.arch} {r.exporter} {r.opset}" for r in results
             if (r.arch, r.exporter, r.opset) not in kept]
    note = (f"Resumed on {time.strftime('%Y-%m-%d')} (`--resume`): re-run {', '.join(rerun)}; "
            "the other rows are the previous full run's passes." if kept else "")
    if out is not None:  # written once, at the end: an interrupted run leaves the old file
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document(results, note), encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


def reusable_rows() -> dict[tuple[str, str, int], CaseResult]:
    """The passing rows of the current doc, when it was made with these library versions."""
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if versions_line() not in text:
        print(f"{DOC} was made with other library versions: re-running everything",
              file=sys.stderr)
        return {}
    return {case: res for case, res in parse_rows(text).items() if res.ok}


if __name__ == "__main__":
    sys.exit(main())
