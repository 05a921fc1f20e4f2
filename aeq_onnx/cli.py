"""The ``aeq`` command line: argument parsing and error presentation only."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from aeq_onnx.errors import AeqError, InputError, UnsupportedOpError
from aeq_onnx.methods import ADD_RULES

EXIT_ERROR, EXIT_UNSUPPORTED, EXIT_INTERNAL = 1, 2, 3


def _method_args(parser: argparse.ArgumentParser) -> None:
    from aeq_onnx.methods import METHOD_NAMES

    parser.add_argument("--method", choices=METHOD_NAMES, default="ae",
                        help="attribution method (default ae: Attribution Equilibrium)")
    parser.add_argument("--steps", type=int, default=None,
                        help="integrated-gradients: path steps (default 32)")
    parser.add_argument("--baseline", choices=("zero", "blur"), default=None,
                        help="integrated-gradients: baseline (default zero)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="lrp-epsilon: stabiliser (default 0.25)")
    parser.add_argument("--ratio", type=float, default=2.0,
                        help="AE ratio r, degree of positive attribution, 1 <= r <= 2 (default 2)")
    parser.add_argument("--layer", default=None,
                        help="split tensor name (default: the spec's Grad-CAM layer heuristic)")
    parser.add_argument("--add-rule", choices=ADD_RULES, default="residual",
                        help="relevance rule at an Add of two tensors (default residual)")
    parser.add_argument("--output", default=None,
                        help="model output to explain when it has several")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                        help="fp16: a float16 explainer (float32 in and out; quotients kept in "
                        "float32). On an H100 it was slower than fp32 and up to 0.44 of max off "
                        "(benchmarks/FP16_CUDA.md). Default fp32")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``aeq`` and its sub-commands."""
    parser = argparse.ArgumentParser(prog="aeq", description=(
        "Attribution Equilibrium explanations for ONNX image classifiers."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--no-isolate", action="store_true",
                        help="check models in this process (default: onnx's checker and shape "
                        "inference run in a memory- and time-limited child process)")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile MODEL.onnx into an explainer ONNX model")
    build.add_argument("model")
    build.add_argument("-o", "--out", required=True, help="where to write the explainer")
    _method_args(build)
    explain = sub.add_parser(
        "explain", help="explain photos (files or folders) or the samples of an .npy batch",
        description="Explain photos: writes a photo | heatmap | overlay PNG and the raw relevance "
        ".npy per image and class into --out, an index.html gallery, and prints a summary. With "
        "one .npy INPUT (shaped like the model input, N first) explains its samples instead "
        "(-o: relevance .npy). Exit code 1 if any image could not be read (the others complete).")
    explain.add_argument("model", help="a classifier .onnx or an explainer built by aeq build")
    explain.add_argument("input", nargs="+", metavar="IMAGE_OR_DIR",
                         help="photos and/or folders of photos, or one .npy batch")
    which = explain.add_mutually_exclusive_group()
    which.add_argument("--target", type=int, default=None, help="class to explain (-1: top-1)")
    which.add_argument("--target-name", default=None, help="class to explain, by its label")
    which.add_argument("--top-k", type=int, default=None, help="explain each of the k best")
    explain.add_argument("--labels", default=None,
                         help="class names, one per line (default: ImageNet's for 1000 classes)")
    explain.add_argument("--preset", default=None,
                         help="preprocessing: imagenet, inception, unit or a JSON preset "
                         "(default: the explainer's stored preset, else imagenet)")
    explain.add_argument("--size", type=int, default=None, help="custom input size (pixels)")
    explain.add_argument("--mean", default=None, help="custom mean, e.g. 0.5,0.5,0.5")
    explain.add_argument("--std", default=None, help="custom std, e.g. 0.5,0.5,0.5")
    explain.add_argument("--percentile", type=float, default=99.5,
                         help="heatmaps scaled by this percentile of |R| (default 99.5)")
    explain.add_argument("-o", "--out", default=None,
                         help="images: output folder (default aeq-out); .npy: relevance .npy")
    explain.add_argument("--batch-size", type=int, default=8)
    explain.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    explain.add_argument("--cuda-graph", action="store_true",
                         help="CUDA: replay each batch size as a captured CUDA graph (one launch "
                         "instead of thousands; ResNet-50 batch 1 on an H100: 1.57x faster)")
    _method_args(explain)
    inspect = sub.add_parser("inspect", help="show the rule chosen for every op; exit 2 if any "
                             "op is unsupported")
    inspect.add_argument("model")
    inspect.add_argument("--nodes", action="store_true", help="list every node, not only op types")
    _method_args(inspect)
    _audit_parser(sub)
    _web_parser(sub)
    return parser


def _audit_parser(sub: Any) -> None:
    from aeq_onnx.audit.methods import DEFAULT_METHODS

    audit = sub.add_parser(
        "audit", help="methods x metrics over a set of images: report.json/.md/.html",
        description="Run attribution methods on every image (and ground-truth class) and score "
        "them: pointing game, energy pointing game, outside-inside ratio, mIoU (with ground "
        "truth), insertion/deletion AUC, and optionally the cascading randomisation sanity "
        "check. Re-running with the same --out resumes. Bad items are listed, the rest "
        "completes (exit code 1 if any failed).")
    audit.add_argument("model")
    audit.add_argument("--images", nargs="*", default=[], metavar="IMAGE_OR_DIR",
                       help="photos and/or folders (the image folder of --masks/--boxes/--coco)")
    truth = audit.add_mutually_exclusive_group()
    truth.add_argument("--masks", help="folder of PNG masks named like the images")
    truth.add_argument("--boxes", help="JSON or CSV boxes file (image, x0, y0, x1, y1, class)")
    truth.add_argument("--voc", help="PASCAL VOC folder (Annotations/, JPEGImages/)")
    truth.add_argument("--coco", help="COCO instances JSON (images in --images)")
    truth.add_argument("--manifest", help="CSV or Parquet manifest: path[,label]"
                       "[,x0,y0,x1,y1][,mask] (paths relative to the manifest)")
    audit.add_argument("--mapping", help="dataset class -> model outputs file (dog: 151-268)")
    audit.add_argument("--methods", default=DEFAULT_METHODS, help="comma list; options after "
                       "':' separated by ';', e.g. ae:1.5,integrated-gradients:steps=16,"
                       f"rise:masks=2000 (default {DEFAULT_METHODS})")
    audit.add_argument("--out", default="aeq-audit", help="output folder (default aeq-audit)")
    audit.add_argument("--steps", type=int, default=20, help="insertion/deletion steps")
    audit.add_argument("--baselines", default="blur", help="insertion/deletion baselines: "
                       "blur, zero or blur,zero (default blur)")
    audit.add_argument("--sanity", type=int, default=0, metavar="N",
                       help="run the randomisation sanity check on the first N cases")
    audit.add_argument("--preset", default=None, help="imagenet (default), inception, unit or "
                       "a JSON preset")
    audit.add_argument("--size", type=int, default=None, help="custom input size (pixels)")
    audit.add_argument("--batch-size", type=int, default=8)
    audit.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    audit.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local (default) or ray: explainer actors on a Ray cluster "
                       "(pip install aeq_onnx[ray])")
    audit.add_argument("--address", default=None, help="Ray cluster address (default: start "
                       "a local cluster)")
    audit.add_argument("--workers", type=int, default=2, help="Ray actors (default 2)")
    audit.add_argument("--gpus-per-worker", type=float, default=0.0,
                       help="GPUs per Ray actor (default 0: CPU)")


