"""Images per second of ``aeq audit`` on Ray with 1 and 2 local workers, and the local engine.

Model: the benchmarks' ``tiny`` torchvision ResNet (BasicBlock [1, 1, 1, 1], 10 classes,
seeded weights) exported at 64x64; ``--images`` random 64x64 photos (default 48), method
``ae``, insertion/deletion with 20 steps and the blur baseline, batch size 8, one onnxruntime
thread per session (the Ray CPU actors' setting; the local run uses the same).

Each Ray configuration starts its own local cluster (``num_cpus`` = workers) and writes into a
fresh output folder. Reported per run: wall time of the Ray pipeline (actor start-up included,
cluster start-up excluded), images/s over it, and images per *busy* actor-second (time spent in
``Worker.process``, the steady-state rate of one worker). Prints a Markdown table and writes
``benchmarks/results/RAY.md``::

    .venv/bin/python benchmarks/bench_ray.py [--images 48]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aeq_onnx.audit import GroundTruthSource, RayOptions, audit  # noqa: E402
from aeq_onnx.audit.scoring import CurveSettings  # noqa: E402
from benchmarks import models  # noqa: E402

SIZE = 64
BATCH = 8


def make_data(folder: Path, images: int) -> tuple[Path, Path]:
    """The tiny ResNet's ONNX export and ``images`` random photos."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    for k in range(images):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            folder / "img" / f"im{k:03d}.png")
    return models.export(models.TINY, SIZE, folder), folder / "img"


def one(model: Path, img: Path, out: Path, workers: int | None) -> dict[str, float]:
    """One audit: local (``workers`` None) or Ray with ``workers`` actors."""
    engine = None if workers is None else RayOptions(workers=workers)
    start = time.perf_counter()
    result = audit(model, GroundTruthSource([img]), methods="ae", out=out, preset="unit",
                   size=SIZE, curves=CurveSettings(steps=20), batch_size=BATCH, threads=1,
                   engine=engine)
    total = time.perf_counter() - start
    rows = len(result.run.rows)
    speed = getattr(result.run, "throughput", None)
    if speed is None:
        return {"rows": rows, "total_s": total, "wall_s": total, "rate": rows / total,
                "busy": rows / total}
    return {"rows": rows, "total_s": total, "wall_s": speed.wall_s, "rate": speed.images_per_s,
            "busy": speed.per_worker}


def table(results: dict[str, dict[str, float]]) -> str:
    """The Markdown table of the runs."""
    lines = ["| engine | images | audit() s | pipeline s | images/s | per worker, busy (img/s) |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {int(r['rows'])} | {r['total_s']:.1f} | {r['wall_s']:.1f} | "
                     f"{r['rate']:.2f} | {r['busy']:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    """CPU model and count of this machine."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPU cores visible, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    import ray

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model, img = make_data(Path(tmp), args.images)
        one(model, img, Path(tmp) / "warm", None)  # compile once, warm the caches
        for name, workers in (("local (1 thread)", None), ("ray, 1 worker", 1),
                              ("ray, 2 workers", 2)):
            results[name] = one(model, img, Path(tmp) / name.replace(" ", "_"), workers)
            print(f"{name}: {results[name]}", file=sys.stderr)
    text = table(results)
    print(text)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (ROOT / "benchmarks" / "results" / "RAY.md").write_text(
        "# aeq audit on Ray: images/s\n\n"
        f"- machine: {machine()}, shared with other jobs while measured\n"
        f"- date: {date}; ray {ray.__version__}\n"
        f"- command: `.venv/bin/python benchmarks/bench_ray.py --images {args.images}`\n"
        f"- model: tiny torchvision ResNet (BasicBlock [1,1,1,1], 10 classes) at {SIZE}x{SIZE};"
        f" {args.images} random photos; method ae; insertion/deletion 20 steps, blur baseline;"
        f" batch {BATCH}; 1 onnxruntime thread per session\n"
        "- `audit() s`: the whole call (Ray: cluster start-up included); `pipeline s`: the Ray"
        " dataset from start to last result (actor start-up included); `per worker, busy`:"
        " images per second of one actor while it works (steady state)\n\n"
        f"{text}\n")


if __name__ == "__main__":
    main()
