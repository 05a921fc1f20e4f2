"""The explainer in the browser: ``aeq web`` writes a static, offline page that runs an
explainer with onnxruntime-web (:func:`write_site`); :mod:`aeq_onnx.web.serve` serves it."""

from aeq_onnx.web.site import MAX_MODEL_BYTES, ORT_WEB_VERSION, Site, find_ort_web, write_site

__all__ = ["MAX_MODEL_BYTES", "ORT_WEB_VERSION", "Site", "find_ort_web", "write_site"]
