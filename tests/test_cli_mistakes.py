"""Ordinary mistakes are never an internal error.

A table sweeps every command (``build``, ``explain`` with photos and with an ``.npy`` batch,
``inspect``, ``audit``, ``compare``, ``web``) and its options with ordinary mistakes. Each row
must print exactly one line on stderr (``aeq: error: ...`` for the whole command, ``aeq:
failed: ITEM: ...`` for one bad item), exit 1 (a mistake in the inputs) or 2 (a usage error,
unsupported ops), never 3, change no file it was given and leave no output file behind (an
item that failed leaves only the gallery, or the reports, listing it). Most rows run with
``--no-isolate`` (in-process checks, fast); the ``isolated-*`` rows run the default isolated
checks.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

import aeq_onnx
from aeq_onnx.audit import GroundTruthSource, audit
from aeq_onnx.cli import COMMANDS, main
from aeq_onnx.errors import InputError
from aeq_onnx.render import imaging
from tests.helpers_models import small_cnn


def _with_input(model: onnx.ModelProto, dims: list[int | str]) -> onnx.ModelProto:
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                dims))
    return model


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (CRC fixed): a decompression bomb
    as Pillow sees it, refused from the header."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inputs every row reads: models, photos, a batch, bad files and folders."""
    root = tmp_path_factory.mktemp("work")
    onnx.save(small_cnn(), root / "model.onnx")
    onnx.save(_with_input(small_cnn(), ["N", 3, 64, 64]), root / "m64.onnx")
    onnx.save(_with_input(small_cnn(), [1, 3, 65536, 65536]), root / "huge.onnx")
    onnx.save(small_cnn([("Sin", "sine")]), root / "sin.onnx")
    onnx.save(small_cnn(classes=3), root / "three.onnx")
    onnx.save(aeq_onnx.compile_explainer(small_cnn()), root / "explainer.onnx")
    (root / "text.onnx").write_text("this is not a model\n")
    (root / "folder.onnx").mkdir()
    np.save(root / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    rng = np.random.default_rng(0)
    for name in ("photos", "empty", "bad"):
        (root / name).mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)).save(
            root / "photos" / name)
    _bomb_png(root / "bad" / "bomb.png", 20000, 20000)
    Image.fromarray(rng.integers(0, 255, (1, 2000, 3), dtype=np.uint8)).save(
        root / "bad" / "strip.png")
    (root / "bad" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "file.txt").write_text("a regular file\n")
    (root / "labels3.txt").write_text("cat\ndog\ncar\n")
    return root


@dataclass(frozen=True)
class Row:
    """One command line with one mistake: exit codes allowed, the text the line must hold."""

    id: str
    argv: tuple[str, ...]
    codes: tuple[int, ...]
    message: str
    prefix: str = "aeq: error: "
    leaves: tuple[str, ...] = ()  # files the row may write under {new} (the gallery)


def row(id: str, line: str, codes: tuple[int, ...], message: str, **kw: object) -> Row:
    argv = tuple(line.split())
    if not id.startswith("isolated-"):
        argv = ("--no-isolate", *argv)
    return Row(id, argv, codes, message, **kw)  # type: ignore[arg-type]


FAILED = {"prefix": "aeq: failed: ", "leaves": ("index.html",)}
#: What an audit whose only case failed writes: its reports (listing the failure) and the
#: compiled explainer it resumes with; no heatmap.
AUDIT_FAILED = {"prefix": "aeq: failed: ", "leaves": (
    "explainers/ae.onnx", "report.html", "report.json", "report.md", "run.json")}
#: An audit whose only method failed to compile: the reports (listing the failure), no explainer.
METHOD_FAILED = {"prefix": "aeq: failed: ", "leaves": (
    "report.html", "report.json", "report.md", "run.json")}
M, P = "{w}/model.onnx", "{w}/photos"
AUDIT = f"audit {M} --images {P} --methods ae --steps 2"
WEB = "web {w}/explainer.onnx"
COMPARE = f"compare {M} {M}"
#: What a comparison whose only photo failed writes: its reports, listing the failure.
COMPARE_FAILED = {"prefix": "aeq: failed: ",
                  "leaves": ("compare.json", "compare.md", "index.html")}

