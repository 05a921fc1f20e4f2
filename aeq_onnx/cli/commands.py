"""The commands of ``aeq``: build, explain, inspect, audit, compare, web (each returns its exit
code)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aeq_onnx.cli.parser import method_flags
from aeq_onnx.errors import InputError
from aeq_onnx.methods import get_method
from aeq_onnx.run.saving import atomic_output, check_output

EXIT_ERROR, EXIT_UNSUPPORTED = 1, 2
#: Options that only mean something for photos (refused with an .npy batch).
PHOTO_OPTIONS = ("target_name", "top_k", "labels", "preset", "size", "mean", "std",
                 "percentile", "max_pixels")


def _isolate(args: argparse.Namespace) -> bool:
    """Models are untrusted: their checks run isolated unless ``--no-isolate``."""
    return not args.no_isolate


def _method_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The method, its parameters given on the command line, and the compile options."""
    kwargs: dict[str, object] = {"layer": args.layer, "output": args.output,
                                 "isolate": _isolate(args)}
    # options not given stay out: --method then means "ae" when compiling, the file's own
    # method for an explainer
    for key in ("method", *(p.name for p in method_flags()), "precision"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def cmd_build(args: argparse.Namespace) -> int:
    """``aeq build``: compile and save the explainer."""
    from aeq_onnx.compile.assemble import explainer_metadata, summary
    from aeq_onnx.compile.compiler import compile_explainer
    from aeq_onnx.run.saving import save_explainer

    check_output(args.out, inputs=[args.model], what="explainer path")
    start = time.perf_counter()
    explainer = compile_explainer(args.model, **_method_kwargs(args))  # type: ignore[arg-type]
    save_explainer(explainer, args.out)
    what = summary(explainer_metadata(explainer))
    print(f"wrote {args.out} ({what}, {time.perf_counter() - start:.1f} s)")
    return 0


def _load_batch(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read '{path}' as a .npy array: {exc}") from None


def _is_npy_mode(inputs: list[str]) -> bool:
    npy = [p for p in inputs if p.lower().endswith(".npy")]
    if npy and len(inputs) > 1:
        raise InputError("give one .npy batch, or photos and folders, not both")
    return bool(npy)


def cmd_explain(args: argparse.Namespace) -> int:
    """``aeq explain``: explain photos/folders (or an .npy batch) and print a summary table."""
    if _is_npy_mode(args.input):
        return _explain_npy(args)
    return _explain_images(args)


def _npy_out(args: argparse.Namespace) -> Path | None:
    """Where the relevance of an .npy batch goes (``.npy`` added as numpy does), checked."""
    if args.out is None:
        return None
    if Path(args.out).is_dir():
        raise InputError(f"the relevance file '{args.out}' is an existing folder; give a file "
                         f"name such as {Path(args.out) / 'relevance.npy'}")
    out = Path(args.out if args.out.endswith(".npy") else args.out + ".npy")
    return check_output(out, inputs=[args.input[0], args.model], what="relevance file")


def _explain_npy(args: argparse.Namespace) -> int:
    """Explain every sample of an .npy batch; relevance to ``-o`` (.npy)."""
    from aeq_onnx.run.runtime import Explainer

    given = [f"--{k.replace('_', '-')}" for k in PHOTO_OPTIONS if getattr(args, k) is not None]
    if given:
        raise InputError(f"{', '.join(given)}: for photos only; an .npy batch takes --target")
    out = _npy_out(args)
    target = -1 if args.target is None else args.target
    batch = _load_batch(args.input[0])
    explainer = Explainer(args.model, device=args.device, cuda_graph=args.cuda_graph,
                          **_method_kwargs(args))  # type: ignore[arg-type]
    explainer.check_batch(batch)
    explainer.check_target(target, max(len(batch), 1))
    parts, rows = [], []
    size = args.batch_size
    for start in range(0, len(batch), size):
        t0 = time.perf_counter()
        result = explainer.explain(batch[start:start + size], target=target)
        took = (time.perf_counter() - t0) / len(result.target)
        parts.append(result.relevance)
        for i, cls in enumerate(result.target):
            rows.append((start + i, int(cls), float(result.logits[i, cls]), result.provider, took))
        _progress_bar(min(start + size, len(batch)), len(batch), "samples")
    print(f"{'sample':>6}  {'class':>5}  {'logit':>10}  {'provider':<22}  time/sample")
    for index, cls, logit, provider, took in rows:
        print(f"{index:>6}  {cls:>5}  {logit:>10.4f}  {provider:<22}  {took * 1000:.1f} ms")
    if out is not None:
        with atomic_output(out) as part, open(part, "wb") as handle:
            np.save(handle, np.concatenate(parts))
        print(f"wrote relevance {out}")
    return 0


def _progress_bar(done: int, total: int, unit: str = "images") -> None:
    """A progress bar on stderr, only when it is a terminal (logs and pipes stay clean)."""
    if not sys.stderr.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}", end=end,
          file=sys.stderr, flush=True)


