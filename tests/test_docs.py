"""docs/ops.md is generated from the registry and must be up to date."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gen_ops_doc.py"


def test_ops_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("gen_ops_doc", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python scripts/gen_ops_doc.py"
    text = module.OUT.read_text(encoding="utf-8")
    for op in ("Conv", "Gemm", "MaxPool", "Add", "Concat", "Mul", "Transpose"):
        assert f"| {op} |" in text
