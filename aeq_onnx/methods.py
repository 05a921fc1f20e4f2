"""Explanation methods: which relevance variant each layer gets (kept apart from the op rules).

Attribution Equilibrium (Nam & Lee, IEEE T-PAMI 2024): the bounded z^B rule at the input layer
(spec 4.3), the pointwise rule for 1x1 kernels (4.2), the equilibrium rule elsewhere (4.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aeq_onnx.errors import AeqError

AddRule = Literal["residual", "share", "z"]
ADD_RULES: tuple[str, ...] = ("residual", "share", "z")
ConvVariant = Literal["bounded", "pointwise", "equilibrium"]


@dataclass(frozen=True)
class Method:
    """Attribution Equilibrium with ratio ``r`` (1 ≤ r ≤ 2) and an Add rule for residual joins."""

    ratio: float = 2.0
    add_rule: AddRule = "residual"
    name: str = "ae"

    def __post_init__(self) -> None:
        if not 1.0 <= self.ratio <= 2.0:
            raise AeqError(f"ratio must lie in [1, 2] (spec 4.1), got {self.ratio}")
        if self.add_rule not in ADD_RULES:
            raise AeqError(f"add rule must be one of {', '.join(ADD_RULES)}, got {self.add_rule}")

    def conv_variant(self, is_input_layer: bool, kernel: tuple[int, ...]) -> ConvVariant:
        """Bounded rule at the input layer, pointwise for 1x1 kernels, equilibrium otherwise."""
        if is_input_layer:
            return "bounded"
        if all(k == 1 for k in kernel):
            return "pointwise"
        return "equilibrium"
