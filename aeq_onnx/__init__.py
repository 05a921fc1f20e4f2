"""aeq_onnx: Attribution Equilibrium explanations for ONNX image classifiers.

Compile a classifier into one explainer ONNX model (forward pass, gradient of the target
logit back to the split layer, AE relevance back to the pixels) and run it with onnxruntime.
Method: Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024. How the package is built: docs/architecture.md.
"""

from aeq_onnx._version import __version__
from aeq_onnx.compile.compiler import compile_explainer
from aeq_onnx.methods import (
    METHOD_NAMES,
    Method,
    Param,
    get_method,
    make_method,
    register_method,
)
from aeq_onnx.methods.ae import AE
from aeq_onnx.methods.gradcam import GradCAM
from aeq_onnx.methods.gradient import Gradient, GradientXInput, IntegratedGradients
from aeq_onnx.methods.lrp import LRPEpsilon, LRPZPlus
from aeq_onnx.render.imaging import ImageReport, ImageResult, explain_images
from aeq_onnx.render.presets import PRESETS, Preset, get_preset, store_preset
from aeq_onnx.run.runtime import Explainer, Explanation

__all__ = [
    "AE",
    "METHOD_NAMES",
    "PRESETS",
    "Explainer",
    "Explanation",
    "GradCAM",
    "Gradient",
    "GradientXInput",
    "ImageReport",
    "ImageResult",
    "IntegratedGradients",
    "LRPEpsilon",
    "LRPZPlus",
    "Method",
    "Param",
    "Preset",
    "__version__",
    "compile_explainer",
    "explain_images",
    "get_method",
    "get_preset",
    "make_method",
    "register_method",
    "store_preset",
]
