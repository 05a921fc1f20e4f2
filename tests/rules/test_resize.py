"""Resize (and opset-9 Upsample, converted to Resize): the z-rule through its VJP (spec 4.9,
``R_in = x · VJP(sdiv(R, resize(x)))``) below the split, its VJP in the head, nearest and linear
modes with integer scales; other modes and non-integer factors refused. Explainer vs the torch
reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import aeq_onnx
from aeq_onnx.errors import UnsupportedOpError
from tests import helpers
from tests.helpers import Net, compare_with_reference, random_input
from tests.reference.registry import Ins, Node, reference
from tests.reference.relevance import z_through_vjp

#: (mode, coordinate_transformation_mode, nearest_mode) -> F.interpolate mode, align_corners
MODES = {
    ("nearest", "asymmetric", "floor"): ("nearest", None),
    ("nearest", "half_pixel", "round_prefer_floor"): ("nearest-exact", None),
    ("linear", "half_pixel", None): ("linear", False),
    ("linear", "pytorch_half_pixel", None): ("linear", False),
    ("linear", "align_corners", None): ("linear", True),
}


def interpolate(x: torch.Tensor, scales: torch.Tensor | None, sizes: torch.Tensor | None,
                at: dict) -> torch.Tensor:
    """ONNX Resize (integer scales or sizes) with ``F.interpolate``, for the mode combinations
    that torch has."""
    mode = str(at.get("mode", "nearest"))
    ctm = str(at.get("coordinate_transformation_mode", "half_pixel"))
    nearest = str(at.get("nearest_mode", "round_prefer_floor")) if mode == "nearest" else None
    key = (mode, ctm, nearest)
    if key not in MODES:
        raise NotImplementedError(f"Resize {key}")
    tmode, align = MODES[key]
    if sizes is not None:
        size = [int(v) for v in sizes.tolist()[2:]]
    else:
        assert scales is not None
        size = [math.floor(n * float(s)) for n, s in zip(x.shape[2:], scales.tolist()[2:],
                                                          strict=True)]
    if tmode == "linear":
        tmode = {3: "linear", 4: "bilinear"}[x.dim()]
    return F.interpolate(x, size=size, mode=tmode, align_corners=align)


@reference("Resize", relevance=z_through_vjp)
def resize_forward(ins: Ins, node: Node) -> torch.Tensor:
    """Resize with inputs ``(x, roi, scales[, sizes])``."""
    sizes = ins[3] if len(ins) > 3 else None
    return interpolate(ins[0], ins[2] if len(ins) > 2 else None, sizes,  # type: ignore[arg-type]
                       node.at)


@reference("Upsample", relevance=z_through_vjp)
def upsample(ins: Ins, node: Node) -> torch.Tensor:
    """Opset-9 Upsample ``(x, scales)``: asymmetric coordinates, floor for nearest."""
    at = {"mode": node.at.get("mode", "nearest"), "coordinate_transformation_mode": "asymmetric",
          "nearest_mode": "floor"}
    return interpolate(ins[0], ins[1], None, at)  # type: ignore[arg-type]


C = 6
SHAPE = (3, 6, 6)

#: name -> (scales, attrs)
CASES: dict[str, tuple[list[float], dict[str, str]]] = {
    "nearest-x2": ([1, 1, 2, 2], {"mode": "nearest"}),
    "nearest-asymmetric-floor-x3": ([1, 1, 3, 3], {
        "mode": "nearest", "coordinate_transformation_mode": "asymmetric",
        "nearest_mode": "floor"}),
    "nearest-h-only": ([1, 1, 2, 1], {"mode": "nearest"}),
    "linear-half-pixel-x2": ([1, 1, 2, 2], {"mode": "linear"}),
    "linear-pytorch-half-pixel-x2": ([1, 1, 2, 2], {
        "mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}),
    "linear-align-corners-x2": ([1, 1, 2, 2], {
        "mode": "linear", "coordinate_transformation_mode": "align_corners"}),
    "linear-w-only-x3": ([1, 1, 1, 3], {"mode": "linear"}),
}


def resize(net: Net, name: str) -> str:
    scales, attrs = CASES[name]
    roi = net.const(np.zeros(0, np.float32), "roi")
    return net.op("Resize", [net.cur, roi, net.const(np.asarray(scales, np.float32))], **attrs)


def model(name: str, seed: int) -> Net:
    """Conv → Relu (``early``) → Conv → Relu → Resize → Conv → Relu → head."""
    net = Net(SHAPE, seed=seed)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    resize(net, name)
    net.conv(C, 3, pads=1)
    net.relu()
    return net


@pytest.mark.parametrize("name", list(CASES))
def test_resize_below_split(name: str) -> None:
    net = model(name, seed=1)
    compare_with_reference(net.head(), random_input(SHAPE, seed=2, scale=2.0))


@pytest.mark.parametrize("name", list(CASES))
def test_resize_above_split(name: str) -> None:
    net = model(name, seed=3)
    compare_with_reference(net.head(), random_input(SHAPE, seed=4, scale=2.0), layer="early")


def test_resize_cubic_refused() -> None:
    net = Net(SHAPE, seed=5)
    net.conv(C, 3, pads=1)
    net.relu()
    roi = net.const(np.zeros(0, np.float32), "roi")
    net.op("Resize", [net.cur, roi, net.const(np.asarray([1, 1, 2, 2], np.float32))],
           mode="cubic")
    net.conv(C, 3, pads=1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match="Resize in cubic mode"):
        aeq_onnx.compile_explainer(net.head())


@pytest.mark.parametrize("where", ["below", "above"])
def test_upsample_opset9_nearest(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upsample (opset 9, nearest, integer scales) is converted to Resize by the opset pass."""
    monkeypatch.setattr(helpers, "OPSET", 9)
    net = Net(SHAPE, seed=6)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    net.op("Upsample", [net.cur, net.const(np.asarray([1, 1, 2, 2], np.float32))],
           mode="nearest")
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(SHAPE, seed=7),
                           layer="early" if where == "above" else None)


