"""Independent torch references for the baseline methods (tests only).

Small torch classifiers (exported to ONNX by the tests) and the reference attributions:
Captum for the gradient family and Grad-CAM, Zennit for LRP, and own torch code where no
library fits (the Gaussian blur baseline, BatchNorm folding for Zennit).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite, layer_map_base
from zennit.layer import Sum
from zennit.rules import Epsilon, ZBox, ZPlus
from zennit.types import Linear as AnyLinear

#: Zennit's stabiliser for the rules other than ε: negligible in float64 (our rules are exact).
TINY = 1e-30
#: A contrast's seed on the logits: ``(logits [1, K], target [1]) -> s [1, K]``.
SeedFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ResCNN(nn.Module):
    """Conv+BN+ReLU, MaxPool, a residual block (Conv+BN+ReLU, Conv+BN, Add, ReLU), GAP, Linear.

    ``zennit_sum`` joins the residual by Zennit's ``Sum`` module (same values; Zennit then
    applies its z-rule there) instead of ``+``, which the ONNX export uses.
    """

    def __init__(self, classes: int = 5, batchnorm: bool = True, zennit_sum: bool = False):
        super().__init__()
        norm = (lambda c: nn.BatchNorm2d(c)) if batchnorm else (lambda c: nn.Identity())
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), norm(8), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), norm(8), nn.ReLU()
        self.conv3, self.bn3 = nn.Conv2d(8, 8, 3, padding=1), norm(8)
        self.sum, self.zennit_sum, self.relu3 = Sum(), zennit_sum, nn.ReLU()
        self.gap, self.flat, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.pool(self.relu1(self.bn1(self.conv1(x))))
        branch = self.bn3(self.conv3(self.relu2(self.bn2(self.conv2(short)))))
        joined = (self.sum(torch.stack([branch, short], dim=-1)) if self.zennit_sum
                  else branch + short)
        return self.fc(self.flat(self.gap(self.relu3(joined))))


class PlainChain(nn.Module):
    """Conv, ReLU, AvgPool, Conv, ReLU, AvgPool, Flatten, Linear (no BN, no join)."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(3, 6, 3), nn.ReLU(), nn.AvgPool2d(2)
        self.conv2, self.relu2 = nn.Conv2d(6, 8, 3, padding=1), nn.ReLU()
        self.pool2, self.flat, self.fc = nn.AvgPool2d(2), nn.Flatten(), nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool1(self.relu1(self.conv1(x)))
        return self.fc(self.flat(self.pool2(self.relu2(self.conv2(y)))))


