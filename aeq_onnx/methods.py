"""Explanation methods: which relevance variant each layer gets (kept apart from the op rules).

Attribution Equilibrium (Nam & Lee, IEEE T-PAMI 2024): the bounded z^B rule at the input layer
(spec 4.3), the pointwise rule for 1x1 kernels (4.2), the equilibrium rule elsewhere (4.1).

Baselines compiled by the same compiler:

- ``gradient`` (saliency, Simonyan et al. 2014: the raw signed ``∂ logit_t / ∂ input``),
  ``gradient-x-input`` and ``integrated-gradients`` (Sundararajan et al. 2017; midpoint Riemann
  sum over ``steps`` path points from a ``zero`` or ``blur`` baseline): the gradient family,
  emitted by :mod:`aeq_onnx.baselines`;
- ``gradcam`` (Selvaraju et al. 2017) at the AE split tensor;
- ``lrp-epsilon`` and ``lrp-zplus`` (Bach et al. 2015, with Zennit's formulas): relevance from
  the logits through every layer, the bounded z^B rule at the input layer and the z-rule at
  every join of two tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aeq_onnx.errors import AeqError, MethodError

AddRule = Literal["residual", "share", "z"]
ADD_RULES: tuple[str, ...] = ("residual", "share", "z")
ConvVariant = Literal["bounded", "pointwise", "equilibrium", "epsilon", "zplus"]
DenseVariant = Literal["bounded", "pointwise", "epsilon", "zplus"]

#: Every method name the compiler accepts (the CLI lists these).
METHOD_NAMES: tuple[str, ...] = (
    "ae", "gradient", "gradient-x-input", "integrated-gradients", "gradcam", "lrp-epsilon",
    "lrp-zplus",
)
GRADIENT_METHODS: tuple[str, ...] = ("gradient", "gradient-x-input", "integrated-gradients")
LRP_METHODS: tuple[str, ...] = ("lrp-epsilon", "lrp-zplus")
#: Methods that explain at a split tensor (and so accept ``layer=``).
SPLIT_METHODS: tuple[str, ...] = ("ae", "gradcam")
BASELINES: tuple[str, ...] = ("zero", "blur")
#: LRP-ε stabiliser: 0.25, the value Montavon et al. (2019, "LRP: an overview") use for the
#: middle layers of VGG-16; absolute (not scaled by the activations' spread).
DEFAULT_EPSILON = 0.25
#: Integrated-Gradients path points (midpoint Riemann sum) and the blur baseline's Gaussian
#: sigma in pixels (5 px: removes the detail of a 224-pixel image but keeps its coarse layout;
#: blurred baselines are discussed by Sturmfels et al., Distill 2020). The kernel spans
#: ±ceil(3σ) pixels, borders replicated.
DEFAULT_STEPS = 32
DEFAULT_BLUR_SIGMA = 5.0


@dataclass(frozen=True)
class Method:
    """One explanation method and its parameters.

    ``ratio`` and ``add_rule`` belong to AE (1 ≤ r ≤ 2); ``epsilon`` to ``lrp-epsilon``;
    ``steps``, ``baseline`` and ``blur_sigma`` to ``integrated-gradients``.
    """

    ratio: float = 2.0
    add_rule: AddRule = "residual"
    name: str = "ae"
    epsilon: float = DEFAULT_EPSILON
    steps: int = DEFAULT_STEPS
    baseline: str = "zero"
    blur_sigma: float = DEFAULT_BLUR_SIGMA

    def __post_init__(self) -> None:
        if self.name not in METHOD_NAMES:
            raise MethodError(f"unknown method '{self.name}': choose one of "
                              f"{', '.join(METHOD_NAMES)}")
        if not 1.0 <= self.ratio <= 2.0:
            raise AeqError(f"ratio must lie in [1, 2] (spec 4.1), got {self.ratio}")
        if self.add_rule not in ADD_RULES:
            raise AeqError(f"add rule must be one of {', '.join(ADD_RULES)}, got {self.add_rule}")
        self._check_baseline_parameters()

    def _check_baseline_parameters(self) -> None:
        if not self.epsilon >= 0.0:
            raise MethodError(f"epsilon must be >= 0, got {self.epsilon}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise MethodError(f"steps must be a positive integer, got {self.steps!r}")
        if self.baseline not in BASELINES:
            raise MethodError(f"baseline must be one of {', '.join(BASELINES)}, got "
                              f"'{self.baseline}'")
        if not self.blur_sigma > 0.0:
            raise MethodError(f"blur sigma must be > 0 pixels, got {self.blur_sigma}")

    @property
    def is_lrp(self) -> bool:
        """LRP: relevance from the logits through the whole network."""
        return self.name in LRP_METHODS

    @property
    def is_gradient(self) -> bool:
        """The gradient family: a VJP from the logits to the input."""
        return self.name in GRADIENT_METHODS

    @property
    def uses_split(self) -> bool:
        """True for the methods that explain at a split tensor (AE, Grad-CAM)."""
        return self.name in SPLIT_METHODS

    def conv_variant(self, is_input_layer: bool, kernel: tuple[int, ...]) -> ConvVariant:
        """AE: bounded rule at the input layer, pointwise for 1x1 kernels, equilibrium
        otherwise. LRP: bounded z^B at the input layer, ε or z⁺ everywhere else."""
        if is_input_layer:
            return "bounded"
        if self.is_lrp:
            return "epsilon" if self.name == "lrp-epsilon" else "zplus"
        if all(k == 1 for k in kernel):
            return "pointwise"
        return "equilibrium"

    def dense_variant(self, is_input_layer: bool) -> DenseVariant:
        """AE: the pointwise rule (4.4) for every dense layer. LRP: bounded z^B when the
        layer reads the model input (an MLP), ε or z⁺ otherwise."""
        if not self.is_lrp:
            return "pointwise"
        if is_input_layer:
            return "bounded"
        return "epsilon" if self.name == "lrp-epsilon" else "zplus"

    def parameters(self) -> dict[str, str]:
        """The method's own parameters, as recorded in the explainer's metadata."""
        if self.name == "ae":
            return {"ratio": f"{self.ratio:g}", "add_rule": self.add_rule}
        if self.is_lrp:
            eps = {"epsilon": f"{self.epsilon:g}"} if self.name == "lrp-epsilon" else {}
            return {**eps, "input_rule": "zbox-sample-min-max", "add_rule": "z"}
        if self.name == "integrated-gradients":
            blur = {"blur_sigma": f"{self.blur_sigma:g}"} if self.baseline == "blur" else {}
            return {"steps": str(self.steps), "baseline": self.baseline,
                    "integration": "riemann-midpoint", **blur}
        if self.name == "gradcam":
            return {"upsample": "bilinear-pytorch_half_pixel", "channel_split": "cam/C"}
        return {}


def make_method(name: str = "ae", *, ratio: float = 2.0, add_rule: AddRule = "residual",
                epsilon: float = DEFAULT_EPSILON, steps: int = DEFAULT_STEPS,
                baseline: str = "zero", blur_sigma: float = DEFAULT_BLUR_SIGMA) -> Method:
    """The :class:`Method` named ``name``; LRP always joins two tensors by the z-rule."""
    if not isinstance(name, str) or name not in METHOD_NAMES:
        raise MethodError(f"unknown method {name!r}: choose one of {', '.join(METHOD_NAMES)}")
    if name in LRP_METHODS:
        add_rule = "z"
    return Method(ratio=ratio, add_rule=add_rule, name=name, epsilon=epsilon, steps=steps,
                  baseline=baseline, blur_sigma=blur_sigma)
