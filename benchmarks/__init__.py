"""Benchmarks of the aeq_onnx explainer (run: python benchmarks/bench_explainer.py)."""
