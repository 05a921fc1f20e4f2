"""A straightforward PyTorch autograd implementation of Attribution Equilibrium (AE).

The baseline the benchmark compares the compiled explainer with: the rules of
``shared/docs/ae-rules.md`` written the way one would write them in PyTorch, module by module
over a torchvision VGG or ResNet, with every transposed product taken by torch autograd
(the usual LRP idiom: ``z = conv(x, W)``, ``s = R / z``, ``c = grad(z, x, s)``). Nothing is
fused or batched across terms; it is a faithful, unoptimised implementation, not a reference
(the tests use ``tests/reference/ae_torch.py`` for that).

Structure (spec sections in brackets):

- split tensor [2]: VGG ``features`` last ReLU (before the last MaxPool), ResNet ``layer4``;
- initial map [3]: ``R0 = A · mean_hw(∂y_t/∂A)``, ``R0 /= |Σ R0|``; ``t`` = top-1 by default;
- Conv [4.1-4.3] with BatchNorm folded into the convolution (as the ONNX export does), MaxPool
  [4.6], ReLU / BatchNorm pass-through [4.5], residual Add [4.7]: the branch with more
  convolutions (the residual branch) gets all of R, the shortcut nothing.

Every normalisation is per sample (spec 5), so a batch equals its samples explained one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

POOL_EPS = 1e-9
ConvFn = Callable[[Tensor, Tensor], Tensor]


def sdiv(a: Tensor, b: Tensor) -> Tensor:
    """``a / b`` where ``b != 0``, else 0."""
    nz = b != 0
    return torch.where(nz, a / torch.where(nz, b, torch.ones_like(b)), torch.zeros_like(a))


def bsum(t: Tensor) -> Tensor:
    """Per-sample sum over the non-batch axes, shape ``[N, 1, 1, 1]``."""
    return t.sum(dim=tuple(range(1, t.dim())), keepdim=True)


def grad_of(fn: Callable[[Tensor], Tensor], x: Tensor, s: Tensor, mask: Tensor | None = None,
            ) -> Tensor:
    """``x · (∂fn/∂x)^T sdiv(s, fn(x)·mask)`` by autograd: the LRP ``z, s, c`` idiom."""
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        z = fn(leaf)
        denom = z.detach() if mask is None else z.detach() * mask
        (c,) = torch.autograd.grad(z, leaf, sdiv(s, denom))
    return x * c


@dataclass(frozen=True)
class Conv:
    """A Conv2d with its BatchNorm folded in (bias dropped: the rules ignore it)."""

    weight: Tensor
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int

    @classmethod
    def of(cls, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None) -> Conv:
        w = conv.weight.detach()
        if bn is not None:
            assert bn.running_var is not None, "BatchNorm without running statistics"
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = w * scale.view(-1, 1, 1, 1)
        return cls(w, tuple(conv.stride), tuple(conv.padding),  # type: ignore[arg-type]
                   tuple(conv.dilation), conv.groups)

    def fn(self, w: Tensor) -> Callable[[Tensor], Tensor]:
        """``x -> conv(x, w)`` with this layer's geometry."""
        return lambda x: F.conv2d(x, w, None, self.stride, self.padding, self.dilation,
                                  self.groups)

    @property
    def pointwise(self) -> bool:
        return tuple(self.weight.shape[2:]) == (1, 1)


def conv_hidden(layer: Conv, x: Tensor, R: Tensor, ratio: float) -> Tensor:
    """Rules 4.1 (kernel > 1×1: ratio and shift) and 4.2 (1×1: neither)."""
    absw = layer.fn(layer.weight.abs())
    rp, rn = R.clamp(min=0), R.clamp(max=0)
    P, N = sdiv(rp, bsum(rp)), -sdiv(rn, bsum(rn))
    px = x.clamp(min=0)
    C = grad_of(absw, px, (P if layer.pointwise else ratio * P) + N)
    if not layer.pointwise:
        m = (C != 0).to(x.dtype)
        C = C - sdiv(m, bsum(m))
    a = (x > 0).to(x.dtype)
    Ap = grad_of(absw, a, P, (R >= 0).to(x.dtype))
    Bn = grad_of(absw, 1.0 - a, N, (R <= 0).to(x.dtype))
    return C + Ap + Bn


def conv_bounded(layer: Conv, x: Tensor, R: Tensor) -> Tensor:
    """Rule 4.3 (the Conv fed by the model input): bounded z^B with per-sample min/max."""
    lo = torch.ones_like(x) * x.amin(dim=(1, 2, 3), keepdim=True)
    hi = torch.ones_like(x) * x.amax(dim=(1, 2, 3), keepdim=True)
    w = layer.weight
    with torch.enable_grad():
        leaves = [t.detach().requires_grad_(True) for t in (x, lo, hi)]
        z = (layer.fn(w)(leaves[0]) - layer.fn(w.clamp(min=0))(leaves[1])
             - layer.fn(w.clamp(max=0))(leaves[2]))
        grads = torch.autograd.grad(z, leaves, sdiv(R, z.detach()))
    return x * grads[0] + lo * grads[1] + hi * grads[2]


def max_pool(pool: nn.MaxPool2d, x: Tensor, R: Tensor) -> Tensor:
    """Rule 4.6: z-rule on the positive part through the pool's own gradient."""
    return grad_of(pool, x.clamp(min=0) + POOL_EPS, R)


