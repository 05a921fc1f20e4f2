"""Replay an explainer as onnxruntime CUDA graphs: one capture per batch size.

An explainer is thousands of small kernels, so at small batches on a GPU the host's kernel
launches, not the GPU, set its latency (measured: docs/performance.md, "On a GPU").
onnxruntime's CUDA provider can record a whole run as one CUDA graph and replay it with one
launch (provider option ``enable_cuda_graph``). A replay reads and writes the device addresses
of the capture, so every batch size gets its own input and output buffers, bound once, and its
own graph (run option ``gpu_graph_id``); each call copies the new batch into the input buffers,
replays, and copies the outputs out. The first run of a batch size runs normally, the second
captures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from aeq_onnx.errors import DeviceError

GRAPH_ID = "gpu_graph_id"
DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64,
          "tensor(float16)": np.float16}


@dataclass(frozen=True)
class _Slot:
    """The fixed buffers and the graph of one batch size."""

    binding: ort.IOBinding
    options: ort.RunOptions
    inputs: list[ort.OrtValue]
    outputs: list[ort.OrtValue]


class GraphRunner:
    """Runs ``session`` (created with ``enable_cuda_graph``) through fixed buffers on the GPU.

    Every input and output must have a static shape apart from its first (batch) axis.
    """

    def __init__(self, session: ort.InferenceSession, device: str = "cuda") -> None:
        self.session, self.device = session, device
        self._inputs, self._outputs = session.get_inputs(), session.get_outputs()
        for arg in (*self._inputs, *self._outputs):
            if any(not isinstance(d, int) for d in arg.shape[1:]) or arg.type not in DTYPES:
                raise DeviceError(f"cuda_graph needs static shapes after the batch axis and "
                                  f"float/int64 tensors: {arg.name} is {arg.type} {arg.shape}")
        self._slots: dict[int, _Slot] = {}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The outputs (name -> array) for ``feeds`` (input name -> array)."""
        arrays = [np.ascontiguousarray(feeds[arg.name]) for arg in self._inputs]
        n = int(arrays[0].shape[0])
        slot = self._slots.get(n) or self._slot(n, arrays)
        for value, array in zip(slot.inputs, arrays, strict=True):
            value.update_inplace(array)
        self.session.run_with_iobinding(slot.binding, slot.options)
        return {arg.name: value.numpy() for arg, value in zip(self._outputs, slot.outputs,
                                                              strict=True)}

    def _slot(self, n: int, arrays: list[np.ndarray]) -> _Slot:
        """Buffers for batch size ``n``, bound once, and the run option naming its graph."""
        binding = self.session.io_binding()
        inputs = [ort.OrtValue.ortvalue_from_numpy(a, self.device, 0) for a in arrays]
        for arg, value in zip(self._inputs, inputs, strict=True):
            binding.bind_ortvalue_input(arg.name, value)
        outputs = [ort.OrtValue.ortvalue_from_shape_and_type(
            [n, *arg.shape[1:]], DTYPES[arg.type], self.device, 0) for arg in self._outputs]
        for arg, value in zip(self._outputs, outputs, strict=True):
            binding.bind_ortvalue_output(arg.name, value)
        options = ort.RunOptions()
        options.add_run_config_entry(GRAPH_ID, str(len(self._slots)))
        self._slots[n] = _Slot(binding, options, inputs, outputs)
        return self._slots[n]