def _method_kwargs(args: argparse.Namespace) -> dict[str, object]:
    kwargs: dict[str, object] = {"method": args.method, "ratio": args.ratio,
                                 "layer": args.layer, "add_rule": args.add_rule,
                                 "output": args.output}
    for key in ("steps", "baseline", "epsilon", "precision"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    return kwargs


def cmd_build(args: argparse.Namespace) -> int:
    """``aeq build``: compile and save the explainer."""
    from aeq_onnx.compiler import compile_explainer
    from aeq_onnx.saving import save_explainer

    start = time.perf_counter()
    explainer = compile_explainer(args.model, **_method_kwargs(args))  # type: ignore[arg-type]
    save_explainer(explainer, args.out)
    meta = {p.key: p.value for p in explainer.metadata_props}
    what = ", ".join(f"{k} {meta[f'aeq_onnx.{k}']}"
                     for k in ("method", "split", "ratio", "precision")
                     if f"aeq_onnx.{k}" in meta)
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


def _explain_npy(args: argparse.Namespace) -> int:
    """Explain every sample of an .npy batch; relevance to ``-o`` (.npy)."""
    from aeq_onnx.runtime import Explainer

    if args.target_name is not None or args.top_k is not None:
        raise InputError("--target-name and --top-k need photos; use --target with an .npy batch")
    target = -1 if args.target is None else args.target
    batch = _load_batch(args.input[0])
    explainer = Explainer(args.model, device=args.device, cuda_graph=args.cuda_graph,
                          **_method_kwargs(args))  # type: ignore[arg-type]
    explainer.check_batch(batch)
    explainer.check_target(target, max(len(batch), 1))
    parts, rows = [], []
    size = max(1, args.batch_size)
    for start in range(0, len(batch), size):
        t0 = time.perf_counter()
        result = explainer.explain(batch[start:start + size], target=target)
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


def _progress_bar(done: int, total: int, unit: str = "images") -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}", end=end,
          file=sys.stderr, flush=True)


