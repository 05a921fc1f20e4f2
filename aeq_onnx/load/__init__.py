"""Stage 1, load: untrusted bytes (a path, bytes or a ModelProto) to a checked ModelProto.

:mod:`.loading` parses and refuses, with one-line typed errors, what the checks of
:mod:`.safety` find; :mod:`.protos` makes whole-model operations cheap for big models.
"""

from aeq_onnx.load.loading import LoadedModel, Source, load_model

__all__ = ["LoadedModel", "Source", "load_model"]