def initial_map(A: Tensor, g: Tensor) -> Tensor:
    """Section 3: ``R0 = A · mean_hw(g)`` normalised to ``|Σ R0| = 1`` per sample."""
    R0 = A * g.mean(dim=(2, 3), keepdim=True)
    return sdiv(R0, bsum(R0).abs())


def head_gradient(head: Callable[[Tensor], Tensor], A: Tensor, target: Tensor | None,
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, the target class (top-1 where ``target`` is None) and ``∂y_t/∂A``."""
    with torch.enable_grad():
        leaf = A.detach().requires_grad_(True)
        logits = head(leaf)
        t = logits.argmax(dim=1) if target is None else target
        onehot = F.one_hot(t, logits.shape[1]).to(logits.dtype)
        (g,) = torch.autograd.grad(logits, leaf, onehot)
    return logits.detach(), t, g


class VGGExplainer:
    """AE for a torchvision VGG: ``features`` walked in reverse down to the input."""

    def __init__(self, model: nn.Module, ratio: float = 2.0) -> None:
        self.model, self.ratio = model.eval(), ratio
        layers = list(model.features)  # type: ignore[arg-type]
        self.split = max(i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)) + 1
        self.body, self.rest = layers[:self.split], layers[self.split:]
        self.convs = {i: Conv.of(m) for i, m in enumerate(self.body) if isinstance(m, nn.Conv2d)}
        self.first = min(self.convs)

    def head(self, A: Tensor) -> Tensor:
        for m in self.rest:
            A = m(A)
        m = self.model
        return m.classifier(torch.flatten(m.avgpool(A), 1))  # type: ignore[operator]

    @torch.no_grad()
    def explain(self, x: Tensor, target: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(relevance shaped like ``x``, logits)."""
        inputs = []
        for m in self.body:
            inputs.append(x)
            x = m(x)
        logits, _, g = head_gradient(self.head, x, target)
        R = initial_map(x, g)
        for i in reversed(range(len(self.body))):
            R = self.back(i, inputs[i], R)
        return R, logits

    def back(self, i: int, x: Tensor, R: Tensor) -> Tensor:
        m = self.body[i]
        if isinstance(m, nn.Conv2d):
            if i == self.first:
                return conv_bounded(self.convs[i], x, R)
            return conv_hidden(self.convs[i], x, R, self.ratio)
        if isinstance(m, nn.MaxPool2d):
            return max_pool(m, x, R)
        return R  # ReLU, Dropout: pass-through


class ResNetExplainer:
    """AE for a torchvision ResNet (BasicBlock or Bottleneck): blocks in reverse; at each
    residual Add the residual branch (more convolutions) takes all of R (spec 4.7)."""

    def __init__(self, model: nn.Module, ratio: float = 2.0) -> None:
        self.model, self.ratio = model.eval(), ratio
        self.stem = Conv.of(model.conv1, model.bn1)  # type: ignore[arg-type]
        self.blocks = [b for name in ("layer1", "layer2", "layer3", "layer4")
                       for b in getattr(model, name)]
        self.branches = [self.branch(b) for b in self.blocks]

    @staticmethod
    def branch(block: nn.Module) -> list[Conv]:
        names = ("1", "2", "3") if hasattr(block, "conv3") else ("1", "2")
        return [Conv.of(getattr(block, "conv" + k), getattr(block, "bn" + k)) for k in names]

    def head(self, A: Tensor) -> Tensor:
        m = self.model
        return m.fc(torch.flatten(m.avgpool(A), 1))  # type: ignore[operator]

    def block_forward(self, block: nn.Module, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The block's output and the input of each branch convolution."""
        inputs, h = [x], x
        convs = ("1", "2", "3") if hasattr(block, "conv3") else ("1", "2")
        for k in convs:
            h = getattr(block, "bn" + k)(getattr(block, "conv" + k)(h))
            if k != convs[-1]:
                h = block.relu(h)  # type: ignore[operator]
                inputs.append(h)
        shortcut = x if block.downsample is None else block.downsample(x)  # type: ignore[operator]
        return block.relu(h + shortcut), inputs  # type: ignore[operator]

    @torch.no_grad()
    def explain(self, x: Tensor, target: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(relevance shaped like ``x``, logits)."""
        m = self.model
        stem_out = m.relu(m.bn1(m.conv1(x)))  # type: ignore[operator]
        h, saved = m.maxpool(stem_out), []  # type: ignore[operator]
        for block in self.blocks:
            h, inputs = self.block_forward(block, h)
            saved.append(inputs)
        logits, _, g = head_gradient(self.head, h, target)
        R = initial_map(h, g)
        for convs, inputs in zip(reversed(self.branches), reversed(saved), strict=True):
            for conv, xin in zip(reversed(convs), reversed(inputs), strict=True):
                R = conv_hidden(conv, xin, R, self.ratio)  # the shortcut receives nothing
        R = max_pool(m.maxpool, stem_out, R)  # type: ignore[arg-type]
        return conv_bounded(self.stem, x, R), logits


def make_explainer(model: nn.Module, ratio: float = 2.0) -> VGGExplainer | ResNetExplainer:
    """The AE explainer matching the torchvision architecture of ``model``."""
    if hasattr(model, "layer4"):
        return ResNetExplainer(model, ratio)
    if hasattr(model, "features") and hasattr(model, "classifier"):
        return VGGExplainer(model, ratio)
    raise TypeError(f"torch_ae handles torchvision VGG and ResNet models, not {type(model)}")
