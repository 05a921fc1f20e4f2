"""Stage 7, run: onnxruntime sessions and the :class:`~aeq_onnx.run.runtime.Explainer`
(:mod:`.runtime`), CUDA-graph replay (:mod:`.cuda_graph`) and writing files safely
(:mod:`.saving`)."""