def _explain_images(args: argparse.Namespace) -> int:
    """Explain photos and folders; PNG + NPY per image and class, index.html, summary table."""
    from aeq_onnx.imaging import explain_images

    out = Path(args.out or "aeq-out")
    report = explain_images(
        args.model, args.input, target=args.target, target_name=args.target_name,
        top_k=args.top_k, labels=args.labels, preset=args.preset, size=args.size,
        mean=args.mean, std=args.std, batch_size=args.batch_size, out=out, device=args.device,
        percentile=args.percentile, progress=_progress_bar, cuda_graph=args.cuda_graph,
        **_method_kwargs(args))  # type: ignore[arg-type]
    width = max([4, *(len(r.source) for r in report.results)])
    names = max([5, *(len(f"{r.class_name} ({r.class_index})") for r in report.results)])
    print(f"{'file':<{width}}  {'class':<{names}}  {'score':>7}  {'provider':<22}  time/image")
    for r in report.results:
        label = f"{r.class_name} ({r.class_index})"
        print(f"{r.source:<{width}}  {label:<{names}}  {r.score:>7.4f}  {r.provider:<22}  "
              f"{r.seconds * 1000:.1f} ms")
    if report.failures:
        print(f"{len(report.failures)} failed:")
        for path, message in report.failures:
            print(f"  {path}: {message}")
    print(f"wrote {len(report.results)} explanation(s) to {out}; open {report.gallery}")
    return EXIT_ERROR if report.failures else 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """``aeq inspect``: the split tensor and the rule of every op; exit 2 if unsupported."""
    from aeq_onnx.inspection import inspect_model

    if args.method != "ae":
        raise InputError("aeq inspect shows the rules of Attribution Equilibrium; --method "
                         f"{args.method} is for build, explain and audit")
    report = inspect_model(args.model, ratio=args.ratio, layer=args.layer,
                           add_rule=args.add_rule, output=args.output)
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


