"""Class-discriminative metrics (issue 23) on hand-made masks and maps, and the weight
re-drawing of the randomisation check on a tiny model, against direct numpy computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from audit_models import layered_model
from onnx import numpy_helper

from aeq_onnx.audit.errors import MetricError
from aeq_onnx.audit.metrics import (
    class_sensitivity,
    distractor_energy,
    randomise_weights,
    weight_tensors,
)
from aeq_onnx.audit.randomisation import resolve_levels
from aeq_onnx.errors import InputError
from aeq_onnx.run.runtime import make_session

#: layered_model's weight tensors, output first (biases are not weight tensors).
WEIGHTS = ["out_w", "fc_w", "conv_w"]


def slow_distractor_energy(heat: np.ndarray, distractors: np.ndarray,
                           target: np.ndarray) -> float:
    """Pixel by pixel: positive relevance on a distractor pixel that is not a target pixel."""
    on, total = 0.0, 0.0
    for i in range(heat.shape[0]):
        for j in range(heat.shape[1]):
            value = heat[i, j] if heat[i, j] > 0 else 0.0
            total += value
            if distractors[i, j] and not target[i, j]:
                on += value
    return on / total


def test_distractor_energy_by_hand() -> None:
    heat = np.array([[4.0, -1.0, 0.0, 2.0],
                     [1.0, 3.0, -5.0, 0.0],
                     [0.0, 0.0, 6.0, 2.0]])
    target = np.zeros((3, 4), bool)
    target[:2, :2] = True                     # 4 + 1 + 3 = 8 of the positive 18
    distractors = np.zeros((3, 4), bool)
    distractors[1:, 1:] = True                # overlaps the target at (1, 1): that 3 is its
    # on a distractor and not the target: -5 -> 0, 0, 0, 6, 2 -> 8 of 18
    assert distractor_energy(heat, distractors, target) == pytest.approx(8 / 18)
    assert distractor_energy(heat, distractors) == pytest.approx(11 / 18)  # no target given
    assert distractor_energy(heat, np.zeros((3, 4), bool), target) == 0.0
    assert math.isnan(distractor_energy(-np.abs(heat), distractors, target))  # no R+ at all
    rng = np.random.default_rng(4)
    for _ in range(5):
        h = rng.normal(size=(9, 11))
        d, t = rng.random((9, 11)) < 0.3, rng.random((9, 11)) < 0.3
        assert distractor_energy(h, d, t) == pytest.approx(slow_distractor_energy(h, d, t),
                                                          abs=1e-12)
    with pytest.raises(MetricError):
        distractor_energy(heat, distractors[:2], target)
    with pytest.raises(MetricError):
        distractor_energy(heat, distractors, target[:, :3])


def test_class_sensitivity_is_the_rank_correlation() -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert class_sensitivity(a, a ** 3) == pytest.approx(1.0)      # same ranks
    assert class_sensitivity(a, -a) == pytest.approx(-1.0)
    b = np.array([[2.0, 1.0], [3.0, 4.0]])                           # one swap: ranks 2,1,3,4
    d2 = 1 + 1                                                       # sum of squared differences
    assert class_sensitivity(a, b) == pytest.approx(1 - 6 * d2 / (4 * (16 - 1)))
    assert math.isnan(class_sensitivity(a, np.ones((2, 2))))


def weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_weight_tensors_output_first() -> None:
    assert weight_tensors(layered_model()) == WEIGHTS


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_redrawing_changes_exactly_the_first_tensors(count: int) -> None:
    model = layered_model()
    before = weights(model)
    randomised = randomise_weights(model, count, seed=3)
    after = weights(randomised)
    for name, value in before.items():
        assert after[name].shape == value.shape and after[name].dtype == value.dtype
        assert (not np.array_equal(after[name], value)) is (name in WEIGHTS[:count]), name
    if count == 0:
        assert randomised.SerializeToString() == model.SerializeToString()
    for name in WEIGHTS[:count]:  # N(0, std^2) of its own values
        assert np.std(after[name]) == pytest.approx(np.std(before[name]), rel=0.25)
        assert abs(np.mean(after[name])) < 3 * np.std(before[name]) / math.sqrt(after[name].size)
    assert weights(model).keys() == before.keys()
    assert all(np.array_equal(weights(model)[k], v) for k, v in before.items())  # untouched
    x = np.random.default_rng(0).random((2, 3, 8, 8)).astype(np.float32)
    out = make_session(randomised, "cpu").run(None, {"x": x})[0]
    assert np.isfinite(out).all()


def test_redrawing_is_seeded_and_cumulative() -> None:
    model = layered_model()
    a = randomise_weights(model, 2, seed=5).SerializeToString()
    assert randomise_weights(model, 2, seed=5).SerializeToString() == a   # same bytes
    assert randomise_weights(model, 2, seed=6).SerializeToString() != a
    one, three = weights(randomise_weights(model, 1, 5)), weights(randomise_weights(model, 3, 5))
    assert np.array_equal(one["out_w"], three["out_w"])  # a level extends the one before
    assert np.array_equal(weights(randomise_weights(model, 2, 5))["fc_w"], three["fc_w"])
    with pytest.raises(MetricError):
        randomise_weights(model, -1)


def test_levels() -> None:
    assert resolve_levels((1, 5, 15, "all"), 40) == [(1, "classifier"), (5, "top 5"),
                                                    (15, "top 15"), (40, "all")]
    assert resolve_levels((1, 5, 15, "all"), 3) == [(1, "classifier"), (3, "all")]
    assert resolve_levels((0, 2), 3) == [(0, "none"), (2, "top 2")]
    with pytest.raises(InputError):
        resolve_levels((-1,), 3)
    with pytest.raises(InputError):
        resolve_levels(("some",), 3)


def test_manifest_context_rows_and_distractor_regions(tmp_path: Path) -> None:
    """``explain`` = no: the object is ground truth only; the case's distractors are the other
    classes' objects less its own region, and an object sharing its outputs is no distractor."""
    from PIL import Image

    from aeq_onnx.audit.datasets.manifest import load_manifest, manifest_cases

    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "a.png")
    rows = ["path,label,x0,y0,x1,y1,explain", "a.png,dog,0,0,3,3,", "a.png,cat,2,2,5,5,no",
            "a.png,puppy,0,4,2,6,0", "a.png,bird,5,5,6,6,maybe"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    result = load_manifest(tmp_path / "m.csv", {"dog": (1,), "cat": (2,), "puppy": (1,)},
                           strict=False)
    assert [e.item.endswith(":5") for e in result.errors] == [True]  # 'maybe' is refused
    (case,) = manifest_cases(result)
    assert case.key == "a.dog" and case.candidates == (1,)
    expected = np.zeros((6, 6), bool)
    expected[2:5, 2:5] = True        # the cat ...
    expected[:3, :3] = False         # ... less the dog's own region; the puppy shares output 1
    np.testing.assert_array_equal(case.original_distractors(), expected)
