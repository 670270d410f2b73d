"""Step an exported ONNX step graph over T steps with onnxruntime (``run_onnx``).

This is what any runtime does with the files of :mod:`bso_deploy.export.onnx`: zero state, then per step
feed ``x`` and the state, read ``output`` and ``spikes_k``, and feed every ``s_next`` back as ``s``.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np

__all__ = ["OnnxRun", "run_onnx"]

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


class OnnxRun(NamedTuple):
    """output: (T, batch, *output_shape); spikes: per layer with spikes, (T, batch, *shape)."""

    output: np.ndarray
    spikes: tuple[np.ndarray, ...]


def run_onnx(model: str | os.PathLike | Any, inputs: np.ndarray, threads: int = 1) -> OnnxRun:
    """Run the step graph ``model`` (path or ``onnx.ModelProto``) on ``inputs`` (T, batch, *input_shape),
    from the zero state, with onnxruntime's CPU provider."""
    import onnxruntime  # optional (the onnx extra) and slow to import: only running a model needs it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    source = os.fspath(model) if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
    session = onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    inputs = np.asarray(inputs)
    declared = {item.name: item for item in session.get_inputs()}
    if "x" not in declared:
        raise ValueError("the model has no input 'x'; it was not written by bso_deploy.export.onnx")
    x_type = _NUMPY_TYPES[declared["x"].type]
    if inputs.ndim < 2:
        raise ValueError(f"inputs must have shape (T, batch, *input_shape), got {inputs.shape}")
    batch = inputs.shape[1]
    state: dict[str, np.ndarray] = {}
    for name, item in declared.items():
        if name == "x":
            continue
        shape = [batch if isinstance(size, str) or size is None else size for size in item.shape]
        state[name] = np.zeros(shape, dtype=_NUMPY_TYPES[item.type])
    output_names = [item.name for item in session.get_outputs()]
    spike_names = sorted((name for name in output_names if name.startswith("spikes_")),
                         key=lambda name: int(name.split("_")[1]))
    outputs, spikes = [], {name: [] for name in spike_names}
    for t in range(inputs.shape[0]):
        results = dict(zip(output_names, session.run(output_names, {"x": inputs[t].astype(x_type), **state})))
        outputs.append(results["output"])
        for name in spike_names:
            spikes[name].append(results[name])
        state = {name: results[f"{name}_next"] for name in state}
    return OnnxRun(output=np.stack(outputs), spikes=tuple(np.stack(spikes[name]) for name in spike_names))
