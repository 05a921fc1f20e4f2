"""Scene study: the two trained scene CNNs on the test scenes of seed 2 (exact target and
distractor masks from ``fixtures/scenes/generator.py``), correctly classified scenes only."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from aeq_onnx.audit.metrics import softmax_predictor
from benchmarks.contrast.metrics import localisation
from benchmarks.contrast.study import NAMES, randomised_nets, sample_metrics, study_batch
from fixtures.scenes.generator import make_scenes

ROOT = Path(__file__).resolve().parents[2]
SCENES = ROOT / "fixtures" / "scenes"
SEED = 2


def scene_arrays(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scenes 0..n-1 of seed 2: inputs (n, 3, 64, 64) in [-1, 1], labels, target masks and the
    union of the distractor masks (n, 64, 64)."""
    scenes = make_scenes(n, SEED)
    x = np.stack([(s.image.astype(np.float32) / 255.0 - 0.5) / 0.5 for s in scenes])
    dis = np.stack([np.any(np.stack(s.distractor_masks), axis=0) for s in scenes])
    return (np.ascontiguousarray(x.transpose(0, 3, 1, 2)), np.array([s.label for s in scenes]),
            np.stack([s.mask for s in scenes]), dis)


def run_scenes(model_name: str, n: int, out: Path, part: int = 0, parts: int = 1,
               batch: int = 16, chunk: int = 256, steps: int = 20,
               names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    """Every variant on the correctly classified scenes among 0..n-1 (batches of ``batch``; part
    ``part`` of ``parts`` contiguous shares of the batches); writes ``out`` (JSON)."""
    path = SCENES / f"{model_name}_scenes.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    predict = softmax_predictor(session)
    x, labels, masks, dis = scene_arrays(n)
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    correct = np.flatnonzero(logits.argmax(1) == labels)
    masked = logits.copy()
    masked[np.arange(n), labels] = -np.inf
    runner = masked.argmax(1)
    model = onnx.load(str(path))
    samples = []
    start = time.perf_counter()
    n_batches = -(-len(correct) // batch)
    mine = range(part * n_batches // parts, (part + 1) * n_batches // parts)
    for b in mine:
        idx = correct[b * batch:(b + 1) * batch]
        nets = randomised_nets(model, seed=b)  # a new random draw for every batch
        res = study_batch(nets, torch.from_numpy(x[idx]), torch.from_numpy(labels[idx]),
                          torch.from_numpy(runner[idx]), names, chunk)
        for j, i in enumerate(idx):
            row = sample_metrics(res, j, x[i], int(labels[i]), predict, steps)
            for name, metrics in row.items():
                metrics.update(localisation(res["top1"][name][j], masks[i], dis[i]))
            samples.append({"index": int(i), "target": int(labels[i]),
                            "runner_up": int(runner[i]), "metrics": row})
        print(f"  {model_name} part {part + 1}/{parts}: batch {b + 1 - mine.start}/{len(mine)}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    record = {"model": model_name, "scenes": n, "correct": len(correct), "steps": steps,
              "layers": nets.layers, "levels": sorted(nets.randomised), "samples": samples,
              "part": [part, parts], "batches": [mine.start, mine.stop],
              "seconds": round(time.perf_counter() - start, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return record
