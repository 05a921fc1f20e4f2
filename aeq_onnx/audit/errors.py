"""Typed errors of the audit tools (metrics, RISE, sanity checks, dataset annotations)."""

from __future__ import annotations

from aeq_onnx.errors import AeqError, InputError


class MetricError(InputError):
    """A heatmap, mask, image or predictor given to a metric does not fit (shape, emptiness)."""


class AnnotationError(AeqError):
    """One annotation item (an image, an XML file, a mask, a JSON entry) cannot be used."""

    def __init__(self, item: str, message: str) -> None:
        self.item = item
        self.reason = message
        super().__init__(f"{item}: {message}")


class MappingError(AnnotationError):
    """The class-mapping file (dataset class name -> model output indices) is malformed."""
