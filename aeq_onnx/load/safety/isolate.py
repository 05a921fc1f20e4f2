"""The isolated checker: onnx's checker and strict shape inference on a model skeleton, in a
child process (:mod:`.child`) under memory, CPU and wall-clock limits, so that a native crash,
a memory blow-up or a hang on a hostile model becomes a :class:`ModelRejectedError`.

Whether to isolate is the caller's parameter (``load_model(..., isolate=True)``; the ``aeq``
command passes it unless ``--no-isolate``). The child is spawned without a ``preexec_fn``, so
Python uses vfork/posix_spawn instead of fork, whose cost grows with the parent's memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

from aeq_onnx.errors import ModelRejectedError

#: Limits of the isolated checker process.
ISOLATED_MEMORY_BYTES = 4 * 2**30
ISOLATED_SECONDS = 60.0
#: The child's program, run by file path under ``python -I -S``.
CHILD = Path(__file__).with_name("child.py")

#: Results of isolated checks run by this process, by the sha256 of (child program, limits,
#: skeleton bytes): the same bytes through the same check give the same answer, so a model
#: loaded twice (``aeq explain`` loads a classifier, then compiles it) is checked once.
_CHECKED: dict[str, str | None] = {}
_CHECKED_MAX = 64


def _cpp_extension() -> str:
    """The file of onnx's native extension (the one this process uses)."""
    from onnx import onnx_cpp2py_export

    return str(onnx_cpp2py_export.__file__)


def child_argv(memory: int, seconds: float) -> list[str]:
    """The child's command line: limits ``memory`` bytes and ``ceil(seconds)`` CPU seconds."""
    return [sys.executable, "-I", "-S", str(CHILD), str(memory), str(math.ceil(seconds)),
            _cpp_extension()]


def _digest(skeleton: bytes, memory: int, seconds: float) -> str:
    key = hashlib.sha256(CHILD.read_bytes())
    key.update(f"\0{memory}\0{seconds!r}\0".encode())
    key.update(skeleton)
    return key.hexdigest()


def check_isolated(skeleton: bytes, label: str, memory: int | None = None,
                   seconds: float | None = None) -> str | None:
    """Run onnx's checker and shape inference on ``skeleton`` in a child process under memory
    and time limits. Returns the checker's message when it refuses the model (None when it
    passes); a crash, running out of memory or time raises :class:`ModelRejectedError`.
    An answer for the same bytes, program and limits earlier in this process is reused."""
    memory = ISOLATED_MEMORY_BYTES if memory is None else memory
    seconds = ISOLATED_SECONDS if seconds is None else seconds
    digest = _digest(skeleton, memory, seconds)
    if digest in _CHECKED:
        return _CHECKED[digest]
    message = _run_child(skeleton, label, memory, seconds)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.pop(next(iter(_CHECKED)))
    _CHECKED[digest] = message
    return message


def _run_child(skeleton: bytes, label: str, memory: int, seconds: float) -> str | None:
    """One run of the child (see :func:`check_isolated`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["OMP_NUM_THREADS"] = "1"
    try:
        done = subprocess.run(child_argv(memory, seconds), input=skeleton, capture_output=True,
                              timeout=seconds, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelRejectedError(
            f"model rejected: checking {label} took longer than {seconds:g} s") from None
    except OSError as exc:
        raise ModelRejectedError(f"model rejected: cannot start the checker process: "
                                 f"{exc}") from exc
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise ModelRejectedError(
            f"model rejected: the ONNX checker crashed on {label} ({name})")
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()
        why = tail[-1][:200] if tail else f"exit code {done.returncode}"
        if "MemoryError" in why or "bad_alloc" in why:
            why = f"ran out of memory (limit {memory} bytes)"
        raise ModelRejectedError(f"model rejected: the ONNX checker failed on {label}: {why}")
    try:
        reply = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ModelRejectedError(
            f"model rejected: the ONNX checker gave no answer on {label}") from None
    found = reply.get("checker")
    return None if found is None else str(found)