def _print_failures(failures: Sequence[tuple[str, str]]) -> None:
    for item, why in failures:
        print(f"aeq: failed: {item}: {why}", file=sys.stderr)


def _explain_images(args: argparse.Namespace) -> int:
    """Explain photos and folders; PNG + NPY per image and class, index.html, summary table."""
    from aeq_onnx.render.imaging import explain_images
    from aeq_onnx.render.presets import MAX_PIXELS

    out = Path(args.out or "aeq-out")
    report = explain_images(
        args.model, args.input, target=args.target, target_name=args.target_name,
        top_k=args.top_k, labels=args.labels, preset=args.preset, size=args.size,
        mean=args.mean, std=args.std, batch_size=args.batch_size, out=out, device=args.device,
        percentile=99.5 if args.percentile is None else args.percentile,
        progress=_progress_bar, cuda_graph=args.cuda_graph,
        max_pixels=args.max_pixels or MAX_PIXELS, **_method_kwargs(args))  # type: ignore[arg-type]
    width = max([4, *(len(r.source) for r in report.results)])
    names = max([5, *(len(r.label) for r in report.results)])
    print(f"{'file':<{width}}  {'class':<{names}}  {'score':>7}  {'provider':<22}  time/image")
    for r in report.results:
        print(f"{r.source:<{width}}  {r.label:<{names}}  {r.score:>7.4f}  {r.provider:<22}  "
              f"{r.seconds * 1000:.1f} ms")
    _print_failures(report.failures)
    failed = f" ({len(report.failures)} failed)" if report.failures else ""
    print(f"wrote {len(report.results)} explanation(s) to {out}{failed}; open {report.gallery}")
    return EXIT_ERROR if report.failures else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``aeq inspect``: the rule every op gets under ``--method``; exit 2 if unsupported."""
    from aeq_onnx.compile.inspection import inspect_model

    report = inspect_model(args.model, **_method_kwargs(args))  # type: ignore[arg-type]
    options = ", ".join(f"{k} {v}" for k, v in report.parameters.items())
    where = (f"split tensor '{report.split}'" if get_method(report.method).uses_split
             else "from the logits to the input")
    print(f"opset {report.opset}; method {report.method} ({options}); logits "
          f"'{report.logits}'; {where}")
    if args.nodes:
        for node in report.nodes:
            print(f"{node.op:<20} {node.role:<10} {node.rule:<45} {node.name}")
    else:
        print(f"{'op':<20} {'count':>5}  rule")
        for op, count, rule in report.op_table():
            print(f"{op:<20} {count:>5}  {rule}")
    for problem in report.problems:
        print(f"aeq: error: {problem}", file=sys.stderr)
    if report.unsupported:
        print(f"aeq: {len(report.unsupported)} unsupported node(s) for method {report.method}",
              file=sys.stderr)
    return EXIT_UNSUPPORTED if report.unsupported or report.problems else 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``aeq audit``: run, report, print the table and where the reports are."""
    from aeq_onnx.audit import GroundTruthSource, RayOptions, audit
    from aeq_onnx.audit.report import markdown_table
    from aeq_onnx.audit.scoring import CurveSettings
    from aeq_onnx.render.presets import MAX_PIXELS

    if not args.images and args.manifest is None and args.voc is None:
        raise InputError("give --images (or --manifest / --voc)")
    source = GroundTruthSource(args.images, args.masks, args.boxes, args.voc, args.coco,
                               args.mapping, args.manifest)
    baselines = tuple(b.strip() for b in args.baselines.split(",") if b.strip())
    if not baselines or set(baselines) - {"blur", "zero"}:
        raise InputError(f"--baselines takes blur, zero or both, got '{args.baselines}'")
    command = "aeq " + " ".join(args.argv)
    engine = None if args.engine == "local" else RayOptions(args.address, args.workers,
                                                              args.gpus_per_worker)
    result = audit(args.model, source, methods=args.methods, out=args.out, preset=args.preset,
                   size=args.size, curves=CurveSettings(args.steps, baselines),
                   batch_size=args.batch_size, sanity_cases=args.sanity, device=args.device,
                   progress=lambda d, t: _progress_bar(d, t, "cases"), command=command,
                   engine=engine, max_pixels=args.max_pixels or MAX_PIXELS,
                   isolate=_isolate(args), class_sensitivity=args.class_sensitivity,
                   randomisation_cases=args.randomisation)
    report = json.loads(result.report["json"].read_text())
    print(markdown_table(report))
    _print_failures(result.run.failures)
    print(f"reports: {', '.join(str(p) for p in result.report.values())}")
    return EXIT_ERROR if result.run.failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``aeq compare``: explain both models, print the summary, say where the reports are."""
    from aeq_onnx.audit.compare import compare
    from aeq_onnx.audit.compare.report import summary_table
    from aeq_onnx.render.presets import MAX_PIXELS

    kwargs = _method_kwargs(args)
    result = compare(args.model_a, args.model_b, args.images, target=args.target,
                     labels=args.labels, preset=args.preset, size=args.size, out=args.out,
                     device=args.device, batch_size=args.batch_size,
                     top_fraction=args.top_fraction, max_pixels=args.max_pixels or MAX_PIXELS,
                     progress=_progress_bar, **kwargs)  # type: ignore[arg-type]
    print(f"{result.summary['images']} image(s), target: {result.info['target']}")
    print(summary_table(result))
    _print_failures(result.failures)
    if result.files:
        print(f"reports: {', '.join(str(p) for p in result.files.values())}")
    return EXIT_ERROR if result.failures else 0


def cmd_web(args: argparse.Namespace) -> int:
    """``aeq web``: write the site and say how to open it."""
    from aeq_onnx.web import MAX_MODEL_BYTES, write_site
    from aeq_onnx.web.serve import serve

    limit = MAX_MODEL_BYTES if args.max_mb is None else int(args.max_mb * 1e6)
    site = write_site(args.model, args.out, labels=args.labels, preset=args.preset,
                      webgpu=not args.no_webgpu, ort_dir=args.ort_dir, max_bytes=limit,
                      examples=args.example, isolate=_isolate(args))
    print(f"wrote {site.root} (explainer {site.model_bytes / 1e6:.1f} MB, preset "
          f"{site.preset.name}, {site.layout}, {site.classes} classes)")
    if args.serve is not None:
        serve(site.root, args.serve)
        return 0
    print(f"open it through a local server: python -m aeq_onnx.web.serve {site.root}  "
          "(then http://127.0.0.1:8000/; browsers refuse to run it from file://)")
    return 0


COMMANDS = {"build": cmd_build, "explain": cmd_explain, "inspect": cmd_inspect,
            "audit": cmd_audit, "compare": cmd_compare, "web": cmd_web}
