"""The localisation benchmark (``benchmarks/bench_localisation.py``) end to end on a tiny
version: scenes written by the generator, both committed scene CNNs, every method and metric,
the sanity and weight-randomisation checks, distractor energy and class sensitivity, and the
Markdown document (the models are the committed ones; retraining is
``fixtures/scenes/train.py``'s job)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_localisation as bench

METRICS = ("pointing", "energy", "outside_inside", "iou", "insertion_blur", "deletion_blur",
           "sanity_ssim", "sanity_spearman_abs", "distractor_energy", "class_sensitivity",
           "rand_spearman", "rand_spearman_abs")


def test_tiny_benchmark_runs_every_method_and_metric(tmp_path: Path) -> None:
    doc = tmp_path / "L.md"
    assert bench.main(["--n", "3", "--sanity", "1", "--randomisation", "1", "--rise-masks", "64",
                       "--steps", "5",
                       "--out", str(tmp_path), "--doc", str(doc)]) == 0
    labels = ["ae:r=1", "ae:r=1.5", "ae", "gradient", "gradient-x-input",
              "integrated-gradients", "gradcam", "lrp-epsilon", "lrp-zplus", "rise:masks=64"]
    for name in ("vgg", "resnet"):
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert report["methods"] == labels and not report["failures"]
        for method in labels:
            row = report["table"][method]
            assert row["cases"] == 3
            missing = [m for m in METRICS if row.get(m) is None]
            assert not missing, (name, method, missing)
    text = doc.read_text()
    assert "## vgg_scenes.onnx" in text and "## resnet_scenes.onnx" in text
    assert text.count("### Weight randomisation") == 2 and "classifier (1)" in text
