"""Research benchmark of issue 23: contrastive variants of AE, measured with the independent
torch reference (``tests/reference/contrast_torch.py``); ``python -m benchmarks.contrast.run``."""
