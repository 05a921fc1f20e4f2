"""Helpers shared by the model-level tests (torchvision, architectures, Keras)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Show ``line`` in the pytest output even when output capturing is on."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(line, flush=True)


def torch_logits(build: Callable[[str], Any], name: str, batch: np.ndarray) -> np.ndarray:
    """The logits of the seeded torch model ``build(name)`` for ``batch`` (freed afterwards)."""
    import torch

    model = build(name)
    with torch.no_grad():
        logits = model(torch.from_numpy(batch)).numpy()
    del model
    return logits
