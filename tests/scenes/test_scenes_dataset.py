"""write_dataset / write_tiny: the files and the boxes.json format a user passes as
``--masks DIR`` and ``--boxes FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from fixtures.scenes.generator import CLASS_NAMES, bounding_box, make_scenes, write_dataset
from fixtures.scenes.tiny import write_tiny


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_write_dataset_files(tmp_path: Path) -> None:
    entries = write_dataset(tmp_path, 5, seed=9)
    scenes = make_scenes(5, seed=9)
    assert json.loads((tmp_path / "boxes.json").read_text(encoding="utf-8")) == entries
    assert (tmp_path / "labels.txt").read_text(encoding="utf-8").split() == list(CLASS_NAMES)
    for entry, scene in zip(entries, scenes, strict=True):
        name = entry["file"]
        assert np.array_equal(_png(tmp_path / "images" / name), scene.image)
        mask = _png(tmp_path / "masks" / name)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        assert np.array_equal(mask > 127, scene.mask)
        labels = _png(tmp_path / "distractors" / name)
        for k, m in zip(scene.distractor_labels, scene.distractor_masks, strict=True):
            assert np.array_equal(labels == k + 1, m)
        assert (labels > 0).sum() == sum(int(m.sum()) for m in scene.distractor_masks)


def test_boxes_json_format(tmp_path: Path) -> None:
    entries = write_dataset(tmp_path, 7, seed=9, size=96)
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert [e["file"] for e in entries] == names
    for entry in entries:
        assert set(entry) == {"file", "label", "class_name", "box", "distractors"}
        assert entry["class_name"] == CLASS_NAMES[entry["label"]]
        mask = _png(tmp_path / "masks" / entry["file"]) > 127
        assert mask.shape == (96, 96)
        assert entry["box"] == list(bounding_box(mask))
        for d in entry["distractors"]:
            assert d["label"] != entry["label"] and d["class_name"] == CLASS_NAMES[d["label"]]
            assert len(d["box"]) == 4


def test_write_tiny_writes_one_scene_per_class(tmp_path: Path) -> None:
    entries = write_tiny(tmp_path)
    assert sorted(e["label"] for e in entries) == list(range(6))
    assert len(list((tmp_path / "images").glob("*.png"))) == 6