def cmd_audit(args: argparse.Namespace) -> int:
    """``aeq audit``: run, report, print the table and where the reports are."""
    from aeq_onnx.audit import GroundTruthSource, RayOptions, audit
    from aeq_onnx.audit.report import markdown_table
    from aeq_onnx.audit.scoring import CurveSettings

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
                   engine=engine)
    report = json.loads(result.report["json"].read_text())
    print(markdown_table(report))
    for item, why in result.run.failures:
        print(f"failed: {item}: {why}", file=sys.stderr)
    print(f"reports: {', '.join(str(p) for p in result.report.values())}")
    return EXIT_ERROR if result.run.failures else 0


def _web_parser(sub: Any) -> None:
    web = sub.add_parser(
        "web", help="write a static, offline web page that runs the explainer in the browser",
        description="Write SITE/: index.html, the explainer and onnxruntime-web (pinned), for "
        "any static server. Users drop photos; the page preprocesses them with the explainer's "
        "preset, shows the top-5 classes, heatmap and overlay as aeq explain draws them, and "
        "offers the PNGs and the raw relevance. WebGPU where the browser has it, else "
        "WebAssembly (multi-threaded when served with COOP/COEP headers).")
    web.add_argument("model", help="an explainer built by aeq build (a classifier is compiled "
                     "with AE's defaults)")
    web.add_argument("-o", "--out", required=True, help="the site folder to write")
    web.add_argument("--labels", default=None,
                     help="class names, one per line (default: ImageNet's for 1000 classes)")
    web.add_argument("--preset", default=None, help="imagenet, inception, unit or a JSON "
                     "preset (default: the explainer's stored preset, else imagenet)")
    web.add_argument("--no-webgpu", action="store_true",
                     help="leave out the WebGPU runtime (27 MB smaller; WebAssembly only)")
    web.add_argument("--ort-dir", default=None, help="onnxruntime-web package folder "
                     "(default: web/node_modules of this checkout, or ./node_modules)")
    web.add_argument("--max-mb", type=float, default=None,
                     help="largest explainer the page opens, in MB (default 1073.7: 1 GiB)")
    web.add_argument("--example", action="append", default=[], metavar="PHOTO",
                     help="a photo to include and explain when the page opens (repeatable)")
    web.add_argument("--serve", type=int, nargs="?", const=8000, default=None, metavar="PORT",
                     help="then serve the site on 127.0.0.1:PORT (default 8000) with COOP/COEP")


def cmd_web(args: argparse.Namespace) -> int:
    """``aeq web``: write the site and say how to open it."""
    from aeq_onnx.web import MAX_MODEL_BYTES, write_site
    from aeq_onnx.web.serve import serve

    limit = MAX_MODEL_BYTES if args.max_mb is None else int(args.max_mb * 1e6)
    site = write_site(args.model, args.out, labels=args.labels, preset=args.preset,
                      webgpu=not args.no_webgpu, ort_dir=args.ort_dir, max_bytes=limit,
                      examples=args.example)
    print(f"wrote {site.root} (explainer {site.model_bytes / 1e6:.1f} MB, preset "
          f"{site.preset.name}, {site.layout}, {site.classes} classes)")
    if args.serve is not None:
        serve(site.root, args.serve)
        return 0
    print(f"open it through a local server: python -m aeq_onnx.web.serve {site.root}  "
          "(then http://127.0.0.1:8000/; browsers refuse to run it from file://)")
    return 0


COMMANDS = {"build": cmd_build, "explain": cmd_explain, "inspect": cmd_inspect,
            "audit": cmd_audit, "web": cmd_web}


@contextmanager
def isolation(enabled: bool) -> Iterator[None]:
    """Run the model checks in a limited child process (``AEQ_ISOLATE=1``) while inside."""
    before = os.environ.get("AEQ_ISOLATE")
    if enabled and before is None:
        os.environ["AEQ_ISOLATE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("AEQ_ISOLATE", None)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a sub-command, print typed errors on one line (tracebacks with --debug).

    Models are untrusted by default: their checks run isolated unless ``--no-isolate``."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        with isolation(not args.no_isolate):
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
