"""The other attribution methods the benchmark times on the same torch model (batch 1).

Each ``build_*`` returns a zero-argument callable that explains the benchmark input once;
setup (building the model, registering hooks, canonizers) happens before, untimed.

- ``torch_forward``: the eager forward pass, for scale;
- ``torch_ae``: AE by PyTorch autograd (``benchmarks/torch_ae.py``), top-1 target;
- ``zennit``: ``EpsilonPlusFlat`` with the torchvision canonizer (VGG: ``VGGCanonizer`` =
  ``SequentialMergeBatchNorm``; ResNet: ``ResNetCanonizer``) through ``zennit.attribution.
  Gradient``, output seeded with the top-1 one-hot inside the same call;
- ``gradcam``: Captum ``LayerGradCam`` at the AE split layer (VGG ``features.29``, the ReLU
  after conv5_3; ResNet ``layer4``), target given (top-1, computed beforehand);
- ``ig``: Captum ``IntegratedGradients``, zero baseline, 32 steps, ``internal_batch_size`` 32,
  target given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks import torch_ae

IG_STEPS = 32
IG_BATCH = 32
TORCH_METHODS = ("torch_forward", "torch_ae", "zennit", "gradcam", "ig")
_KEEP: list[contextlib.ExitStack] = []  # zennit's hooks stay registered while we time


def split_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the AE split tensor (Grad-CAM's layer)."""
    if hasattr(model, "layer4"):
        return model.layer4  # type: ignore[return-value]
    features = list(model.features)  # type: ignore[arg-type]
    return max((m for m in features if isinstance(m, nn.ReLU)), key=features.index)


def build_torch_forward(model: nn.Module, x: Tensor, target: int) -> Callable[[], Any]:
    def run() -> Tensor:
        with torch.no_grad():
            return model(x)
    return run


def build_torch_ae(model: nn.Module, x: Tensor, target: int) -> Callable[[], Any]:
    explainer = torch_ae.make_explainer(model)
    return lambda: explainer.explain(x)[0]


def build_zennit(model: nn.Module, x: Tensor, target: int) -> Callable[[], Any]:
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    canonizer = ResNetCanonizer() if hasattr(model, "layer4") else VGGCanonizer()
    stack = contextlib.ExitStack()
    attributor = stack.enter_context(
        Gradient(model=model, composite=EpsilonPlusFlat(canonizers=[canonizer])))
    _KEEP.append(stack)

    def top1(out: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(out.argmax(1), out.shape[1]).to(out.dtype)

    return lambda: attributor(x, top1)[1]


def build_gradcam(model: nn.Module, x: Tensor, target: int) -> Callable[[], Any]:
    from captum.attr import LayerGradCam

    cam = LayerGradCam(model, split_layer(model))
    return lambda: cam.attribute(x, target=target)


def build_ig(model: nn.Module, x: Tensor, target: int) -> Callable[[], Any]:
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)
    baseline = torch.zeros_like(x)
    return lambda: ig.attribute(x, baselines=baseline, target=target, n_steps=IG_STEPS,
                                internal_batch_size=IG_BATCH)


BUILDERS: dict[str, Callable[[nn.Module, Tensor, int], Callable[[], Any]]] = {
    "torch_forward": build_torch_forward,
    "torch_ae": build_torch_ae,
    "zennit": build_zennit,
    "gradcam": build_gradcam,
    "ig": build_ig,
}


def build(method: str, model: nn.Module, x: Tensor) -> Callable[[], Any]:
    """The timed callable of ``method`` on ``model`` and input ``x`` (top-1 target)."""
    with torch.no_grad():
        target = int(model(x).argmax(1)[0])
    return BUILDERS[method](model, x, target)
