"""The scenes generator: determinism, exact masks and boxes, distractors of other classes."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.scenes.generator import (
    CLASSES,
    NUM_CLASSES,
    Scene,
    bounding_box,
    make_arrays,
    make_scene,
    make_scenes,
    shape_mask,
)

SCENES = make_scenes(36, seed=11)


def _arrays(scene: Scene) -> list[np.ndarray]:
    return [scene.image, scene.mask, *scene.distractor_masks]


def test_same_seed_same_scene() -> None:
    for index in (0, 5):
        a, b = make_scene(11, index), make_scene(11, index)
        assert (a.label, a.box, a.distractor_labels) == (b.label, b.box, b.distractor_labels)
        assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b), strict=True))
    assert all(np.array_equal(x.image, y.image) for x, y in zip(SCENES, make_scenes(36, 11),
                                                                 strict=True))


def test_other_seed_or_index_other_scene() -> None:
    base = make_scene(11, 0, label=0)
    assert not np.array_equal(base.image, make_scene(12, 0, label=0).image)
    assert not np.array_equal(base.image, make_scene(11, 1, label=0).image)


def test_arrays_types_and_balance() -> None:
    images, labels = make_arrays(12, seed=3)
    assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
    assert labels.tolist() == [i % NUM_CLASSES for i in range(12)]


def test_classes_need_shape_and_texture() -> None:
    assert len(set(CLASSES)) == NUM_CLASSES == 6
    for position in (0, 1):
        values = [c[position] for c in CLASSES]
        assert all(values.count(v) == 2 for v in values)


@pytest.mark.parametrize("scene", SCENES[:12], ids=lambda s: str(s.label))
def test_target_mask_and_box(scene: Scene) -> None:
    h, w = scene.mask.shape
    assert scene.mask.dtype == np.bool_ and (h, w) == scene.image.shape[:2]
    assert scene.mask.sum() > 100
    x0, y0, x1, y1 = scene.box
    assert scene.box == bounding_box(scene.mask)
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert scene.mask[y0:y1, x0:x1].sum() == scene.mask.sum()
    assert scene.mask[y0, x0:x1].any() and scene.mask[y1 - 1, x0:x1].any()


def test_masks_cover_the_painted_objects() -> None:
    """Objects are painted in one dark (< 90) and one light (>= 165) colour plus noise (sd 8):
    under a correct mask almost no pixel is mid-grey, and both colours show."""
    for scene in SCENES:
        for mask in (scene.mask, *scene.distractor_masks):
            grey = scene.image[mask].astype(float).mean(axis=1)
            assert ((grey > 120) & (grey < 135)).mean() < 0.01
            assert (grey < 120).mean() > 0.1 and (grey > 135).mean() > 0.1


def test_distractors_other_classes_disjoint_smaller() -> None:
    counts = set()
    for scene in SCENES:
        counts.add(len(scene.distractor_labels))
        assert scene.label not in scene.distractor_labels
        assert len(set(scene.distractor_labels)) == len(scene.distractor_labels)
        for mask, box in zip(scene.distractor_masks, scene.distractor_boxes, strict=True):
            assert mask.any() and box == bounding_box(mask)
            assert not (mask & scene.mask).any()
            assert mask.sum() < scene.mask.sum()
    assert counts == {1, 2}


def test_image_size_scales() -> None:
    small, large = make_scene(4, 0, size=64), make_scene(4, 0, size=128)
    assert large.image.shape == (128, 128, 3) and large.mask.shape == (128, 128)
    assert 3.0 < large.mask.sum() / small.mask.sum() < 5.5
    with pytest.raises(ValueError):
        make_scene(4, 0, size=256)


@pytest.mark.parametrize(("shape", "area"), [("disc", np.pi * 0.72**2), ("square", 1.32**2),
                                             ("triangle", 3 * np.sqrt(3) / 4)])
def test_shape_areas(shape: str, area: float) -> None:
    c = np.arange(400) - 199.5
    u, v = np.meshgrid(c, c)
    assert shape_mask(shape, u, v, 150.0).sum() / 150.0**2 == pytest.approx(area, rel=0.02)
