"""Annotation loaders: VOC XML, COCO JSON (polygons, RLE), mapping files, user boxes/masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aeq_onnx.audit.datasets import (
    decode_rle,
    load_boxes,
    load_coco,
    load_mapping,
    load_masks,
    load_voc,
    parse_mapping,
    polygons_to_mask,
    rle_counts_from_string,
    targets_for,
)
from aeq_onnx.audit.errors import AnnotationError, MappingError
from aeq_onnx.errors import AeqError


def image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 30)).save(path)


VOC = """<annotation><filename>{name}</filename>
<size><width>50</width><height>40</height><depth>3</depth></size>
<object><name>dog</name><difficult>0</difficult>
  <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object>
<object><name>cat</name><difficult>1</difficult>
  <bndbox><xmin>30</xmin><ymin>5</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>
</annotation>"""


def voc_tree(root: Path) -> None:
    (root / "Annotations").mkdir(parents=True)
    image(root / "JPEGImages" / "000001.jpg", (50, 40))
    image(root / "JPEGImages" / "000004.jpg", (60, 40))
    (root / "Annotations" / "000001.xml").write_text(VOC.format(name="000001.jpg"))
    (root / "Annotations" / "000002.xml").write_text("<annotation><object>")      # malformed
    (root / "Annotations" / "000003.xml").write_text(VOC.format(name="000003.jpg"))  # no image
    (root / "Annotations" / "000004.xml").write_text(VOC.format(name="000004.jpg"))  # wrong size


def test_voc_lenient_and_strict(tmp_path: Path) -> None:
    voc_tree(tmp_path)
    mapping = parse_mapping("dog: 151-153, 200\ncat: 281  # tabby\n")
    result = load_voc(tmp_path, mapping, strict=False)
    assert [i.path.name for i in result.items] == ["000001.jpg"]
    assert sorted(Path(e.item).name for e in result.errors) == [
        "000002.xml", "000003.xml", "000004.xml"]
    assert "malformed" in result.errors[0].message
    item = result.items[0]
    assert item.size == (50, 40)
    dog, cat = item.objects
    assert (dog.class_name, dog.targets, dog.box, dog.difficult) == (
        "dog", (151, 152, 153, 200), (0.0, 1.0, 10.0, 20.0), False)
    assert cat.targets == (281,) and cat.difficult
    assert item.targets() == [151, 152, 153, 200, 281]
    mask = item.mask_for(152)
    assert mask.shape == (40, 50) and mask.sum() == 10 * 19 and mask[1:20, 0:10].all()
    assert not item.mask_for(281, include_difficult=False).any()
    with pytest.raises(AnnotationError, match="000002"):
        load_voc(tmp_path, mapping)
    assert len(load_voc(tmp_path, ids=["000001"]).items) == 1


def test_rle_known_values() -> None:
    # counts 3, 2, 4, 1 (the 4th stored as -1 relative to counts[1]): hand-encoded "324O"
    assert rle_counts_from_string("324O") == [3, 2, 4, 1]
    assert rle_counts_from_string("T3") == [100]            # 100 = 4 + 3 * 32, two groups
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 0, 0, 1]], bool)   # column-major runs
    np.testing.assert_array_equal(decode_rle("324O", 2, 5), expected)
    np.testing.assert_array_equal(decode_rle([3, 2, 4, 1], 2, 5), expected)
    assert not decode_rle("T3", 10, 10).any()
    with pytest.raises(ValueError):
        decode_rle([3, 2], 2, 5)


def encode(counts: list[int]) -> str:
    """Slow reference encoder of the COCO compressed RLE string (for the round trip)."""
    out = []
    for i, c in enumerate(counts):
        x = c - (counts[i - 2] if i > 2 else 0)
        more = True
        while more:
            g = x & 0x1F
            x >>= 5
            more = (x != -1) if g & 0x10 else (x != 0)
            out.append(chr(48 + g + (0x20 if more else 0)))
    return "".join(out)


def test_rle_round_trip() -> None:
    mask = np.random.default_rng(0).random((23, 17)) < 0.3
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(flat.astype(int))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = list(np.diff(bounds))
    if flat[0]:
        counts = [0, *counts]
    np.testing.assert_array_equal(decode_rle(encode(counts), 23, 17), mask)


def test_polygon_rasterisation() -> None:
    mask = polygons_to_mask([[1, 1, 4, 1, 4, 4, 1, 4]], 6, 6)
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:5] = True
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError):
        polygons_to_mask([[1, 1, 2, 2]], 6, 6)


def test_coco(tmp_path: Path) -> None:
    image(tmp_path / "img" / "a.jpg", (5, 2))
    image(tmp_path / "img" / "b.jpg", (6, 6))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 5, "height": 2},
                   {"id": 2, "file_name": "b.jpg", "width": 6, "height": 6},
                   {"id": 3, "file_name": "missing.jpg"},
                   {"id": 4, "file_name": "b.jpg", "width": 6, "height": 6}],
        "annotations": [
            {"image_id": 1, "category_id": 18, "bbox": [1, 0, 4, 2], "iscrowd": 1,
             "segmentation": {"size": [2, 5], "counts": "324O"}},
            {"image_id": 2, "category_id": 17, "bbox": [1, 1, 3, 3],
             "segmentation": [[1, 1, 4, 1, 4, 4, 1, 4]]},
            {"image_id": 4, "category_id": 17, "bbox": [1, 1, 3, 3],
             "segmentation": {"size": [5, 5], "counts": [25]}},   # wrong RLE size
        ],
        "categories": [{"id": 17, "name": "cat"}, {"id": 18, "name": "dog"}],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    result = load_coco(path, tmp_path / "img", {"dog": (151,), "cat": (281, 282)}, strict=False)
    assert [i.path.name for i in result.items] == ["a.jpg", "b.jpg"]
    assert len(result.errors) == 2 and result.errors[0].item == "missing.jpg"
    dog = result.items[0].objects[0]
    assert dog.targets == (151,) and dog.box == (1.0, 0.0, 5.0, 2.0) and dog.difficult
    np.testing.assert_array_equal(dog.mask, decode_rle([3, 2, 4, 1], 2, 5))
    assert result.items[1].mask_for(282).sum() == 16
    with pytest.raises(AnnotationError):
        load_coco(path, tmp_path / "img")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AeqError):
        load_coco(tmp_path / "bad.json", tmp_path)


def test_mapping_formats(tmp_path: Path) -> None:
    text = "# ImageNet\ndog: 151-153\n\npotted plant: 738, 2-3\n"
    assert parse_mapping(text) == {"dog": (151, 152, 153), "potted plant": (2, 3, 738)}
    (tmp_path / "m.json").write_text(json.dumps({"dog": "151-152", "cat": [281, "283-284"]}))
    assert load_mapping(tmp_path / "m.json") == {"dog": (151, 152), "cat": (281, 283, 284)}
    (tmp_path / "m.txt").write_text(text)
    assert load_mapping(tmp_path / "m.txt")["dog"] == (151, 152, 153)
    for bad, line in [("dog 151", 1), ("ok: 1\ndog: 5-3", 2), ("dog: x", 1), ("a: 1\na: 2", 2),
                      (": 4", 1)]:
        with pytest.raises(MappingError, match=f"<mapping>:{line}"):
            parse_mapping(bad)
    (tmp_path / "bad.json").write_text(json.dumps({"dog": [-1]}))
    with pytest.raises(MappingError):
        load_mapping(tmp_path / "bad.json")
    assert targets_for("207", None) == (207,) and targets_for("dog", None) == ()
    assert targets_for("horse", {"dog": (1,)}) == ()


def test_user_boxes_csv_and_json(tmp_path: Path) -> None:
    image(tmp_path / "a.png", (20, 10))
    csv_text = "image,x0,y0,x1,y1,class\na.png,1,2,5,6,dog\na.png,0,0,2,2\nb.png,0,0,1,1,dog\n" \
               "a.png,5,5,1,1\na.png,x,0,1,1\n"
    (tmp_path / "boxes.csv").write_text(csv_text)
    result = load_boxes(tmp_path / "boxes.csv", tmp_path, {"dog": (3,)}, strict=False)
    assert len(result.items) == 1 and len(result.errors) == 3
    objects = result.items[0].objects
    assert [(o.class_name, o.targets, o.box) for o in objects] == [
        ("dog", (3,), (1.0, 2.0, 5.0, 6.0)), ("", (), (0.0, 0.0, 2.0, 2.0))]
    assert {e.item for e in result.errors} == {"b.png", f"{tmp_path / 'boxes.csv'}:5",
                                               f"{tmp_path / 'boxes.csv'}:6"}
    with pytest.raises(AnnotationError):
        load_boxes(tmp_path / "boxes.csv", tmp_path)
    entries = [{"image": "a.png", "box": [1, 1, 3, 3], "class": "7"}, {"image": "a.png"}]
    (tmp_path / "boxes.json").write_text(json.dumps(entries))
    result = load_boxes(tmp_path / "boxes.json", tmp_path, strict=False)
    assert result.items[0].objects[0].targets == (7,) and len(result.errors) == 1


def test_user_masks(tmp_path: Path) -> None:
    images, masks = tmp_path / "img", tmp_path / "masks"
    image(images / "a.jpg", (8, 6))
    image(images / "b.jpg", (8, 6))
    masks.mkdir()
    good = np.zeros((6, 8), np.uint8)
    good[1:3, 2:5] = 255
    Image.fromarray(good).save(masks / "a.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / "b.png")   # wrong size
    Image.fromarray(good).save(masks / "c.png")                         # no image
    result = load_masks(masks, images, "dog", {"dog": (5,)}, strict=False)
    assert [i.path.name for i in result.items] == ["a.jpg"]
    assert sorted(Path(e.item).name for e in result.errors) == ["b.png", "c.png"]
    np.testing.assert_array_equal(result.items[0].mask_for(5), good > 0)
    with pytest.raises(AnnotationError, match=r"b\.png"):
        load_masks(masks, images)
