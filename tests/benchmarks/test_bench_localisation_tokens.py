"""The token-model localisation benchmark (``benchmarks/bench_localisation_tokens.py``): its T4
grid names every combination once, in the audit's own labels, and a tiny run on both committed
token models writes the grid and the method tables."""

from __future__ import annotations

import json
from pathlib import Path

from aeq_onnx.audit.methods import compile_kwargs, parse_methods
from benchmarks import bench_localisation_tokens as bench


def test_grid_is_every_combination_once_in_the_audits_labels() -> None:
    specs = bench.grid_specs()
    assert len(specs) == 2 * 2 * 3
    parsed = parse_methods(",".join(specs))
    assert [s.label for s in parsed] == [bench.grid_label(s) for s in specs]
    combos = {tuple(sorted(compile_kwargs(s).items())) for s in parsed}
    assert len(combos) == 12  # distinct compile options
    for s in parsed:  # every option is one of AE's declared parameters and values
        kwargs = compile_kwargs(s)
        assert kwargs.pop("method") == "ae"
        for key, value in kwargs.items():
            param = getattr(bench.AE, key)
            assert value in param.choices, (key, value)


def test_defaults_are_one_grid_combination() -> None:
    chosen = bench.defaults()
    values = dict(bench.GRID)
    assert set(chosen) == set(values)
    for key, value in chosen.items():
        assert value in values[key], (key, value)


def test_tiny_run_writes_grid_and_methods(tmp_path: Path) -> None:
    grid = bench.grid_specs()
    chosen = [g for g in grid if "token_add_rule=residual" in g][:2]
    methods = ",".join(["ae", "gradient", "rise", *chosen])
    doc = tmp_path / "T.md"
    assert bench.main(["--n", "2", "--sanity", "0", "--rise-masks", "16", "--steps", "3",
                       "--methods", methods, "--out", str(tmp_path), "--doc", str(doc)]) == 0
    text = doc.read_text()
    for name in ("vit", "convnext"):
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert report["table"]["ae"]["cases"] == 2
        assert f"## {name}_scenes.onnx" in text
    assert text.count("| residual |") == 2 * len(chosen)  # both grid rows, both models
    assert "rise:masks=16" in text
