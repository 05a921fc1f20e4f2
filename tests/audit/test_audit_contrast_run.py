"""The class-discriminative metrics in a real audit of a tiny model: distractor energy from a
manifest's context objects, class sensitivity from a second explanation per case, and the
weight-randomisation check (level 0 reproduces the map, the report is order-independent)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from aeq_onnx import compile_explainer
from aeq_onnx.audit import GroundTruthSource, audit
from aeq_onnx.audit.config import AuditConfig, AuditRun
from aeq_onnx.audit.forward import Forward
from aeq_onnx.audit.methods import parse_methods
from aeq_onnx.audit.metrics import distractor_energy, spearman
from aeq_onnx.audit.report import write
from aeq_onnx.audit.runners import ExplainerRunner
from aeq_onnx.audit.scoring import CurveSettings
from aeq_onnx.render.photos import load_image
from aeq_onnx.render.presets import get_preset, input_spec, preprocess
from tests.audit.test_report_order import spread
from tests.helpers_models import small_cnn

SIZE = 8
METHODS = "ae,gradient,rise:masks=16"
IMAGES = 4


def dataset(root: Path) -> Path:
    """``IMAGES`` photos, each a target (label 1) and a context distractor (label 2)."""
    rng = np.random.default_rng(0)
    for sub in ("img", "masks"):
        (root / sub).mkdir()
    rows = [["path", "label", "mask", "explain"]]
    for k in range(IMAGES):
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            root / "img" / f"im{k}.png")
        target, other = np.zeros((SIZE, SIZE), np.uint8), np.zeros((SIZE, SIZE), np.uint8)
        target[1:4, 1 + k % 2:5] = 255
        other[3:7, 5:8] = 255  # overlaps the target at row 3 when k = 1: the target keeps it
        Image.fromarray(target).save(root / "masks" / f"im{k}.png")
        Image.fromarray(other).save(root / "masks" / f"im{k}.other.png")
        rows += [[f"img/im{k}.png", "1", f"masks/im{k}.png", ""],
                 [f"img/im{k}.png", "2", f"masks/im{k}.other.png", "no"]]
    with (root / "manifest.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    onnx.save(small_cnn(), root / "model.onnx")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("contrast")
    manifest = dataset(root)
    result = audit(root / "model.onnx", GroundTruthSource(manifest=manifest), methods=METHODS,
                   out=root / "out", preset="unit", size=SIZE, curves=CurveSettings(steps=4),
                   class_sensitivity=True, randomisation_cases=2,
                   randomisation_levels=(0, 1, "all"))
    assert not result.run.failures
    return root, result


def sample(root: Path, k: int) -> np.ndarray:
    preset = get_preset("unit", size=SIZE)
    return preprocess(load_image(root / "img" / f"im{k}.png"), preset,
                      input_spec(["N", 3, SIZE, SIZE], preset))[0]


def mask(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)) > 0


def test_context_rows_are_distractors_not_cases(audited: tuple[Path, object]) -> None:
    root, result = audited
    rows = result.run.rows  # type: ignore[attr-defined]
    assert len(rows) == IMAGES * 3 and {r["class"] for r in rows} == {"1"}
    for row in rows:
        k = int(row["case"][2])
        heat = np.load(root / "out" / row["heatmap"])
        target = mask(root / "masks" / f"im{k}.png")
        other = mask(root / "masks" / f"im{k}.other.png")
        assert row["distractor_energy"] == pytest.approx(distractor_energy(heat, other, target))


def test_class_sensitivity_against_a_separate_explainer(audited: tuple[Path, object]) -> None:
    root, result = audited
    model = onnx.load(root / "model.onnx")
    batch = np.stack([sample(root, k) for k in range(IMAGES)])
    logits = Forward(model, "NCHW").logits(batch)
    runner = ExplainerRunner(compile_explainer(model, method="gradient"), "NCHW", "cpu", None)
    for row in result.run.rows:  # type: ignore[attr-defined]
        k = int(row["case"][2])
        order = np.argsort(-logits[k], kind="stable")
        second = order[0] if order[0] != row["target"] else order[1]
        assert row["runner_up"] == second
        if row["method"] == "gradient":
            heat = np.load(root / "out" / row["heatmap"])
            other = runner.heat(batch[k:k + 1], np.array([second]))[0]
            assert row["class_sensitivity"] == pytest.approx(spearman(heat, other))


def test_randomisation_levels(audited: tuple[Path, object]) -> None:
    root, result = audited
    rand = result.run.randomisation  # type: ignore[attr-defined]
    assert len(rand) == 2 * 3 * 3  # cases x methods x levels (0, 1, all = 2 tensors)
    assert {(r["step"], r["level"]) for r in rand} == {("0", "none"), ("1", "classifier"),
                                                      ("2", "all")}
    for r in rand:
        if r["step"] == "0":  # nothing re-drawn: the recompiled method gives the same map
            assert r["spearman"] == pytest.approx(1.0) and r["spearman_abs"] == pytest.approx(1)
    moved = [r["spearman"] for r in rand if r["step"] == "1" and r["method"] == "gradient"]
    assert max(moved) < 0.999
    cached = sorted(p.parent.name for p in (root / "out" / "explainers" / "randomised").glob(
        "*/gradient.onnx"))
    assert len(cached) == 3  # one explainer per randomised model, by content hash
    report = json.loads(result.report["json"].read_text())  # type: ignore[attr-defined]
    assert [p["tensors"] for p in report["randomisation"]["ae"]] == [0, 1, 2]
    assert report["table"]["gradient"]["rand_spearman"] == pytest.approx(float(np.mean(moved)))
    assert "class_sensitivity" in report["columns"] and "distractor_energy" in report["columns"]
    text = result.report["md"].read_text()  # type: ignore[attr-defined]
    assert "## Weight randomisation" in text and "| method | none (0) | classifier (1) |" in text
    assert "Weight randomisation" in result.report["html"].read_text()  # type: ignore[attr-defined]


def test_rerun_resumes_with_the_same_report(audited: tuple[Path, object]) -> None:
    root, result = audited
    first = result.report["json"].read_bytes()  # type: ignore[attr-defined]
    again = audit(root / "model.onnx", GroundTruthSource(manifest=root / "manifest.csv"),
                  methods=METHODS, out=root / "out", preset="unit", size=SIZE,
                  curves=CurveSettings(steps=4), class_sensitivity=True, randomisation_cases=2,
                  randomisation_levels=(0, 1, "all"))
    assert again.report["json"].read_bytes() == first


def test_randomisation_report_does_not_depend_on_row_order(audited: tuple[Path, object],
                                                           tmp_path: Path) -> None:
    root, result = audited
    run: AuditRun = result.run  # type: ignore[attr-defined]
    rng = np.random.default_rng(2)
    for r in run.randomisation:
        r["spearman"] = spread(rng)
    preset = get_preset("unit", size=SIZE)
    config = AuditConfig(parse_methods(METHODS), root / "out", preset,
                         input_spec(["N", 3, SIZE, SIZE], preset))
    info = {"model": "model.onnx", "sha256": "0" * 64}
    outputs = set()
    for seed in range(4):
        order = random.Random(seed)
        mixed = AuditRun(order.sample(run.rows, len(run.rows)), [], [], list(run.methods),
                         order.sample(run.randomisation, len(run.randomisation)))
        paths = write(mixed, config, info)
        outputs.add(tuple(paths[k].read_bytes() for k in ("json", "md", "html")))
    assert len(outputs) == 1


def test_command_line_flags(audited: tuple[Path, object], capsys: pytest.CaptureFixture[str],
                            ) -> None:
    from aeq_onnx.cli import main

    root, _ = audited
    out = root / "cli"
    code = main(["audit", str(root / "model.onnx"), "--manifest", str(root / "manifest.csv"),
                 "--methods", "gradient", "--preset", "unit", "--size", str(SIZE), "--steps",
                 "3", "--class-sensitivity", "--randomisation", "1", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    row = report["table"]["gradient"]
    assert {"distractor_energy", "class_sensitivity", "rand_spearman"} <= set(row)
    assert [p["level"] for p in report["randomisation"]["gradient"]] == ["classifier", "all"]
    assert "top-2 Spearman (info)" in capsys.readouterr().out
