"""The argument parser of ``aeq``: every sub-command and option, spelled out once.

A usage mistake (an unknown option or method, a missing argument, ``--top-k 0``) prints one
line, ``aeq: error: ...``, and exits with code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from aeq_onnx.methods import METHOD_NAMES, Param, all_params
from aeq_onnx.render.presets import MAX_PIXELS

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``aeq: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"aeq: error: {message} (see: {self.prog} --help)\n")


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def number_in(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"must lie in {bracket}{low:g}, {high:g}], "
                                             f"got {text}")
        return value

    parse.__name__ = "number"
    return parse


POSITIVE = at_least(1)
INF = float("inf")


def method_flags() -> list[Param[Any]]:
    """The parameters of the registered methods that have a flag (``--ratio``, ``--steps`` ...)."""
    return [p for p in all_params().values() if p.cli]


def _param_type(param: Param[Any]) -> dict[str, Any]:
    """``add_argument`` settings of a method parameter: its choices or a range-checked type."""
    if param.choices:
        return {"choices": param.choices}
    if isinstance(param.default, int) and not isinstance(param.default, float):
        return {"type": at_least(int(param.low) if param.low is not None else -(2**63))}
    low = -INF if param.low is None else param.low
    return {"type": number_in(low, INF if param.high is None else param.high, param.low_open)}


def method_args(parser: argparse.ArgumentParser) -> None:
    """The options that choose and tune the attribution method (build, explain, inspect): the
    method, each registered method's parameters (default None: the method's own default), the
    split layer, the output and the precision."""
    parser.add_argument("--method", choices=METHOD_NAMES, default=None,
                        help="attribution method (default ae: Attribution Equilibrium)")
    for param in method_flags():
        parser.add_argument(param.flag, default=None, help=param.help, **_param_type(param))
    parser.add_argument("--layer", default=None,
                        help="split tensor name (default: the spec's Grad-CAM layer heuristic)")
    parser.add_argument("--output", default=None,
                        help="model output to explain when it has several")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                        help="fp16: a float16 explainer (float32 in and out; quotients kept in "
                        "float32), built for CUDA; measured slower than fp32 and less accurate "
                        "(docs/performance.md). Default fp32")


def _max_pixels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-pixels", type=POSITIVE, default=None, metavar="N",
                        help=f"refuse a model input over N pixels per image (H x W), read from "
                        f"the model before any photo is decoded (default {MAX_PIXELS}, "
                        "4096x4096); photos resized over 4 x N (an extreme aspect ratio) are "
                        "skipped")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``aeq`` and its sub-commands."""
    parser = Parser(prog="aeq", description=(
        "Attribution Equilibrium explanations for ONNX image classifiers."))
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--no-isolate", action="store_true",
                        help="check models in this process (default: onnx's checker and shape "
                        "inference run in a memory- and time-limited child process)")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="compile MODEL.onnx into an explainer ONNX model")
    build.add_argument("model")
    build.add_argument("-o", "--out", required=True, help="where to write the explainer "
                       "(missing folders are created)")
    method_args(build)
    _explain_parser(sub)
    inspect = sub.add_parser(
        "inspect", help="show the rule each node gets under a method; exit 2 if any node is "
        "unsupported", description="Show the split tensor and the rule every op (or, with "
        "--nodes, every node) gets under --method: AE's relevance rules below the split and "
        "VJPs above it, Grad-CAM's VJPs, the gradient family's VJPs, LRP's relevance rules. "
        "Takes every option of aeq build except -o (inspect writes nothing).")
    inspect.add_argument("model")
    inspect.add_argument("--nodes", action="store_true", help="list every node, not only op types")
    method_args(inspect)
    _audit_parser(sub)
    _compare_parser(sub)
    _web_parser(sub)
    return parser


