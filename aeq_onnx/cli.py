"""The ``aeq`` command line: argument parsing and error presentation only."""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from aeq_onnx.errors import AeqError, InputError, UnsupportedOpError
from aeq_onnx.methods import ADD_RULES

EXIT_ERROR, EXIT_UNSUPPORTED, EXIT_INTERNAL = 1, 2, 3


def _method_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ratio", type=float, default=2.0,
                        help="AE ratio r, degree of positive attribution, 1 <= r <= 2 (default 2)")
    parser.add_argument("--layer", default=None,
                        help="split tensor name (default: the spec's Grad-CAM layer heuristic)")
    parser.add_argument("--add-rule", choices=ADD_RULES, default="residual",
                        help="relevance rule at an Add of two tensors (default residual)")
    parser.add_argument("--output", default=None,
                        help="model output to explain when it has several")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``aeq`` and its sub-commands."""
    parser = argparse.ArgumentParser(prog="aeq", description=(
        "Attribution Equilibrium explanations for ONNX image classifiers."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile MODEL.onnx into an explainer ONNX model")
    build.add_argument("model")
    build.add_argument("-o", "--out", required=True, help="where to write the explainer")
    _method_args(build)
    explain = sub.add_parser("explain", help="explain the samples of an .npy batch")
    explain.add_argument("model", help="a classifier .onnx or an explainer built by aeq build")
    explain.add_argument("input", help=".npy array shaped like the model input (N first)")
    explain.add_argument("--target", type=int, default=-1, help="class to explain (-1: top-1)")
    explain.add_argument("-o", "--out", default=None, help="write the relevance here (.npy)")
    explain.add_argument("--batch-size", type=int, default=8)
    explain.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    _method_args(explain)
    inspect = sub.add_parser("inspect", help="show the rule chosen for every op; exit 2 if any "
                             "op is unsupported")
    inspect.add_argument("model")
    inspect.add_argument("--nodes", action="store_true", help="list every node, not only op types")
    _method_args(inspect)
    return parser


def _method_kwargs(args: argparse.Namespace) -> dict[str, object]:
    return {"ratio": args.ratio, "layer": args.layer, "add_rule": args.add_rule,
            "output": args.output}


def cmd_build(args: argparse.Namespace) -> int:
    """``aeq build``: compile and save the explainer."""
    from aeq_onnx.compiler import compile_explainer

    start = time.perf_counter()
    explainer = compile_explainer(args.model, **_method_kwargs(args))  # type: ignore[arg-type]
    onnx.save(explainer, args.out)
    meta = {p.key: p.value for p in explainer.metadata_props}
    print(f"wrote {args.out} (split {meta['aeq_onnx.split']}, ratio {meta['aeq_onnx.ratio']}, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def _load_batch(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read '{path}' as a .npy array: {exc}") from None


def cmd_explain(args: argparse.Namespace) -> int:
    """``aeq explain``: explain every sample of an .npy batch and print a summary table."""
    from aeq_onnx.runtime import Explainer

    batch = _load_batch(args.input)
    explainer = Explainer(args.model, device=args.device, **_method_kwargs(args))  # type: ignore[arg-type]
    explainer.check_batch(batch)
    explainer.check_target(args.target, max(len(batch), 1))
    parts, rows = [], []
    size = max(1, args.batch_size)
    for start in range(0, len(batch), size):
        t0 = time.perf_counter()
        result = explainer.explain(batch[start:start + size], target=args.target)
        took = (time.perf_counter() - t0) / len(result.target)
        parts.append(result.relevance)
        for i, cls in enumerate(result.target):
            rows.append((start + i, int(cls), float(result.logits[i, cls]), result.provider, took))
        if len(batch) > size:
            print(f"\r{min(start + size, len(batch))}/{len(batch)} samples", end="",
                  file=sys.stderr, flush=True)
    if len(batch) > size:
        print(file=sys.stderr)
    print(f"{'sample':>6}  {'class':>5}  {'logit':>10}  {'provider':<22}  time/sample")
    for index, cls, logit, provider, took in rows:
        print(f"{index:>6}  {cls:>5}  {logit:>10.4f}  {provider:<22}  {took * 1000:.1f} ms")
    if args.out:
        np.save(args.out, np.concatenate(parts))
        print(f"wrote relevance {Path(args.out)}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``aeq inspect``: the split tensor and the rule of every op; exit 2 if unsupported."""
    from aeq_onnx.inspection import inspect_model

    report = inspect_model(args.model, **_method_kwargs(args))  # type: ignore[arg-type]
    print(f"opset {report.opset}; logits '{report.logits}'; split tensor '{report.split}'")
    if args.nodes:
        for node in report.nodes:
            print(f"{node.op:<20} {node.role:<10} {node.rule:<45} {node.name}")
    else:
        print(f"{'op':<20} {'count':>5}  rule")
        for op, count, rule in report.op_table():
            print(f"{op:<20} {count:>5}  {rule}")
    if report.unsupported:
        print(f"{len(report.unsupported)} unsupported node(s)", file=sys.stderr)
        return EXIT_UNSUPPORTED
    return 0


COMMANDS = {"build": cmd_build, "explain": cmd_explain, "inspect": cmd_inspect}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a sub-command, print typed errors on one line (tracebacks with --debug)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AeqError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"aeq: error: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED if isinstance(exc, UnsupportedOpError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("aeq: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: no traceback unless asked
        if args.debug:
            traceback.print_exc()
        print(f"aeq: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
