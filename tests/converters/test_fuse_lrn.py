"""fuse_lrn: PyTorch's export of ``nn.LocalResponseNorm`` (Mul, Reshape, Pad, AveragePool,
Squeeze, Mul, Add, Pow, Div) becomes one LRN node with the same outputs; what is not exactly
that pattern stays as it is."""

from __future__ import annotations

import io
import warnings

import onnx
import pytest
import torch

from aeq_onnx.converters import fold_constants, fuse_lrn, infer_shapes, opset


def lrn_model(size: int, k: float = 2.0) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(),
        torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=k),
        torch.nn.Conv2d(8, 4, 3)).eval()


def export(module: torch.nn.Module, dynamo: bool, version: int) -> onnx.ModelProto:
    """The module exported for a [1, 3, 12, 12] input, then upgraded and constant-folded as
    the pipeline does before this pass."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, torch.randn(1, 3, 12, 12), buffer, dynamo=dynamo,
                          opset_version=version, verbose=False)
    model = onnx.load_from_string(buffer.getvalue())
    return fold_constants.run(infer_shapes.run(opset.run(model)))


@pytest.mark.parametrize("dynamo,version,size", [(False, 9, 1), (False, 9, 3), (False, 9, 5),
                                                  (True, 18, 5)],
                         ids=["torchscript-opset9-size1", "torchscript-opset9-size3",
                              "torchscript-opset9-size5", "dynamo-opset18-size5"])
def test_torch_lrn_becomes_one_node(same_outputs, ops, dynamo: bool, version: int,
                                    size: int) -> None:
    model = export(lrn_model(size), dynamo, version)
    fused = fuse_lrn.run(model)
    assert ops(fused) == ["Conv", "Relu", "LRN", "Conv"]
    lrn = next(n for n in fused.graph.node if n.op_type == "LRN")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in lrn.attribute}
    assert attrs["size"] == size
    assert attrs["alpha"] == pytest.approx(0.3) and attrs["beta"] == pytest.approx(0.75)
    assert attrs["bias"] == pytest.approx(2.0)
    same_outputs(model, fused, batches=(1,))


def test_even_window_is_left_alone(ops) -> None:
    """torch puts an even window's extra channel before c, ONNX's LRN after: not fused."""
    model = export(lrn_model(4), False, 9)
    assert fuse_lrn.run(model) is model
    assert "LRN" not in ops(model)


def test_squares_read_elsewhere_are_left_alone(ops) -> None:
    """When x·x also feeds something else, the pattern's nodes cannot go: not fused."""

    class Twice(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = lrn_model(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.inner[1](self.inner[0](x))
            return self.inner[3](self.inner[2](h)) + (h * h).mean()

    model = export(Twice().eval(), False, 9)
    squares = [n for n in model.graph.node if n.op_type == "Mul" and n.input[0] == n.input[1]]
    assert len(squares) == 1  # one x·x node, read by the LRN pattern and by the mean
    assert "LRN" not in ops(fuse_lrn.run(model))
