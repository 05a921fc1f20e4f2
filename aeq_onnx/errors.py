"""Typed errors of aeq_onnx: every failure a user can cause is one of these."""

from __future__ import annotations


class AeqError(Exception):
    """Base class: a problem the user can fix; the CLI prints it on one line."""


class ModelLoadError(AeqError):
    """The file is not a readable, valid ONNX model."""


class UnsupportedModelError(AeqError):
    """The model has a structure aeq_onnx cannot explain (no image input, no logits, ...)."""


class UnsupportedOpError(AeqError):
    """One or more nodes have no rule; lists every such node before anything is emitted."""

    def __init__(self, nodes: list[tuple[str, str, int]], supported: list[str]) -> None:
        self.nodes = nodes
        self.supported = supported
        listed = "; ".join(f"{op} (node '{name}', opset {opset})" for op, name, opset in nodes)
        super().__init__(
            f"{len(nodes)} unsupported node(s): {listed}. Supported ops: {', '.join(supported)}"
        )


class DuplicateRuleError(AeqError):
    """Two rules were registered for the same op type and overlapping opset range."""


class ConversionError(AeqError):
    """A canonicalisation pass could not rewrite the model."""


class InputError(AeqError):
    """A batch or target given to an explainer does not fit the model."""


class DeviceError(AeqError):
    """The requested execution provider or device feature cannot run here."""


class LayerError(AeqError):
    """The split layer (tensor) named by the user does not exist or cannot be used."""


class ExternalDataError(ModelLoadError):
    """External tensor data points outside the model's folder, at a link, or at bad bytes."""


class ResourceLimitError(ModelLoadError):
    """A tensor the model declares (or makes the explainer allocate) exceeds a size cap."""


class CustomDomainError(ModelLoadError):
    """The model uses ops from non-standard (custom) op domains."""


class VersionError(ModelLoadError):
    """The model's IR or opset version is newer than the installed onnx/onnxruntime support."""


class NonFiniteWeightError(ModelLoadError):
    """A weight (initializer or constant) holds NaN or Inf values."""


class ModelRejectedError(ModelLoadError):
    """The isolated checker crashed, ran out of memory or time on the model."""


class MethodError(AeqError):
    """An unknown explanation method, or a parameter that does not fit the chosen method."""


class BatchTilingError(UnsupportedModelError):
    """The model cannot run a batch larger than the one it was exported with (a static batch
    dimension or a hard-coded batch size), which Integrated Gradients needs to run every path
    point in one pass."""
