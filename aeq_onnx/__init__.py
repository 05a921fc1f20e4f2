"""aeq_onnx: Attribution Equilibrium explanations for ONNX image classifiers.

Compile a classifier into one explainer ONNX model (forward pass, gradient of the target
logit back to the split layer, AE relevance back to the pixels) and run it with onnxruntime.
Method: Nam & Lee, "Illuminating Salient Contributions in Neuron Activation with Attribution
Equilibrium", IEEE T-PAMI 2024.
"""

from aeq_onnx._version import __version__
from aeq_onnx.compile.compiler import compile_explainer
from aeq_onnx.methods import METHOD_NAMES
from aeq_onnx.render.imaging import ImageReport, ImageResult, explain_images
from aeq_onnx.render.presets import PRESETS, Preset, get_preset, store_preset
from aeq_onnx.run.runtime import Explainer, Explanation

__all__ = [
    "METHOD_NAMES",
    "PRESETS",
    "Explainer",
    "Explanation",
    "ImageReport",
    "ImageResult",
    "Preset",
    "__version__",
    "compile_explainer",
    "explain_images",
    "get_preset",
    "store_preset",
]
