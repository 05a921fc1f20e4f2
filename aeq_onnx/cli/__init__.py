"""The ``aeq`` command line: error presentation around the commands (:mod:`.commands`) and
the parser (:mod:`.parser`).

Exit codes: 0 done; 1 a mistake the user can fix (one line, ``aeq: error: ...``) or some items
failed (one ``aeq: failed: ITEM: why`` line each, the rest completes); 2 a usage error (one
line) or unsupported ops; 3 an internal error (a bug: please report it with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any

from aeq_onnx.cli.commands import COMMANDS, EXIT_ERROR, EXIT_UNSUPPORTED
from aeq_onnx.cli.parser import build_parser
from aeq_onnx.errors import AeqError, UnsupportedOpError

__all__ = ["COMMANDS", "build_parser", "main"]

EXIT_INTERNAL = 3


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """Warnings as ``aeq: warning: ...`` on one line, without the source line."""
    text = " ".join(str(message).split())
    print(f"aeq: warning: {text}", file=sys.stderr)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace | int:
    """The parsed arguments, or the exit code of ``--help`` (0) or a usage error (2)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    return args


def _report(args: argparse.Namespace, prefix: str, exc: BaseException, suffix: str = "") -> None:
    if args.debug:
        traceback.print_exc()
    text = " ".join(str(exc).split())
    print(f"aeq: {prefix}{text}{suffix}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a sub-command, print typed errors on one line (tracebacks with --debug).

    Models are untrusted by default: every command passes ``isolate=True`` down to the loader
    (their checks run in a limited child process) unless ``--no-isolate``."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return COMMANDS[args.command](args)
    except AeqError as exc:
        _report(args, "error: ", exc)
        return EXIT_UNSUPPORTED if isinstance(exc, UnsupportedOpError) else EXIT_ERROR
    except KeyboardInterrupt:
        print("aeq: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the file system refused (disk full, permissions, a vanished file)
        _report(args, "error: ", exc)
        return EXIT_ERROR
    except Exception as exc:  # the last line of defence: no traceback unless asked
        _report(args, f"internal error: {type(exc).__name__}: ", exc, " (rerun with --debug)")
        return EXIT_INTERNAL