ROWS = [
    row("no-command", "", (2,), "the following arguments are required: command"),
    row("unknown-command", "frobnicate", (2,), "invalid choice: 'frobnicate'"),
    # ------------------------------------------------------------------- build
    row("build-out-is-folder", f"build {M} -o {{w}}/photos", (1,), "is an existing folder"),
    row("build-out-under-file", f"build {M} -o {{w}}/file.txt/e.onnx", (1,),
        "file.txt' is a file, not a folder"),
    row("build-unwritable", f"build {M} -o /proc/aeq-e.onnx", (1,),
        "cannot write '/proc/aeq-e.onnx'"),
    row("build-input-is-output", f"build {M} -o {M}", (1,), "is also an input"),
    row("build-no-out", f"build {M}", (2,), "the following arguments are required: -o/--out"),
    row("build-unknown-method", f"build {M} -o {{new}}/e.onnx --method nope", (2,),
        "argument --method: invalid choice: 'nope'"),
    row("build-steps-0", f"build {M} -o {{new}}/e.onnx --method integrated-gradients --steps 0",
        (2,), "argument --steps: must be at least 1, got 0"),
    row("build-ratio-3", f"build {M} -o {{new}}/e.onnx --ratio 3", (2,),
        "argument --ratio: must lie in [1, 2], got 3"),
    row("build-epsilon-negative", f"build {M} -o {{new}}/e.onnx --epsilon -1", (2,),
        "must lie in [0, inf]"),
    row("build-contrast-unknown", f"build {M} -o {{new}}/e.onnx --contrast nope", (2,),
        "argument --contrast: invalid choice: 'nope'"),
    row("build-versus-below-minus-1", f"build {M} -o {{new}}/e.onnx --contrast versus "
        "--versus -2", (2,), "argument --versus: must be at least -1, got -2"),
    row("build-versus-text", f"build {M} -o {{new}}/e.onnx --contrast versus --versus cat",
        (2,), "argument --versus: 'cat' is not a whole number"),
    row("build-versus-out-of-range", f"build {M} -o {{new}}/e.onnx --contrast versus "
        "--versus 9", (1,), "versus=9 is not a class of this model (0..3)"),
    row("build-versus-without-contrast", f"build {M} -o {{new}}/e.onnx --versus 2", (1,),
        "add contrast='versus' (--contrast versus)"),
    row("build-layer-unknown", f"build {M} -o {{new}}/e.onnx --layer nope", (1,), "'nope'"),
    row("build-layer-with-gradient", f"build {M} -o {{new}}/e.onnx --method gradient --layer r",
        (1,), "layer= picks the split tensor"),
    row("build-model-is-folder", "build {w}/folder.onnx -o {new}/e.onnx", (1,),
        "is a directory, not an ONNX model file"),
    row("build-model-missing", "build {w}/missing.onnx -o {new}/e.onnx", (1,), "missing.onnx"),
    row("build-not-onnx", "build {w}/text.onnx -o {new}/e.onnx", (1,), "not an ONNX model"),
    row("build-unsupported-op", "build {w}/sin.onnx -o {new}/e.onnx", (2,),
        "unsupported node(s): Sin"),
    row("isolated-build-unsupported-op", "build {w}/sin.onnx -o {new}/e.onnx", (2,),
        "unsupported node(s): Sin"),
    # ------------------------------------------------------------ explain .npy
    row("npy-out-is-folder", f"explain {M} {{w}}/x.npy -o {{w}}/photos", (1,),
        "is an existing folder"),
    row("npy-out-under-file", f"explain {M} {{w}}/x.npy -o {{w}}/file.txt/r.npy", (1,),
        "file.txt' is a file, not a folder"),
    row("npy-unwritable", f"explain {M} {{w}}/x.npy -o /proc/aeq-r.npy", (1,),
        "cannot write '/proc/aeq-r.npy'"),
    row("npy-input-is-output", f"explain {M} {{w}}/x.npy -o {{w}}/x.npy", (1,),
        "is also an input"),
    row("npy-top-k-0", f"explain {M} {{w}}/x.npy --top-k 0", (2,),
        "argument --top-k: must be at least 1, got 0"),
    row("npy-top-k", f"explain {M} {{w}}/x.npy --top-k 2", (1,), "--top-k: for photos only"),
    row("npy-labels", f"explain {M} {{w}}/x.npy --labels {{w}}/labels3.txt", (1,),
        "--labels: for photos only"),
    row("npy-batch-size-0", f"explain {M} {{w}}/x.npy --batch-size 0", (2,),
        "argument --batch-size: must be at least 1, got 0"),
    row("npy-unknown-method", f"explain {M} {{w}}/x.npy --method nope", (2,), "invalid choice"),
    row("npy-versus-without-contrast", f"explain {M} {{w}}/x.npy --versus 1", (1,),
        "add contrast='versus'"),
    row("npy-model-is-folder", "explain {w}/folder.onnx {w}/x.npy", (1,), "is a directory"),
    row("npy-target-range", f"explain {M} {{w}}/x.npy --target 7", (1,),
        "target 7 is out of range"),
    row("npy-absurd-model", "explain {w}/huge.onnx {w}/x.npy -o {new}/r.npy", (1,),
        "does not match the model's"),
    row("npy-not-npy", f"explain {M} {{w}}/file.txt.npy", (1,), "as a .npy array"),
    row("npy-and-photos", f"explain {M} {{w}}/x.npy {P}/a.png", (1,), "not both"),
    # ---------------------------------------------------------- explain photos
    row("photos-out-is-file", f"explain {M} {P} -o {{w}}/file.txt", (1,),
        "is an existing file; give a folder"),
    row("photos-out-under-file", f"explain {M} {P} -o {{w}}/file.txt/out", (1,),
        "file.txt' is a file, not a folder"),
    row("photos-unwritable", f"explain {M} {P} -o /proc/aeq-out", (1,), "'/proc/aeq-out'"),
    row("photos-input-is-output", f"explain {M} {P} -o {P}", (1,), "is also an input"),
    row("photos-empty-folder", f"explain {M} {{w}}/empty -o {{new}}", (1,),
        "nothing to explain: ", ),
    row("photos-missing", f"explain {M} {{w}}/nope.png -o {{new}}", (1,),
        "no such file or folder"),
    row("photos-labels-count", f"explain {M} {P} --labels {{w}}/labels3.txt -o {{new}}", (1,),
        "3 labels in"),
    row("photos-labels-missing", f"explain {M} {P} --labels {{w}}/nope.txt -o {{new}}", (1,),
        "cannot read labels file"),
    row("photos-labels-folder", f"explain {M} {P} --labels {{w}}/empty -o {{new}}", (1,),
        "cannot read labels file"),
    row("photos-unknown-preset", f"explain {M} {P} --preset nope -o {{new}}", (1,),
        "unknown preset 'nope'"),
    row("photos-top-k-0", f"explain {M} {P} --top-k 0 -o {{new}}", (2,),
        "argument --top-k: must be at least 1, got 0"),
    row("photos-top-k-too-many", f"explain {M} {P} --top-k 9 -o {{new}}", (1,),
        "exceeds the model's 4 classes"),
    row("photos-batch-size-0", f"explain {M} {P} --batch-size 0 -o {{new}}", (2,),
        "argument --batch-size: must be at least 1, got 0"),
    row("photos-batch-size-negative", f"explain {M} {P} --batch-size -3 -o {{new}}", (2,),
        "must be at least 1, got -3"),
    row("photos-batch-size-text", f"explain {M} {P} --batch-size many -o {{new}}", (2,),
        "'many' is not a whole number"),
    row("photos-unknown-method", f"explain {M} {P} --method nope -o {{new}}", (2,),
        "invalid choice"),
    row("photos-contrast-unknown", f"explain {M} {P} --contrast nope -o {{new}}", (2,),
        "argument --contrast: invalid choice: 'nope'"),
    row("photos-versus-out-of-range", f"explain {M} {P} --contrast versus --versus 4 -o "
        "{new}", (1,), "versus=4 is not a class of this model (0..3)"),
    row("photos-model-is-folder", f"explain {{w}}/folder.onnx {P} -o {{new}}", (1,),
        "is a directory"),
    row("photos-absurd-model", f"explain {{w}}/huge.onnx {P} -o {{new}}", (1,),
        "65536x65536 = 4,294,967,296 pixels per image, over the limit of 16,777,216"),
    row("isolated-photos-absurd-model", f"explain {{w}}/huge.onnx {P} -o {{new}}", (1,),
        "over the limit of 16,777,216"),
    row("photos-max-pixels-0", f"explain {M} {P} --max-pixels 0 -o {{new}}", (2,),
        "argument --max-pixels: must be at least 1"),
    row("photos-percentile-0", f"explain {M} {P} --percentile 0 -o {{new}}", (2,),
        "must lie in (0, 100]"),
    row("photos-percentile-150", f"explain {M} {P} --percentile 150 -o {{new}}", (2,),
        "must lie in (0, 100]"),
    row("photos-mean-length", f"explain {M} {P} --mean 0.5,0.5 -o {{new}}", (1,),
        "mean has 2 values"),
    row("photos-mean-text", f"explain {M} {P} --mean a,b,c -o {{new}}", (1,),
        "not a comma-separated list"),
    row("photos-std-zero", f"explain {M} {P} --std 0,0,0 -o {{new}}", (1,), "std must not"),
    row("photos-size-mismatch", f"explain {M} {P} --size 16 -o {{new}}", (1,),
        "does not match the model's input 8x8"),
    row("photos-target-name", f"explain {M} {P} --target-name zebra -o {{new}}", (1,),
        "no class named 'zebra'"),
    row("photos-target-range", f"explain {M} {P} --target -5 -o {{new}}", (1,),
        "out of range"),
    row("photos-two-targets", f"explain {M} {P} --target 1 --top-k 2 -o {{new}}", (2,),
        "not allowed with argument"),
    row("photos-decompression-bomb", f"explain {M} {{w}}/bad/bomb.png -o {{new}}", (1,),
        "decompression bomb", **FAILED),
    row("photos-extreme-aspect", f"explain {M} {{w}}/bad/strip.png --max-pixels 100 "
        "-o {new}", (1,), "extreme aspect ratio", **FAILED),
    row("photos-corrupt", f"explain {M} {{w}}/bad/broken.jpg -o {{new}}", (1,),
        "as an image", **FAILED),
    # ------------------------------------------------------------------ inspect
    row("inspect-model-is-folder", "inspect {w}/folder.onnx", (1,), "is a directory"),
    row("inspect-model-missing", "inspect {w}/missing.onnx", (1,), "missing.onnx"),
    row("inspect-not-onnx", "inspect {w}/text.onnx", (1,), "not an ONNX model"),
    row("inspect-unknown-method", f"inspect {M} --method nope", (2,), "invalid choice"),
    row("inspect-steps-0", f"inspect {M} --steps 0", (2,), "must be at least 1"),
    row("inspect-layer-unknown", f"inspect {M} --layer nope", (1,), "'nope'"),
    row("inspect-layer-with-lrp", f"inspect {M} --method lrp-zplus --layer r", (1,),
        "layer= picks the split tensor"),
    row("inspect-out", f"inspect {M} -o {{new}}/e.onnx", (2,), "unrecognized arguments"),
    row("inspect-unsupported-op", "inspect {w}/sin.onnx", (2,), "1 unsupported node(s)",
        prefix="aeq: "),
    row("inspect-static-batch-ig", "inspect {w}/huge.onnx --method integrated-gradients", (2,),
        "static batch size 1"),
    row("isolated-inspect-unsupported-op", "inspect {w}/sin.onnx", (2,),
        "1 unsupported node(s)", prefix="aeq: "),
    # -------------------------------------------------------------------- audit
    row("audit-out-is-file", f"{AUDIT} --out {{w}}/file.txt", (1,), "is an existing file"),
    row("audit-out-under-file", f"{AUDIT} --out {{w}}/file.txt/a", (1,),
        "file.txt' is a file, not a folder"),
    row("audit-unwritable", f"{AUDIT} --out /proc/aeq-audit", (1,), "'/proc/aeq-audit'"),
    row("audit-input-is-output", f"{AUDIT} --out {P}", (1,), "is also an input"),
    row("audit-empty-folder", f"audit {M} --images {{w}}/empty --out {{new}}", (1,),
        "nothing to audit: "),
    row("audit-no-images", f"audit {M} --out {{new}}", (1,), "give --images"),
    row("audit-unknown-preset", f"{AUDIT} --preset nope --out {{new}}", (1,),
        "unknown preset 'nope'"),
    row("audit-batch-size-0", f"{AUDIT} --batch-size 0 --out {{new}}", (2,),
        "argument --batch-size: must be at least 1, got 0"),
    row("audit-steps-0", f"audit {M} --images {P} --steps 0 --out {{new}}", (2,),
        "argument --steps: must be at least 1, got 0"),
    row("audit-sanity-negative", f"{AUDIT} --sanity -1 --out {{new}}", (2,),
        "must be at least 0, got -1"),
    row("audit-workers-0", f"{AUDIT} --engine ray --workers 0 --out {{new}}", (2,),
        "argument --workers: must be at least 1, got 0"),
    row("audit-unknown-method", f"audit {M} --images {P} --methods nope --out {{new}}", (1,),
        "unknown method 'nope'"),
    row("audit-contrast-unknown", f"audit {M} --images {P} --methods ae:contrast=nope "
        "--out {new}", (1,), "contrast must be one of logit, softmax, margin, versus, dual",
        **METHOD_FAILED),
    row("audit-versus-without-contrast", f"audit {M} --images {P} --methods "
        "lrp-zplus:versus=1 --out {new}", (1,), "add contrast='versus'", **METHOD_FAILED),
    row("audit-baselines", f"{AUDIT} --baselines grey --out {{new}}", (1,),
        "--baselines takes blur, zero or both"),
    row("audit-model-is-folder", f"audit {{w}}/folder.onnx --images {P} --out {{new}}", (1,),
        "is a directory"),
    row("audit-explainer-as-model", f"audit {{w}}/explainer.onnx --images {P} --out {{new}}",
        (1,), "this is an explainer built by aeq build"),
    row("audit-absurd-model", f"audit {{w}}/huge.onnx --images {P} --out {{new}}", (1,),
        "65536x65536 = 4,294,967,296 pixels per image"),
    row("audit-max-pixels-0", f"{AUDIT} --max-pixels 0 --out {{new}}", (2,),
        "argument --max-pixels: must be at least 1"),
    row("audit-masks-missing", f"{AUDIT} --masks {{w}}/nope --out {{new}}", (1,),
        "mask folder not found"),
    row("audit-manifest-not-csv", f"{AUDIT} --manifest {{w}}/file.txt --out {{new}}", (1,),
        "no 'path' column"),
    row("audit-mapping-bad", f"{AUDIT} --mapping {{w}}/file.txt --out {{new}}", (1,),
        "want 'class name: targets'"),
    row("audit-voc-empty", f"{AUDIT} --voc {{w}}/empty --out {{new}}", (1,),
        "no Annotations/ folder"),
    row("audit-decompression-bomb", f"audit {M} --images {{w}}/bad/bomb.png --methods ae "
        "--steps 2 --out {new}", (1,), "decompression bomb", **AUDIT_FAILED),
    row("audit-extreme-aspect", f"audit {M} --images {{w}}/bad/strip.png --methods ae "
        "--steps 2 --max-pixels 100 --out {new}", (1,), "extreme aspect ratio", **AUDIT_FAILED),
    row("audit-corrupt", f"audit {M} --images {{w}}/bad/broken.jpg --methods ae --steps 2 "
        "--out {new}", (1,), "as an image", **AUDIT_FAILED),
    row("isolated-audit-absurd-model", f"audit {{w}}/huge.onnx --images {P} --out {{new}}", (1,),
        "over the limit of 16,777,216"),
    # ------------------------------------------------------------------ compare
    row("compare-no-images", f"{COMPARE} -o {{new}}", (2,),
        "the following arguments are required: --images"),
    row("compare-out-is-file", f"{COMPARE} --images {P} -o {{w}}/file.txt", (1,),
        "is an existing file"),
    row("compare-out-under-file", f"{COMPARE} --images {P} -o {{w}}/file.txt/c", (1,),
        "file.txt' is a file, not a folder"),
    row("compare-input-is-output", f"{COMPARE} --images {P} -o {P}", (1,), "is also an input"),
    row("compare-empty-folder", f"{COMPARE} --images {{w}}/empty -o {{new}}", (1,),
        "nothing to compare: "),
    row("compare-photo-missing", f"{COMPARE} --images {{w}}/nope.png -o {{new}}", (1,),
        "no such file or folder"),
    row("compare-model-missing", f"compare {M} {{w}}/missing.onnx --images {P} -o {{new}}",
        (1,), "missing.onnx"),
    row("compare-model-is-folder", f"compare {{w}}/folder.onnx {M} --images {P} -o {{new}}",
        (1,), "is a directory"),
    row("compare-not-onnx", f"compare {M} {{w}}/text.onnx --images {P} -o {{new}}", (1,),
        "not an ONNX model"),
    row("compare-unsupported-op", f"compare {M} {{w}}/sin.onnx --images {P} -o {{new}}", (2,),
        "unsupported node(s): Sin"),
    row("compare-classes-differ", f"compare {M} {{w}}/three.onnx --images {P} -o {{new}}",
        (1,), "model A has 4 classes and model B 3"),
    row("compare-sizes-differ", f"compare {M} {{w}}/m64.onnx --images {P} -o {{new}}", (1,),
        "compare needs the same input size"),
    row("compare-absurd-model", f"compare {{w}}/huge.onnx {M} --images {P} -o {{new}}", (1,),
        "over the limit of 16,777,216"),
    row("compare-target-range", f"{COMPARE} --images {P} --target 7 -o {{new}}", (1,),
        "target 7 is out of range"),
    row("compare-target-negative", f"{COMPARE} --images {P} --target -1 -o {{new}}", (2,),
        "must be at least 0"),
    row("compare-top-fraction-0", f"{COMPARE} --images {P} --top-fraction 0 -o {{new}}", (2,),
        "must lie in (0, 1]"),
    row("compare-batch-size-0", f"{COMPARE} --images {P} --batch-size 0 -o {{new}}", (2,),
        "argument --batch-size: must be at least 1, got 0"),
    row("compare-unknown-preset", f"{COMPARE} --images {P} --preset nope -o {{new}}", (1,),
        "unknown preset 'nope'"),
    row("compare-labels-count", f"{COMPARE} --images {P} --labels {{w}}/labels3.txt "
        "-o {new}", (1,), "3 labels in"),
    row("compare-unknown-method", f"{COMPARE} --images {P} --method nope -o {{new}}", (2,),
        "invalid choice"),
    row("compare-corrupt", f"{COMPARE} --images {{w}}/bad/broken.jpg -o {{new}}", (1,),
        "as an image", **COMPARE_FAILED),
    row("compare-decompression-bomb", f"{COMPARE} --images {{w}}/bad/bomb.png -o {{new}}",
        (1,), "decompression bomb", **COMPARE_FAILED),
    row("isolated-compare-unsupported-op",
        f"compare {M} {{w}}/sin.onnx --images {P} -o {{new}}", (2,), "unsupported node(s): Sin"),
    # ---------------------------------------------------------------------- web
    row("web-out-is-file", f"{WEB} -o {{w}}/file.txt", (1,), "is an existing file"),
    row("web-out-under-file", f"{WEB} -o {{w}}/file.txt/site", (1,),
        "file.txt' is a file, not a folder"),
    row("web-unwritable", f"{WEB} -o /proc/aeq-site", (1,), "'/proc/aeq-site"),
    row("web-input-is-output", f"{WEB} -o {{new}} --example {{new}}", (1,), "is also an input"),
    row("web-model-is-folder", "web {w}/folder.onnx -o {new}", (1,), "is a directory"),
    row("web-model-missing", "web {w}/missing.onnx -o {new}", (1,), "missing.onnx"),
    row("web-not-onnx", "web {w}/text.onnx -o {new}", (1,), "not an ONNX model"),
    row("web-unsupported-op", "web {w}/sin.onnx -o {new}", (2,), "1 unsupported node(s)"),
    row("web-absurd-model", "web {w}/huge.onnx -o {new}", (1,),
        "65536x65536 = 4,294,967,296 pixels per image"),
    row("web-labels-wrong-count", f"{WEB} -o {{new}} --labels {{w}}/labels3.txt", (1,),
        "3 labels in"),
    row("web-unknown-preset", f"{WEB} -o {{new}} --preset nope", (1,), "unknown preset 'nope'"),
    row("web-example-missing", f"{WEB} -o {{new}} --example {{w}}/nope.png", (1,),
        "no such example photo"),
    row("web-max-mb-0", f"{WEB} -o {{new}} --max-mb 0", (2,), "argument --max-mb: must lie in"),
    row("web-too-large", f"{WEB} -o {{new}} --max-mb 0.000001", (1,),
        "too large for the browser"),
    row("web-no-runtime", f"{WEB} -o {{new}} --ort-dir {{w}}/empty", (1,),
        "onnxruntime-web 1.30.0 not found"),
    row("isolated-web-absurd-model", "web {w}/huge.onnx -o {new}", (1,),
        "over the limit of 16,777,216"),
]