class MLP(nn.Module):
    """Flatten, Linear, ReLU, Linear: the input layer is dense."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.flat, self.fc1, self.relu, self.fc2 = nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), (
            nn.Linear(16, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.flat(x))))


def seeded(model: nn.Module, seed: int) -> nn.Module:
    """``model`` in eval mode with seeded random weights and BN statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.1 if name.endswith("bias") else 0.5
            p.copy_(scale * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return model.eval()


def export(model: nn.Module, shape: tuple[int, ...], dynamic: bool = True) -> onnx.ModelProto:
    """``model`` exported by the TorchScript exporter at opset 17 (batch axis dynamic)."""
    buffer = io.BytesIO()
    axes = {"input": {0: "N"}, "logits": {0: "N"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, *shape),), buffer, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def output_of(model: onnx.ModelProto, node_name: str) -> str:
    """The first output tensor of the ONNX node called ``node_name``."""
    return next(n.output[0] for n in model.graph.node if n.name == node_name)


def targets(model: nn.Module, x: torch.Tensor, target: list[int] | None) -> torch.Tensor:
    """The explicit targets, or the top-1 class of each sample."""
    if target is not None:
        return torch.tensor(target)
    with torch.no_grad():
        return model(x).argmax(dim=1)


# ----------------------------------------------------------------------- blur baseline


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """2-D Gaussian over ±ceil(3σ) pixels, borders replicated, each channel alone (NCHW)."""
    radius = max(1, int(np.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).to(x.dtype)
    channels = x.shape[1]
    padded = torch.nn.functional.pad(x, (radius,) * 4, mode="replicate")
    weight = kernel.expand(channels, 1, *kernel.shape).contiguous()
    return torch.nn.functional.conv2d(padded, weight, groups=channels)


# ----------------------------------------------------------------------- LRP (Zennit)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy with every ``convN``/``bnN`` pair fused (BN replaced by Identity), as the ONNX
    converter folds BN into the Conv before the explainer's rules see it."""
    fused = copy.deepcopy(model)
    for name, module in list(fused.named_children()):
        if isinstance(module, nn.BatchNorm2d):
            conv_name = "conv" + name[2:]
            conv = getattr(fused, conv_name)
            setattr(fused, conv_name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, module))
            setattr(fused, name, nn.Identity())
    return fused


def zennit_lrp(model: nn.Module, x: np.ndarray, target: list[int] | None, rule: str,
               epsilon: float, seed: SeedFn | None = None) -> np.ndarray:
    """LRP by Zennit, one sample at a time in float64: ZBox (sample min/max) at the first
    layer, Epsilon(ε) or ZPlus at every other Conv/Linear, z-rule at Sum and AvgPool, Pass at
    activations; relevance seeded with ``one_hot(t) · logits``, or ``s · logits`` where
    ``s = seed(logits, t)`` (numpy ``[1, K]``, ``[1]``: a contrast's seed)."""
    net = fold_batchnorm(model).double().eval()
    if hasattr(net, "zennit_sum"):
        net.zennit_sum = True  # the join as Zennit's Sum module: its z-rule applies there
    xs = torch.from_numpy(x).double()
    ts = targets(net, xs, target)
    out = []
    for i in range(x.shape[0]):
        sample = xs[i : i + 1]
        hidden: Any = Epsilon(epsilon) if rule == "epsilon" else ZPlus(stabilizer=TINY)
        composite = SpecialFirstLayerMapComposite(
            layer_map=[*layer_map_base(TINY), (AnyLinear, hidden)],
            first_map=[(AnyLinear, ZBox(float(sample.min()), float(sample.max()),
                                        stabilizer=TINY))])
        with torch.no_grad():
            logits = net(sample)
        one_hot = torch.nn.functional.one_hot(ts[i : i + 1], logits.shape[1]).double()
        if seed is not None:
            one_hot = torch.from_numpy(seed(logits.numpy(), ts[i : i + 1].numpy())).double()
        with Gradient(net, composite) as attributor:
            _, relevance = attributor(sample, lambda logits, oh=one_hot: oh * logits)
        out.append(relevance.detach().numpy())
    return np.concatenate(out)


# ----------------------------------------------------------------------- Captum


def captum_attribution(model: nn.Module, x: np.ndarray, target: list[int] | None,
                       method: str, **kw: Any) -> np.ndarray:
    """Saliency (abs=False), InputXGradient or IntegratedGradients (riemann_middle) by Captum."""
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    xs = torch.from_numpy(x).double().requires_grad_(True)
    net = copy.deepcopy(model).double().eval()
    t = targets(net, xs, target)
    if method == "gradient":
        attr = Saliency(net).attribute(xs, target=t, abs=False)
    elif method == "gradient-x-input":
        attr = InputXGradient(net).attribute(xs, target=t)
    else:
        base = gaussian_blur(xs.detach(), kw["sigma"]) if kw["baseline"] == "blur" else (
            torch.zeros_like(xs))
        attr = IntegratedGradients(net).attribute(xs, baselines=base, target=t,
                                                  n_steps=kw["steps"], method="riemann_middle")
    return attr.detach().numpy()


def captum_gradcam(model: nn.Module, layer: nn.Module, x: np.ndarray,
                   target: list[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Captum's LayerGradCam (ReLU on) at ``layer`` and its bilinear upsampling to the input
    (``LayerAttribution.interpolate``: ``F.interpolate``, align_corners=False)."""
    from captum.attr import LayerAttribution, LayerGradCam

    net = copy.deepcopy(model).double().eval()
    layer = dict(net.named_modules())[next(n for n, m in model.named_modules() if m is layer)]
    xs = torch.from_numpy(x).double()
    cam = LayerGradCam(net, layer).attribute(xs, target=targets(net, xs, target),
                                             relu_attributions=True)
    up = LayerAttribution.interpolate(cam, tuple(x.shape[2:]), interpolate_mode="bilinear")
    return cam.detach().numpy(), up.detach().numpy()
