"""Convolution geometry for the emitted graph: a Conv/pool window's explicit attributes, the
transposed convolution's attributes and kernel, and the nodes that run ``conv`` / ``convT``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aeq_onnx.ir.emit import Emitter


@dataclass(frozen=True)
class ConvGeometry:
    """Explicit attributes of a Conv/pool window (no auto_pad), with static spatial sizes."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int
    in_spatial: tuple[int, ...]
    out_spatial: tuple[int, ...]

    def conv_attrs(self) -> dict[str, object]:
        """Attributes for a Conv node with this geometry."""
        return {
            "kernel_shape": list(self.kernel),
            "strides": list(self.strides),
            "pads": list(self.pads),
            "dilations": list(self.dilations),
            "group": self.group,
        }

    def floor_pads(self) -> list[int]:
        """Pads whose floor-mode window count equals ``out_spatial`` (ceil mode made explicit)."""
        dims = len(self.kernel)
        pads = list(self.pads)
        for i in range(dims):
            reach = (self.out_spatial[i] - 1) * self.strides[i] + self.dilations[i] * (
                self.kernel[i] - 1
            ) + 1
            pads[i + dims] += max(0, reach - self.in_spatial[i] - pads[i] - pads[i + dims])
        return pads

    def transpose_attrs(self) -> dict[str, object]:
        """Attributes for the ConvTranspose that is the VJP of this Conv, cropped to ``in_spatial``.

        ConvTranspose gives ``s·(o-1) + d·(k-1) + 1 - p_begin - p_end + output_padding``; the
        output padding is chosen to land on the input size; :meth:`floor_pads` has already raised
        the end pad where the forward windows ran past the padded input (ceil mode), so the
        output padding is never negative.
        """
        dims = len(self.kernel)
        pads = self.floor_pads()
        out_pad = []
        for i in range(dims):
            natural = (
                self.strides[i] * (self.out_spatial[i] - 1)
                + self.dilations[i] * (self.kernel[i] - 1)
                + 1
                - pads[i]
                - pads[i + dims]
            )
            out_pad.append(self.in_spatial[i] - natural)
        attrs = self.conv_attrs()
        attrs["pads"] = pads
        attrs["output_padding"] = out_pad
        return attrs

    def transpose_as_conv_attrs(self) -> dict[str, object] | None:
        """Attributes of a Conv that equals this geometry's transposed convolution when applied
        with :func:`flip_transpose` weights (stride 1 only; None otherwise).

        A stride-1 ConvTranspose is a full correlation with the flipped, transposed kernel,
        cropped by its pads: a Conv padded by ``d·(k-1) - p`` per side (+ output padding at the
        end). onnxruntime runs Conv markedly faster than ConvTranspose.
        """
        if any(s != 1 for s in self.strides):
            return None
        attrs = self.transpose_attrs()
        pads, extra = list(attrs["pads"]), list(attrs["output_padding"])  # type: ignore[call-overload]
        dims = len(self.kernel)
        spans = [self.dilations[i] * (self.kernel[i] - 1) for i in range(dims)]
        begin = [spans[i] - pads[i] for i in range(dims)]
        end = [spans[i] - pads[i + dims] + extra[i] for i in range(dims)]
        if min(begin + end) < 0:
            return None
        return {**self.conv_attrs(), "pads": begin + end}


def flip_transpose(w: np.ndarray, group: int) -> np.ndarray:
    """Conv weights ``[Cout, Cin/g, k...]`` as the kernel of their transposed convolution:
    ``[Cin, Cout/g, k...]`` per group, spatially flipped."""
    cout, cin_g, *kernel = w.shape
    grouped = w.reshape(group, cout // group, cin_g, *kernel).swapaxes(1, 2)
    flipped = grouped.reshape(group * cin_g, cout // group, *kernel)
    return np.ascontiguousarray(np.flip(flipped, axis=tuple(range(2, 2 + len(kernel)))))


def conv(em: Emitter, x: str, w: str, geom: ConvGeometry, hint: str = "conv") -> str:
    """``conv(x, w)``: the node's own convolution without bias."""
    return em.op("Conv", [x, w], hint, **geom.conv_attrs())


def conv_t(em: Emitter, s: str, w: str, geom: ConvGeometry, hint: str = "convT") -> str:
    """``convT(s, w)``: the gradient of ``conv(., w)`` w.r.t. its input, applied to ``s``."""
    return em.op("ConvTranspose", [s, w], hint, **geom.transpose_attrs())
