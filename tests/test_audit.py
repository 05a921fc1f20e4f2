"""``aeq audit`` end to end on a tiny model: every method x metric, the reports, resuming,
per-item failures, targets from a class mapping, the sanity check and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from aeq_onnx.audit import GroundTruthSource, audit
from aeq_onnx.audit.metrics import energy_pointing_game, pointing_game
from aeq_onnx.audit.runners import ExplainerRunner
from aeq_onnx.audit.scoring import CurveSettings
from aeq_onnx.cli import main
from tests.helpers_models import audit_dataset

SIZE = 8
METHODS = "ae,gradient,gradcam,rise:masks=64"
METRICS = ("pointing", "energy", "outside_inside", "iou", "insertion_blur", "deletion_blur")


@pytest.fixture()
def data(tmp_path: Path) -> dict[str, Path]:
    """A model, five photos, their masks (one of the wrong size) and an unreadable photo."""
    return audit_dataset(tmp_path, 5, SIZE)


def run(data: dict[str, Path], out: str = "out", methods: str = METHODS, **kw: object):
    return audit(data["model"], GroundTruthSource([data["img"]], masks=data["masks"]),
                 methods=methods, out=data["root"] / out, preset="unit", size=SIZE,
                 curves=CurveSettings(steps=8), **kw)  # type: ignore[arg-type]


def test_every_method_gets_every_metric_and_three_reports(data: dict[str, Path]) -> None:
    result = run(data)
    report = json.loads(result.report["json"].read_text())
    assert report["methods"] == ["ae", "gradient", "gradcam", "rise:masks=64"]
    for method in report["methods"]:
        row = report["table"][method]
        assert row["cases"] == 5
        for metric in METRICS:
            assert row[metric] is not None and np.isfinite(row[metric]), (method, metric)
    assert len(result.run.rows) == 5 * 4 and not result.run.failures
    page = result.report["html"].read_text()
    assert "data:image/png;base64" in page and "<svg" in page and "http" not in page
    assert "| ae | 5 |" in result.report["md"].read_text()


def test_rows_agree_with_the_metrics_on_the_stored_heatmaps(data: dict[str, Path]) -> None:
    """The engine's wiring: a row's metrics are the metric functions of its heatmap and mask."""
    result = run(data, methods="ae,gradient")
    for row in result.run.rows:
        heat = np.load(data["root"] / "out" / row["heatmap"])
        mask = np.asarray(Image.open(data["masks"] / Path(row["path"]).name)) > 0
        assert row["pointing"] == float(pointing_game(heat, mask))
        assert row["energy"] == pytest.approx(energy_pointing_game(heat, mask))


def test_a_rerun_resumes_without_recomputing(data: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = run(data, methods="ae,gradient")
    before = json.loads(first.report["json"].read_text())["table"]

    def refuse(*_: object) -> np.ndarray:
        raise AssertionError("recomputed a stored result")

    monkeypatch.setattr(ExplainerRunner, "heat", refuse)
    second = run(data, methods="ae,gradient")
    assert json.loads(second.report["json"].read_text())["table"] == before
    assert len((data["root"] / "out" / "results.jsonl").read_text().splitlines()) == 10


def test_bad_items_are_reported_and_the_rest_completes(data: dict[str, Path]) -> None:
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(data["masks"] / "im1.png")  # wrong size
    (data["img"] / "im5.png").write_text("not an image")
    Image.fromarray(np.full((SIZE, SIZE), 255, np.uint8)).save(data["masks"] / "im5.png")
    result = run(data, methods="ae,ae:layer=no_such_tensor")
    items = " | ".join(f"{i}: {e}" for i, e in result.run.failures)
    assert "im1.png" in items and "4x4" in items
    assert "im5.png" in items
    assert "method ae:layer=no_such_tensor" in items
    assert {r["case"] for r in result.run.rows} == {"im0", "im2", "im3", "im4"}
    assert result.run.methods == ["ae"]


def test_targets_follow_the_class_mapping(data: dict[str, Path]) -> None:
    boxes = data["root"] / "boxes.json"
    boxes.write_text(json.dumps([{"image": f"im{k}.png", "box": [1, 1, 6, 6], "class": "thing"}
                                 for k in range(3)]))
    mapping = data["root"] / "mapping.txt"
    mapping.write_text("thing: 1-2\n")
    result = audit(data["model"], GroundTruthSource([data["img"]], boxes=boxes, mapping=mapping),
                   methods="gradient", out=data["root"] / "o", preset="unit", size=SIZE,
                   curves=CurveSettings(steps=4))
    from aeq_onnx.audit.forward import Forward

    forward = Forward(onnx.load(str(data["model"])), "NCHW")
    for row in result.run.rows:
        x = np.asarray(Image.open(row["path"]), np.float32).transpose(2, 0, 1)[None] / 255.0
        logits = forward.logits(x)[0]
        assert row["target"] == 1 + int(np.argmax(logits[1:3])), row
        assert row["class"] == "thing"


def test_sanity_check_rows_per_layer(data: dict[str, Path]) -> None:
    result = run(data, methods="ae,gradient", sanity_cases=2)
    layers = {r["step"] for r in result.run.sanity}
    assert len(layers) >= 2
    assert len(result.run.sanity) == 2 * 2 * len(layers)
    last = max(layers, key=int)
    for row in result.run.sanity:
        assert row["ssim"] is None or -1.0 <= row["ssim"] <= 1.0
    table = json.loads(result.report["json"].read_text())["table"]
    assert table["ae"]["sanity_ssim"] == pytest.approx(np.mean(
        [r["ssim"] for r in result.run.sanity if r["step"] == last and r["method"] == "ae"]))


def test_command_line_prints_the_table_and_exits_1_on_failures(
        data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", str(data["model"]), "--images", str(data["img"]), "--masks",
            str(data["masks"]), "--methods", "ae,gradient", "--preset", "unit", "--size", "8",
            "--steps", "4", "--out", str(data["root"] / "cli")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| ae | 5 |" in out and "report.html" in out
    (data["img"] / "broken.png").write_text("x")
    Image.fromarray(np.zeros((SIZE, SIZE), np.uint8)).save(data["masks"] / "broken.png")
    assert main(args) == 1
    assert "broken.png" in capsys.readouterr().err
    assert main([*args, "--methods", "nope"]) == 1
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_a_csv_manifest_gives_cases_with_boxes(data: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    manifest = data["root"] / "manifest.csv"
    lines = ["path,label,x0,y0,x1,y1"] + [f"img/im{k}.png,1,1,1,6,6" for k in range(3)]
    manifest.write_text("\n".join(lines) + "\n")
    args = ["audit", str(data["model"]), "--manifest", str(manifest), "--methods", "gradient",
            "--preset", "unit", "--size", "8", "--steps", "4", "--out", str(data["root"] / "m")]
    assert main(args) == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in (data["root"] / "m" / "results.jsonl").open()]
    assert len(rows) == 3 and {r["target"] for r in rows} == {1}
    assert all(r["pointing"] is not None for r in rows)


def images_in(page: str) -> dict[str, np.ndarray]:
    """The embedded PNGs of the examples table by alt text, decoded to arrays."""
    import base64
    import io
    import re

    found = re.findall(r'<img class="(photo|overlay|heat)" width="\d+" '
                       r'src="data:image/png;base64,([^"]+)" alt="([^"]+)">', page)
    return {alt: np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))
            for _, data, alt in found}


def test_html_examples_show_the_photo_and_each_methods_overlay_beside_its_heatmap(
        data: dict[str, Path]) -> None:
    from aeq_onnx.audit.report import scaled
    from aeq_onnx.render.imaging import colorize

    result = run(data, methods="ae,gradcam")
    images = images_in(result.report["html"].read_text())
    rows = {(r["case"], r["method"]): r for r in result.run.rows}
    assert len(images) == 4 * (1 + 2 * 2)  # 4 examples: photo, then overlay + heatmap twice
    for k in range(4):  # the first four cases by key
        photo = np.asarray(Image.open(data["img"] / f"im{k}.png").convert("RGB"))
        assert np.array_equal(images[f"photo im{k}"], photo)  # unit preset: no resize at 8 px
        grey = np.asarray(Image.fromarray(photo).convert("L"), np.float64)[:, :, None]
        for method in ("ae", "gradcam"):
            shown = scaled(np.load(data["root"] / "out" / rows[f"im{k}", method]["heatmap"]))
            assert np.abs(shown).max() == 1.0  # something to see: the overlay is not the photo
            color = colorize(shown)
            weight = 0.85 * np.abs(shown)[:, :, None]  # the overlay: heatmap over grey photo
            want = grey * (1 - weight) + color * weight
            assert np.abs(images[f"im{k}: {method} overlay"] - want).max() <= 0.5 + 1e-9
            assert np.array_equal(images[f"im{k}: {method} heatmap"], color)
