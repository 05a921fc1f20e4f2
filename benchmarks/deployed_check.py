"""The six deployed torchvision variants of issue 22 at full size (224x224, seeded weights):
ResNet-50 and MobileNet-V2, each in QDQ (per channel, int8), QOperator and fp16
(``keep_io_types``), made by onnxruntime's own tools (``fixtures/deployed.py``), run through
``aeq build`` and ``aeq explain`` on a photo from the command line; per variant the build and
explain times, and the largest difference between the explainer's logits and the deployed
model's onnxruntime logits on a seeded batch. Prints a table and writes
``benchmarks/results/DEPLOYED.md``.

    python benchmarks/deployed_check.py [--archs resnet50 mobilenet_v2] [--variants ...]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.deployed import cached  # noqa: E402

PHOTO = ROOT / "fixtures" / "images" / "chelsea.jpg"
OUT = ROOT / "benchmarks" / "results" / "DEPLOYED.md"
SIZE = 224


def aeq(*args: object) -> float:
    """Run ``aeq`` (this checkout) with ``args``; its wall time in seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aeq_onnx.cli", *map(str, args)], check=True,
                   cwd=ROOT, capture_output=True, text=True)
    return time.perf_counter() - start


def logits_difference(model: Path, explainer: Path, fp16_input: bool) -> float:
    """Max |explainer logits - deployed model's logits| on a seeded batch of 2."""
    x = np.random.default_rng(0).standard_normal((2, 3, SIZE, SIZE)).astype(
        np.float16 if fp16_input else np.float32)
    plain = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = plain.run(None, {plain.get_inputs()[0].name: x})[0].astype(np.float32)
    sess = ort.InferenceSession(str(explainer), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {sess.get_inputs()[0].name: x,
                                "target": np.full(2, -1, np.int64)})[0]
    return float(np.abs(got - want).max())


def _difference(value: float) -> str:
    return "0 (equal)" if value == 0 else f"{value:.2g}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["resnet50", "mobilenet_v2"])
    parser.add_argument("--variants", nargs="+", default=["qdq", "qoperator", "fp16-io"])
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            for variant in args.variants:
                start = time.perf_counter()
                model = cached(arch, variant, SIZE)
                made = time.perf_counter() - start
                explainer = Path(tmp) / f"{arch}-{variant}.explainer.onnx"
                build = aeq("build", model, "-o", explainer)
                explain = aeq("explain", explainer, PHOTO, "-o", Path(tmp) / f"{arch}-{variant}")
                ops = sorted({n.op_type for n in onnx.load(str(model)).graph.node
                              if n.op_type.startswith(("Q", "Dequant", "Cast"))})
                exact = logits_difference(model, explainer, variant == "fp16")
                rows.append((arch, variant, made, build, explain, exact, ", ".join(ops)))
                print(rows[-1], flush=True)
    lines = [
        "# Deployed variants through the CLI",
        "",
        f"`python benchmarks/deployed_check.py` on {platform.machine()} "
        f"({platform.processor() or 'cpu'}), onnxruntime {ort.__version__}, onnx "
        f"{onnx.__version__}; {time.strftime('%Y-%m-%d')}. Times: wall seconds of one "
        "`aeq build` and one `aeq explain` of one photo (each a fresh process, isolation on), "
        "after the variant was made (its making time: quantization or conversion, once, "
        "cached).",
        "",
        "| model | variant | made (s) | aeq build (s) | aeq explain (s) | max logit difference | "
        "quantization/cast ops |",
        "|---|---|---|---|---|---|---|",
        *(f"| {a} | {v} | {m:.1f} | {b:.1f} | {e:.1f} | {_difference(x)} | {o} |"
          for a, v, m, b, e, x, o in rows),
    ]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
