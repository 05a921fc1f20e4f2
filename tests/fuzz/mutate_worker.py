"""Child process of the byte-mutation fuzzer (``test_mutation_fuzz.py``): mutate a valid model's
bytes ``count`` times from ``seed``, load and compile each, print one JSON line per case.

Run alone to reproduce a case: ``python tests/fuzz/mutate_worker.py MODEL.onnx SEED COUNT [FIRST]``.
A line ``{"case": i, "start": true}`` precedes every case, so a native crash names its case.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from aeq_onnx.compile.compiler import compile_explainer
from aeq_onnx.errors import AeqError

MUTATIONS = ("flip", "truncate", "insert", "delete", "overwrite", "duplicate", "varint")


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of ``data`` (its kind and the new bytes)."""
    kind = MUTATIONS[int(rng.integers(len(MUTATIONS)))]
    buf = bytearray(data)
    at = int(rng.integers(len(buf)))
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(len(buf)))
            buf[pos] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        del buf[at:]
    elif kind == "insert":
        buf[at:at] = rng.bytes(int(rng.integers(1, 17)))
    elif kind == "delete":
        del buf[at : at + int(rng.integers(1, 17))]
    elif kind == "overwrite":
        n = int(rng.integers(1, 9))
        buf[at : at + n] = rng.bytes(n)
    elif kind == "duplicate":
        n = int(rng.integers(1, 65))
        buf[at:at] = buf[at : at + n]
    else:  # a huge varint where a length or dim might be
        buf[at:at + 1] = b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f"
    return kind, bytes(buf)


def main(path: str, seed: int, count: int, first: int = 0) -> None:
    with open(path, "rb") as handle:
        data = handle.read()
    for case in range(first, first + count):
        rng = np.random.default_rng([seed, case])
        kind, mutated = mutate(data, rng)
        print(json.dumps({"case": case, "start": True}), flush=True)
        result: dict[str, object] = {"case": case, "kind": kind}
        try:
            compile_explainer(mutated)
            result["outcome"] = "compiled"
        except AeqError as exc:
            result["outcome"] = f"typed:{type(exc).__name__}"
            if "\n" in str(exc):
                result["outcome"] = "multiline"
                result["error"] = str(exc)[:300]
        except Exception as exc:  # what the fuzzer hunts for
            result["outcome"] = "untyped"
            result["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
         int(sys.argv[4]) if len(sys.argv) > 4 else 0)