@pytest.fixture(autouse=True)
def no_huge_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    """A safety net: were the pixel limit ever bypassed, the 65536^2 rows would resize a photo
    to 22 GB and kill the machine; this fails them instead (an internal error, exit 3)."""
    real = Image.Image.resize

    def guarded(self: Image.Image, size: tuple[int, int], *args: object, **kw: object) -> object:
        if size[0] * size[1] > 10**8:
            raise RuntimeError(f"test guard: resize to {size}")
        return real(self, size, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Image.Image, "resize", guarded)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: size and modification time (ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ROWS, ids=[r.id for r in ROWS])
def test_an_ordinary_mistake_is_one_line_and_leaves_nothing(
        case: Row, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new"
    before = snapshot(work)
    code = main([a.format(w=work, new=new) for a in case.argv])
    out, err = capsys.readouterr()
    assert code in case.codes, err
    assert err.count("\n") == 1 and err.startswith(case.prefix), err
    assert case.message in err, err
    assert "Traceback" not in out + err and "internal error" not in err
    assert snapshot(work) == before  # no input changed, nothing written beside them
    written = sorted(str(p.relative_to(new)) for p in new.rglob("*") if p.is_file())
    assert written == list(case.leaves)


def test_the_sweep_covers_every_command() -> None:
    commands = {next(a for a in r.argv if not a.startswith("--")) for r in ROWS if r.argv[1:]}
    assert set(COMMANDS) <= commands  # and an unknown command
    npy = {r.id for r in ROWS if any(a.endswith(".npy") for a in r.argv[2:4])}
    assert len(npy) >= 10  # explain's .npy mode has its own rows


# --------------------------------------------------------------- what succeeds where it used not to


@pytest.mark.parametrize("line,made", [
    ("build {w}/model.onnx -o {new}/a/b/e.onnx", "a/b/e.onnx"),
    ("explain {w}/model.onnx {w}/x.npy -o {new}/a/b/r.npy", "a/b/r.npy"),
    ("explain {w}/model.onnx {w}/x.npy -o {new}/a/r", "a/r.npy"),
    ("explain {w}/model.onnx {w}/photos -o {new}/a/b", "a/b/index.html"),
    ("audit {w}/model.onnx --images {w}/photos --methods ae --steps 2 --out {new}/a/b",
     "a/b/report.json"),
], ids=["build", "explain-npy", "explain-npy-suffix", "explain-photos", "audit"])
def test_output_folders_are_created(work: Path, tmp_path: Path, line: str, made: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    new = tmp_path / "new"
    code = main(["--no-isolate", *line.format(w=work, new=new).split()])
    _, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert (new / made).is_file()
    assert not [p for p in new.rglob("*.part*")]


def test_declaring_a_huge_input_is_fine_where_nothing_is_resized(
        work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """build and inspect allocate nothing per input pixel: a 65536x65536 model compiles."""
    code = main(["--no-isolate", "build", str(work / "huge.onnx"), "-o", str(tmp_path / "e.onnx")])
    assert code == 0 and (tmp_path / "e.onnx").is_file()
    assert main(["--no-isolate", "inspect", str(work / "huge.onnx")]) == 0
    assert capsys.readouterr().err == ""


def test_the_pixel_limit_is_checked_before_any_photo_is_read(
        work: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No photo is opened for a model over the limit; ``--max-pixels`` (and ``max_pixels=``)
    moves the limit both ways."""
    opened: list[object] = []
    real = imaging.load_image
    monkeypatch.setattr(imaging, "load_image", lambda p: opened.append(p) or real(p))
    photos = str(work / "photos")
    args = ["--no-isolate", "explain", str(work / "m64.onnx"), photos, "--preset", "unit",
            "-o", str(tmp_path / "out")]
    assert main([*args, "--max-pixels", "4095"]) == 1 and opened == []
    assert "64x64 = 4,096 pixels per image, over the limit of 4,095" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*args, "--max-pixels", "4096"]) == 0 and len(opened) == 2
    with pytest.raises(InputError, match="over the limit of 63"):
        aeq_onnx.explain_images(work / "model.onnx", [photos], max_pixels=63)
    with pytest.raises(InputError, match="over the limit of 63"):
        audit(work / "model.onnx", GroundTruthSource([photos]), methods="ae",
              out=tmp_path / "a", max_pixels=63)
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------ failed writes leave nothing


def _disk_full(*_: object, **__: object) -> None:
    raise OSError(28, "No space left on device")


def test_a_failed_explainer_write_leaves_no_file(work: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def half_then_full(model: onnx.ModelProto, path: str) -> None:
        Path(path).write_bytes(model.SerializeToString()[:100])
        _disk_full()

    monkeypatch.setattr(onnx, "save_model", half_then_full)
    code = main(["--no-isolate", "build", str(work / "model.onnx"), "-o",
                 str(tmp_path / "e.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_relevance_write_leaves_no_file(work: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    real = np.save

    def half_then_full(file: object, array: np.ndarray, **kw: object) -> None:
        real(file, array[:1])  # type: ignore[arg-type]
        _disk_full()

    monkeypatch.setattr(np, "save", half_then_full)
    code = main(["--no-isolate", "explain", str(work / "model.onnx"), str(work / "x.npy"),
                 "-o", str(tmp_path / "r.npy")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "cannot write" in err
    assert list(tmp_path.iterdir()) == []


def test_an_image_that_cannot_be_written_leaves_no_file(work: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    """The PNG of b.png fails after its .npy was written: both go, a.png's files stay."""
    real = imaging.save_png

    def fail_for_b(image: object, path: os.PathLike[str]) -> None:
        real(image, path)
        if Path(path).name.startswith(".b."):
            _disk_full()

    monkeypatch.setattr(imaging, "save_png", fail_for_b)
    out = tmp_path / "out"
    code = main(["--no-isolate", "explain", str(work / "model.onnx"), str(work / "photos"),
                 "--top-k", "2", "-o", str(out)])
    text, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"aeq: failed: {work / 'photos' / 'b.png'}: cannot write")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["index.html", *(f"a.{c}" for c in _classes(text, "a.png"))])
    assert "b.png" in (out / "index.html").read_text()


def _classes(table: str, source: str) -> list[str]:
    """``K-class-K.npy`` and ``.png`` names of the rows of ``source`` in the summary table."""
    rows = [line for line in table.splitlines() if line.split()[:1]
            and line.split()[0].endswith(source)]
    found = [line.split("(")[1].split(")")[0] for line in rows]
    return [f"{k}-class-{k}.{ext}" for k in found for ext in ("npy", "png")]


def test_an_output_never_overwrites_an_input_photo(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Photos named like aeq's outputs, explained into their own folder: the photo whose panel
    would replace another input fails (one line); no input changes."""
    onnx.save(small_cnn(), tmp_path / "model.onnx")
    (tmp_path / "labels.txt").write_text("cat\ndog\ncar\ncup\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.png", "a.1-dog.png"):
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(photos / name)
    before = snapshot(photos)
    code = main(["--no-isolate", "explain", str(tmp_path / "model.onnx"), str(photos / "a.png"),
                 str(photos / "a.1-dog.png"), "--labels", str(tmp_path / "labels.txt"),
                 "--target", "1", "-o", str(photos)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"aeq: failed: {photos / 'a.png'}: its output a.1-dog.png would "
                          "overwrite an input photo")
    after = snapshot(photos)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["a-1-dog.1-dog.npy", "a-1-dog.1-dog.png",
                                                "index.html"]
