"""A self-contained ``index.html`` gallery of explained images (relative links only)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aeq_onnx.run.saving import atomic_output

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
figure { margin: 0 0 1.5em 0; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
figcaption { margin-top: 0.3em; }
.failed { color: #a00; }
"""


def _link(out_dir: Path, path: str | os.PathLike[str]) -> str:
    rel = os.path.relpath(os.fspath(path), os.fspath(out_dir))
    return quote(Path(rel).as_posix())


def write_gallery(out_dir: str | os.PathLike[str], results: Sequence[Any],
                  failures: Sequence[tuple[str, str]] = (), title: str = "aeq explanations",
                  note: str = "") -> Path:
    """Write ``out_dir/index.html`` listing ``results`` (objects with ``source``, ``class_name``,
    ``class_index``, ``score``, ``logit``, ``png``, ``npy``, ``provider``, ``seconds`` and
    optionally ``versus``, the compared class of a versus map) and the ``failures``
    ``(path, message)``; returns its path (written whole or not at all)."""
    out = Path(out_dir)
    esc = html.escape
    rows, figures = [], []
    for r in results:
        png, npy = _link(out, r.png), _link(out, r.npy)
        versus = f" vs {esc(r.versus)}" if getattr(r, "versus", "") else ""
        rows.append(f"<tr><td>{esc(str(r.source))}</td><td>{esc(r.class_name)} "
                    f"({r.class_index}){versus}</td><td>{r.score:.4f}</td><td>{r.logit:.4f}</td>"
                    f"<td>{esc(r.provider)}</td><td>{r.seconds * 1000:.1f} ms</td>"
                    f"<td><a href=\"{png}\">png</a> <a href=\"{npy}\">npy</a></td></tr>")
        figures.append(f"<figure><a href=\"{png}\"><img src=\"{png}\" alt=\"{esc(r.class_name)}"
                       f"\"></a><figcaption>{esc(str(r.source))}: <b>{esc(r.class_name)}</b> "
                       f"({r.class_index}){versus}, score {r.score:.4f} &middot; "
                       f"<a href=\"{npy}\">relevance .npy</a></figcaption></figure>")
    failed = "".join(f"<li class=\"failed\">{esc(str(p))}: {esc(m)}</li>" for p, m in failures)
    text = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n"
        + (f"<p>{esc(note)}</p>\n" if note else "")
        + "<p>Red: evidence for the class; blue: against; each map scaled by the 99.5th "
          "percentile of |R|. Panels: photo as the model sees it | heatmap | overlay.</p>\n"
        + "<table><tr><th>file</th><th>class</th><th>score</th><th>logit</th><th>provider</th>"
          "<th>time</th><th>files</th></tr>\n" + "\n".join(rows) + "</table>\n"
        + (f"<h2>Failed</h2><ul>{failed}</ul>\n" if failures else "")
        + "\n".join(figures) + "\n</body></html>\n"
    )
    index = out / "index.html"
    with atomic_output(index) as part:
        part.write_text(text, encoding="utf-8")
    return index
