"""Reading ONNX attributes and arguments for the op references: attributes as Python values,
int lists from inputs or attributes, explicit pads from ``auto_pad``, pooling windows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import onnx
import torch

Tensor = torch.Tensor


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """The node's attributes as Python values (strings decoded)."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def ints_arg(ins: Sequence[Tensor | None], index: int, at: dict, key: str) -> list[int] | None:
    """An int list from input ``index`` (newer opsets) or attribute ``key``."""
    if len(ins) > index and ins[index] is not None:
        return [int(v) for v in ins[index].reshape(-1).tolist()]  # type: ignore[union-attr]
    value = at.get(key)
    return None if value is None else [int(v) for v in value]


def resolve_pads(at: dict, hw: Sequence[int], k: Sequence[int], s: Sequence[int],
                 d: Sequence[int]) -> tuple[int, int, int, int]:
    """ONNX pads ``[top, left, bottom, right]`` from ``pads`` or ``auto_pad``."""
    mode = at.get("auto_pad", "NOTSET")
    if mode == "NOTSET":
        return tuple(at.get("pads", [0, 0, 0, 0]))  # type: ignore[return-value]
    if mode == "VALID":
        return (0, 0, 0, 0)
    begin, end = [], []
    for n, kk, ss, dd in zip(hw, k, s, d, strict=True):
        total = max((math.ceil(n / ss) - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


@dataclass(frozen=True)
class Window:
    """A 2-D pooling window: kernel, strides, dilations, ONNX pads ``[top, left, bottom,
    right]`` and the extra end padding ``(h, w)`` that ``ceil_mode`` needs."""

    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads: tuple[int, int, int, int]
    extra: tuple[int, int]

    @property
    def torch_pad(self) -> tuple[int, int, int, int]:
        """``F.pad`` argument for the pads plus the ceil-mode extra (last axis first)."""
        top, left, bottom, right = self.pads
        return (left, right + self.extra[1], top, bottom + self.extra[0])


def window(op: str, at: dict, x_shape: Sequence[int]) -> Window:
    """The window of an ONNX MaxPool / AveragePool node on an NCHW input."""
    if len(x_shape) != 4:
        raise NotImplementedError(f"{op} on a rank-{len(x_shape)} tensor")
    k = list(at["kernel_shape"])
    s = list(at.get("strides", [1, 1]))
    d = list(at.get("dilations", [1, 1]))
    top, left, bottom, right = resolve_pads(at, x_shape[2:], k, s, d)
    ceil = bool(at.get("ceil_mode", 0))
    extra = [_ceil_extra(n, kk, ss, dd, pb, pe, ceil)
             for n, kk, ss, dd, pb, pe in zip(x_shape[2:], k, s, d, (top, left),
                                              (bottom, right), strict=True)]
    return Window(k, s, d, (top, left, bottom, right), (extra[0], extra[1]))


def _ceil_extra(n: int, k: int, s: int, d: int, pb: int, pe: int, ceil: bool) -> int:
    """Extra end padding that makes the last ONNX ``ceil_mode`` window fit (0 without it).

    As in torch (and onnxruntime), a last window that would start inside the end padding is
    dropped; cells of the extra padding never count, not even with ``count_include_pad``.
    """
    eff = (k - 1) * d + 1
    span = n + pb + pe - eff
    out = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    return max((out - 1) * s + eff - (n + pb + pe), 0)