def _explain_parser(sub: Any) -> None:
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
    which.add_argument("--top-k", type=POSITIVE, default=None, help="explain each of the k best")
    explain.add_argument("--labels", default=None,
                         help="class names, one per line (default: ImageNet's for 1000 classes)")
    explain.add_argument("--preset", default=None,
                         help="preprocessing: imagenet, inception, unit or a JSON preset "
                         "(default: the explainer's stored preset, else imagenet)")
    explain.add_argument("--size", type=POSITIVE, default=None, help="custom input size (pixels)")
    explain.add_argument("--mean", default=None, help="custom mean, e.g. 0.5,0.5,0.5")
    explain.add_argument("--std", default=None, help="custom std, e.g. 0.5,0.5,0.5")
    explain.add_argument("--percentile", type=number_in(0, 100, low_open=True), default=None,
                         help="heatmaps scaled by this percentile of |R| (default 99.5)")
    _max_pixels(explain)
    explain.add_argument("-o", "--out", default=None,
                         help="images: output folder (default aeq-out); .npy: relevance .npy "
                         "(missing folders are created)")
    explain.add_argument("--batch-size", type=POSITIVE, default=8)
    explain.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    explain.add_argument("--cuda-graph", action="store_true",
                         help="CUDA: replay each batch size as a captured CUDA graph (one launch "
                         "instead of thousands: faster at small batches, docs/performance.md)")
    method_args(explain)


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
    audit.add_argument("--out", default="aeq-audit", help="output folder (default aeq-audit; "
                       "missing folders are created)")
    audit.add_argument("--steps", type=POSITIVE, default=20, help="insertion/deletion steps")
    audit.add_argument("--baselines", default="blur", help="insertion/deletion baselines: "
                       "blur, zero or blur,zero (default blur)")
    audit.add_argument("--sanity", type=at_least(0), default=0, metavar="N",
                       help="run the randomisation sanity check on the first N cases")
    audit.add_argument("--class-sensitivity", action="store_true",
                       help="also explain each case's runner-up class and report the rank "
                       "correlation of the two maps (twice the explanations)")
    audit.add_argument("--randomisation", type=at_least(0), default=0, metavar="N",
                       help="weight-randomisation check on the first N cases: classifier "
                       "re-drawn first, then the top 5, 15 and all weight tensors (costly: "
                       "every method is compiled again per level)")
    audit.add_argument("--preset", default=None, help="imagenet (default), inception, unit or "
                       "a JSON preset")
    audit.add_argument("--size", type=POSITIVE, default=None, help="custom input size (pixels)")
    _max_pixels(audit)
    audit.add_argument("--batch-size", type=POSITIVE, default=8)
    audit.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    audit.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local (default) or ray: explainer actors on a Ray cluster "
                       "(pip install aeq_onnx[ray])")
    audit.add_argument("--address", default=None, help="Ray cluster address (default: start "
                       "a local cluster)")
    audit.add_argument("--workers", type=POSITIVE, default=2, help="Ray actors (default 2)")
    audit.add_argument("--gpus-per-worker", type=number_in(0, INF), default=0.0,
                       help="GPUs per Ray actor (default 0: CPU)")


def _compare_parser(sub: Any) -> None:
    compare = sub.add_parser(
        "compare", help="explain two models on the same photos and compare the heatmaps",
        description="Did quantization, fp16 or pruning change what the model looks at? "
        "Explains MODEL_A and MODEL_B on the same preprocessed photos for the same class (A's "
        "top-1 unless --target) and reports per image the top-1 agreement, the top-5 overlap, "
        "the Spearman correlation and SSIM of the two heatmaps and the IoU of their top "
        "pixels, with a summary: compare.json, compare.md and index.html (photo | heatmap A | "
        "heatmap B) in --out. Exit code 1 if any photo could not be read (the others "
        "complete).")
    compare.add_argument("model_a", help="the reference classifier .onnx (or its explainer)")
    compare.add_argument("model_b", help="the classifier to compare with it (or its explainer)")
    compare.add_argument("--images", nargs="+", required=True, metavar="IMAGE_OR_DIR",
                         help="photos and/or folders of photos")
    compare.add_argument("--target", type=at_least(0), default=None,
                         help="class to explain for every image (default: A's top-1)")
    compare.add_argument("--labels", default=None,
                         help="class names, one per line (default: ImageNet's for 1000 classes)")
    compare.add_argument("--preset", default=None, help="imagenet, inception, unit or a JSON "
                         "preset (default: A's stored preset, else B's, else imagenet)")
    compare.add_argument("--size", type=POSITIVE, default=None, help="custom input size")
    compare.add_argument("--top-fraction", type=number_in(0, 1, low_open=True), default=0.1,
                         help="the share of pixels of largest heat whose IoU is reported "
                         "(default 0.1)")
    _max_pixels(compare)
    compare.add_argument("-o", "--out", default="aeq-compare", help="output folder (default "
                         "aeq-compare; missing folders are created)")
    compare.add_argument("--batch-size", type=POSITIVE, default=8)
    compare.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    method_args(compare)


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
    web.add_argument("-o", "--out", required=True, help="the site folder to write (created)")
    web.add_argument("--labels", default=None,
                     help="class names, one per line (default: ImageNet's for 1000 classes)")
    web.add_argument("--preset", default=None, help="imagenet, inception, unit or a JSON "
                     "preset (default: the explainer's stored preset, else imagenet)")
    web.add_argument("--no-webgpu", action="store_true",
                     help="leave out the WebGPU runtime (27 MB smaller; WebAssembly only)")
    web.add_argument("--ort-dir", default=None, help="onnxruntime-web package folder "
                     "(default: web/node_modules of this checkout, or ./node_modules)")
    web.add_argument("--max-mb", type=number_in(0, INF, low_open=True), default=None,
                     help="largest explainer the page opens, in MB (default 1073.7: 1 GiB)")
    web.add_argument("--example", action="append", default=[], metavar="PHOTO",
                     help="a photo to include and explain when the page opens (repeatable)")
    web.add_argument("--serve", type=int, nargs="?", const=8000, default=None, metavar="PORT",
                     help="then serve the site on 127.0.0.1:PORT (default 8000) with COOP/COEP")
