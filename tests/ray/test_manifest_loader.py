"""``aeq_onnx.audit.datasets.manifest``: images and ground truth from a CSV or Parquet manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aeq_onnx.audit.datasets.manifest import load_manifest, manifest_cases
from aeq_onnx.audit.errors import AnnotationError

ROWS = [
    {"path": "img/a.png", "label": "dog", "x0": 1, "y0": 1, "x1": 5, "y1": 6, "mask": ""},
    {"path": "img/a.png", "label": "cat", "x0": "", "y0": "", "x1": "", "y1": "", "mask": ""},
    {"path": "img/b.png", "label": "3", "x0": "", "y0": "", "x1": "", "y1": "",
     "mask": "masks/b.png"},
    {"path": "img/c.png", "label": "", "x0": "", "y0": "", "x1": "", "y1": "", "mask": ""},
    {"path": "img/missing.png", "label": "", "x0": "", "y0": "", "x1": "", "y1": "",
     "mask": ""},
    {"path": "img/c.png", "label": "x", "x0": 1, "y0": "", "x1": 3, "y1": 3, "mask": ""},
]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / "img" / f"{name}.png")
    mask = np.zeros((8, 10), np.uint8)
    mask[2:4, 3:7] = 255
    Image.fromarray(mask).save(tmp_path / "masks" / "b.png")
    return tmp_path


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def check(manifest: Path, root: Path) -> None:
    result = load_manifest(manifest, mapping={"dog": (1, 2), "cat": (0,)}, strict=False)
    assert sorted(e.item for e in result.errors) == [f"{manifest}:6", f"{manifest}:7"]
    assert "not found" in next(e.message for e in result.errors if e.item.endswith(":6"))
    a, b, c = result.items
    assert [(o.class_name, o.box) for o in c.objects] == [("", None)]  # row 7 was dropped
    assert a.path == root / "img" / "a.png" and a.size == (10, 8)
    assert [(o.class_name, o.targets, o.box) for o in a.objects] == [
        ("dog", (1, 2), (1.0, 1.0, 5.0, 6.0)), ("cat", (0,), None)]
    assert b.objects[0].mask is not None and b.objects[0].mask.sum() == 8
    cases = {case.key: case for case in manifest_cases(result)}
    assert set(cases) == {"a.dog", "a.cat", "b.3", "c"}
    assert cases["a.dog"].candidates == (1, 2) and cases["a.dog"].annotation is not None
    assert cases["a.cat"].annotation is None and cases["a.cat"].candidates == (0,)
    mask = cases["a.dog"].original_mask()
    assert mask is not None and mask.sum() == 4 * 5
    assert cases["b.3"].candidates == ()  # "3" is a class name under a mapping
    assert cases["c"].annotation is None and cases["c"].candidates == ()


def test_csv_manifest(root: Path) -> None:
    check(write_csv(root / "manifest.csv", ROWS), root)


def test_parquet_manifest(root: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{k: (None if v == "" else str(v) if k in ("path", "label", "mask") else float(v))
             for k, v in r.items()} for r in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), root / "manifest.parquet")
    check(root / "manifest.parquet", root)


def test_index_labels_without_mapping_and_strict_errors(root: Path) -> None:
    manifest = write_csv(root / "m.csv", [{"path": "img/a.png", "label": 7},
                                          {"path": "img/b.png", "label": ""}])
    cases = manifest_cases(load_manifest(manifest))
    assert [(c.key, c.candidates) for c in cases] == [("a.7", (7,)), ("b", ())]
    with pytest.raises(AnnotationError, match="no 'path' column"):
        load_manifest(write_csv(root / "bad.csv", [{"image": "img/a.png"}]))
    with pytest.raises(AnnotationError, match="not found"):
        load_manifest(write_csv(root / "gone.csv", [{"path": "nope.png"}]))
