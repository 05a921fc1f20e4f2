"""Stand-in children for the isolated checker's tests: the real child's ``main`` (limits first,
then onnx's native extension, then the reply) with the check replaced by a test's code."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aeq_onnx.load.safety import isolate

TEMPLATE = """import importlib.util, sys
_spec = importlib.util.spec_from_file_location("aeq_child", {child!r})
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)
real_check = child.check


def check(native, data):
{body}


child.check = check
child.main(sys.argv)
"""


def child_script(folder: Path, body: str) -> Path:
    """A child program at ``folder/child.py`` whose check is ``body`` (a function body over
    ``native`` and ``data`` returning the reply, e.g. ``{"checker": "..."}``; ``real_check``
    is the real one)."""
    path = folder / "child.py"
    path.write_text(TEMPLATE.format(child=str(isolate.CHILD),
                                    body=textwrap.indent(textwrap.dedent(body), "    ")),
                    encoding="utf-8")
    return path


def use_child(monkeypatch: pytest.MonkeyPatch, folder: Path, body: str) -> None:
    """Make the isolated checker run ``body`` as its check (see :func:`child_script`)."""
    monkeypatch.setattr(isolate, "CHILD", child_script(folder, body))
