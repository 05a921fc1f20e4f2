"""Independent references for the tests: ``ae_torch.reference_explain`` (AE, with the op
references of ``tests/rules/``) and ``baselines_torch`` (the other methods)."""
