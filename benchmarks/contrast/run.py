"""Issue 23 research benchmark: every contrastive AE variant on the scene CNNs and on
EfficientNet-Lite0, measured with the independent torch reference; prints the tables and writes
``docs/contrast-research.md``.

    .venv/bin/python -m benchmarks.contrast.run scenes --model vgg [--n 240] [--part 0 --parts 2]
    .venv/bin/python -m benchmarks.contrast.run photos [--photo chelsea]
    .venv/bin/python -m benchmarks.contrast.run report        # tables from the cached results
    .venv/bin/python -m benchmarks.contrast.run all           # everything missing, then report

Each ``scenes``/``photos`` run caches its per-sample results as JSON under
``fixtures/.cache/contrast/`` (one file per model part or photo, each run well under 15 min on
2 cores); ``report`` reads every cached file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "fixtures" / ".cache" / "contrast"


def scenes_path(model: str, n: int, part: int, parts: int, tag: str = "") -> Path:
    """Cache file of one part of a scene run (``tag``: a sub-folder for a later run of a few
    variants, merged into the main results by the report)."""
    return CACHE / tag / f"scenes-{model}-n{n}-p{part}of{parts}.json"


def _names(args: argparse.Namespace) -> tuple[str, ...]:
    from benchmarks.contrast.study import NAMES

    if not args.names:
        return NAMES
    names = tuple(args.names.split(","))
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(unknown)}")
    return names


def cmd_scenes(args: argparse.Namespace) -> None:
    from benchmarks.contrast.scenes import run_scenes

    for part in ([args.part] if args.part is not None else range(args.parts)):
        out = scenes_path(args.model, args.n, part, args.parts, args.tag)
        if out.is_file() and not args.force:
            print(f"cached: {out.relative_to(ROOT)}")
            continue
        run_scenes(args.model, args.n, out, part, args.parts, names=_names(args))
        print(f"wrote {out.relative_to(ROOT)}")


def cmd_photos(args: argparse.Namespace) -> None:
    from benchmarks.contrast.photos import photo_list, run_photo

    for index, path in enumerate(photo_list()):
        if args.photo and path.stem != args.photo:
            continue
        out = CACHE / args.tag / f"photo-{path.stem}.json"
        if out.is_file() and not args.force:
            print(f"cached: {out.relative_to(ROOT)}")
            continue
        run_photo(path, index, out, names=_names(args))
        print(f"wrote {out.relative_to(ROOT)}")


def cmd_report(args: argparse.Namespace) -> None:
    from benchmarks.contrast.report import write_report

    print(write_report(CACHE, ROOT / "docs" / "contrast-research.md", args.n,
                       args.parts))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("scenes", "photos", "report", "all"):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=240, help="scenes 0..n-1 of seed 2")
        p.add_argument("--parts", type=int, default=2, help="scene runs split in this many")
        p.add_argument("--force", action="store_true", help="recompute cached results")
        p.add_argument("--names", default="", help="only these variants (comma-separated)")
        p.add_argument("--tag", default="", help="cache sub-folder for a run of a few variants")
        if name == "scenes":
            p.add_argument("--model", choices=("vgg", "resnet"), required=True)
            p.add_argument("--part", type=int, default=None)
        if name == "photos":
            p.add_argument("--photo", default=None, help="one photo by file stem")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    if args.cmd == "all":
        args.part, args.photo = None, None
        for model in ("vgg", "resnet"):
            args.model = model
            cmd_scenes(args)
        cmd_photos(args)
        cmd_report(args)
    else:
        {"scenes": cmd_scenes, "photos": cmd_photos, "report": cmd_report}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