@pytest.mark.parametrize("scale", [1.5, 0.5], ids=["x1.5", "x0.5"])
def test_resize_non_integer_factor_refused(scale: float) -> None:
    net = Net(SHAPE, seed=8)
    net.conv(C, 3, pads=1)
    net.relu()
    roi = net.const(np.zeros(0, np.float32), "roi")
    net.op("Resize", [net.cur, roi, net.const(np.asarray([1, 1, scale, scale], np.float32))],
           mode="nearest")
    net.conv(C, 1)
    net.relu()
    with pytest.raises(UnsupportedOpError, match="non-integer factor"):
        aeq_onnx.compile_explainer(net.head())


@pytest.mark.xfail(raises=AssertionError, strict=True,
                   reason="onnxruntime's result for this opset-9 model changes when the "
                          "Upsample output is also made a graph output (9e-3 at the logits); "
                          "the converted Resize reproduces the Upsample output exactly "
                          "(test_upsample_opset9_linear_conversion)")
def test_upsample_opset9_linear_logits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(helpers, "OPSET", 9)
    net = Net(SHAPE, seed=1)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.conv(C, 3, pads=1)
    net.relu()
    net.op("Upsample", [net.cur, net.const(np.asarray([1, 1, 2, 2], np.float32))],
           mode="linear")
    net.conv(C, 3, pads=1)
    net.relu()
    compare_with_reference(net.head(), random_input(SHAPE, seed=1), layer="early")


def test_upsample_opset9_linear_conversion(monkeypatch: pytest.MonkeyPatch) -> None:
    """The opset pass keeps a linear Upsample-9's asymmetric coordinates (onnx's converter
    alone writes Resize's half_pixel default): same values before and after."""
    from onnx import helper as onnx_helper

    from aeq_onnx.converters import opset

    monkeypatch.setattr(helpers, "OPSET", 9)
    net = Net(SHAPE, seed=1)
    net.conv(C, 3, pads=1)
    net.relu(name="early")
    net.op("Upsample", [net.cur, net.const(np.asarray([1, 1, 2, 2], np.float32))],
           mode="linear")
    model = net.head()
    upsample = next(n for n in model.graph.node if n.op_type == "Upsample")
    model.graph.output.append(onnx_helper.make_tensor_value_info(upsample.output[0], 1, None))
    x = random_input(SHAPE, seed=1)
    before = [helpers.session(model).run(None, {"input": x})[1]]
    converted = opset.run(model)
    after = helpers.session(converted).run(None, {"input": x})[1]
    np.testing.assert_allclose(after, before[0], rtol=0, atol=1e-6)
    resize = next(n for n in converted.graph.node if n.op_type == "Resize")
    modes = {a.name: onnx_helper.get_attribute_value(a) for a in resize.attribute}
    assert modes["coordinate_transformation_mode"] == b"asymmetric"
