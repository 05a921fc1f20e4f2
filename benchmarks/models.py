"""The benchmarked torch models and their ONNX exports.

``vgg16`` and ``resnet50`` come from ``fixtures/torchvision_models.py`` (seeded torchvision
weights, cached torchscript exports). ``tiny`` is a one-block-per-stage torchvision ResNet
(BasicBlock, 10 classes, 64 px) for the smoke test: same code paths, seconds instead of minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fixtures import torchvision_models

EXPORTER = "torchscript"
TINY = "tiny"


def build(name: str) -> Any:
    """The torch model ``name`` in eval mode with seeded weights (same every call)."""
    if name != TINY:
        return torchvision_models.build(name)
    import torch
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(torchvision_models.SEED)
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10).eval()


def export(name: str, size: int, workdir: Path) -> Path:
    """The ONNX export of ``name`` at ``size`` (fixtures' cache; ``tiny`` into ``workdir``)."""
    if name != TINY:
        return torchvision_models.export(name, EXPORTER, size=size)
    import torch

    path = workdir / f"{TINY}-{size}.onnx"
    with torch.no_grad():
        torch.onnx.export(build(name), (torch.randn(1, 3, size, size),), str(path),
                          dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path
