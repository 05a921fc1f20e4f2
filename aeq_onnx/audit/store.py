"""Audit results on disk, written as they are computed so that a re-run resumes: one JSON line
per (case, method) in ``results.jsonl`` (the last line of a key wins), heatmaps as ``.npy``.

The files are append logs in completion order (which differs between engines, worker counts
and resumed runs); everything read back from them is put in :func:`canonical` order first."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

Row = dict[str, Any]


def order(row: Row) -> tuple[str, str, int]:
    """The canonical sort key of a row: case, method, then (sanity rows) the step as a number."""
    return str(row["case"]), str(row["method"]), int(row.get("step") or 0)


def canonical(rows: Iterable[Row]) -> list[Row]:
    """``rows`` sorted by :func:`order`: the same list whatever order they were computed in."""
    return sorted(rows, key=order)


class ResultStore:
    """``OUT/results.jsonl`` (and ``OUT/sanity.jsonl``) plus ``OUT/heatmaps/METHOD/CASE.npy``."""

    def __init__(self, out: Path, name: str | None = "results.jsonl") -> None:
        """``name`` None: heatmaps only, no rows file (a worker's view of the folder)."""
        self.out = out
        self.path = out / (name or "results.jsonl")
        self.rows: dict[tuple[str, ...], Row] = {}
        out.mkdir(parents=True, exist_ok=True)
        if name is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut short by an interrupted run
                self.rows[self.key(row)] = row

    @staticmethod
    def key(row: Row) -> tuple[str, ...]:
        """A row's identity: case, method and (sanity rows) randomisation step."""
        return (str(row["case"]), str(row["method"]), str(row.get("step", "")))

    def get(self, case: str, method: str, step: str = "") -> Row | None:
        """The stored row, if any."""
        return self.rows.get((case, method, step))

    def put(self, row: Row) -> None:
        """Store a row and append it to the file at once."""
        self.rows[self.key(row)] = row
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def heat_path(self, method_slug: str, case: str) -> Path:
        """Where the heatmap of a case and method lives."""
        return self.out / "heatmaps" / method_slug / f"{case}.npy"

    def save_heat(self, method_slug: str, case: str, heat: np.ndarray) -> Path:
        """Write a heatmap (float32) atomically; returns its path."""
        path = self.heat_path(method_slug, case)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, heat.astype(np.float32))
        os.replace(tmp, path)
        return path
