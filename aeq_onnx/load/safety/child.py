"""The isolated checker's child process (:mod:`.isolate` starts it).

Run as ``python -I -S child.py MEMORY CPU EXTENSION`` with a model skeleton's bytes on stdin;
prints one JSON line: ``{"checker": message}`` when onnx's checker refuses the model, else
``{"ok": true}``. Its memory and CPU limits are set first, before a byte of the model is read.

Standard library only (``-I -S``: no site-packages, no aeq_onnx), and onnx's native extension
loaded from its file (``EXTENSION``) alone: importing the ``onnx`` package (protobuf, numpy and
onnx's Python modules, most of the child's time before: SECURITY.md) would only serialise the
same bytes again for the same C++ functions. The checks: onnx's C++ checker and strict shape
inference with data propagation.
"""

import json
import resource
import sys
import types


def limit(memory: int, cpu: int) -> None:
    """Cap the address space at ``memory`` bytes and the CPU time at ``cpu`` seconds."""
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def load_native(path: str) -> types.ModuleType:
    """onnx's native extension, from its file, without the ``onnx`` package around it."""
    import importlib.machinery
    import importlib.util

    name = "onnx.onnx_cpp2py_export"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_loader(name, loader)
    if spec is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def check(native: types.ModuleType, data: bytes) -> dict[str, object]:
    """The checker's refusal, or ok; a shape-inference error is left to the compiler (as
    without isolation), running out of memory is not."""
    try:
        native.checker.check_model(data)
    except Exception as exc:
        return {"checker": str(exc)}
    try:
        native.shape_inference.infer_shapes(data, False, True, True)
    except MemoryError:
        raise
    except Exception:
        pass  # shape errors are reported by the compiler, as without isolation
    return {"ok": True}


def main(argv: list[str]) -> None:
    """Limits first, then the extension, the bytes and the reply."""
    limit(int(argv[1]), int(argv[2]))
    native = load_native(argv[3])
    print(json.dumps(check(native, sys.stdin.buffer.read())))


if __name__ == "__main__":
    main(sys.argv)
