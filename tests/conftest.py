"""Test-suite root. Its presence puts ``tests/`` on ``sys.path`` (pytest's default import mode),
so test files in sub-folders can ``import helpers`` and ``from reference import ae_torch``."""
