"""Parity checker: the same inputs through several fixed-point backends, compared exactly, and the float
model of the same graph compared with the fixed-point result: :func:`check_parity` -> :class:`ParityReport`.

Fixed backends must agree bit for bit: spikes, u and v of every layer at every step (docs/fixed-point.md
§5.5). The first backend is the reference; a disagreement is reported at its earliest step (then lowest
layer, sample, neuron), where it was caused rather than propagated.

Float vs fixed: layer k of the fixed-point network receives the input of step t at step t + k + 1 (one
synaptic delay per layer, including layer 0, §4.8 and §5.1), so fixed step t + k + 1 of layer k is compared
with float step t of the same layer. That agreement is a measurement, not a requirement (docs/fixed-point.md
§10.4 lists what differs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import nir
import numpy as np

from .backends import RunResult, get_backend, prepare_inputs, run_fixed, run_float
from .compiler import compile_nir, graph_input_shape, read_graph
from .network import FixedPointNetwork

__all__ = ["ParityReport", "check_parity", "dataset_samples", "float_fixed_agreement"]


@dataclass(frozen=True)
class ParityReport:
    """What :func:`check_parity` found; :meth:`to_dict` is JSON-serialisable.

    compared_spikes: spike values compared (layers x steps x samples x neurons, per compared pair);
    compared_states: u and v values compared; mismatches: positions where spikes, u or v differ (0 means
    parity). first_divergence: None, or the earliest mismatch: layer, step, batch index, neuron (flat and
    per axis), and each backend's spike, u and v there. float_fixed_agreement: per spiking layer, the
    fraction of equal spikes between the float model and the first fixed backend (delays accounted for).
    prediction_agreement: fraction of samples with equal float and fixed predictions. Accuracies are None
    without labels; backend_accuracy holds each fixed backend's own accuracy (empty without labels), and
    backend_seconds each backend's wall time for the whole run (compilation for it included, recording on).
    """

    backends: tuple[str, ...]
    profile: str
    samples: int
    time_steps: int
    latency: int
    compared_spikes: int
    compared_states: int
    mismatches: int
    first_divergence: dict[str, Any] | None
    float_accuracy: float | None
    fixed_accuracy: float | None
    prediction_agreement: float
    float_fixed_agreement: dict[str, float]
    backend_accuracy: dict[str, float] = field(default_factory=dict)
    backend_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["backends"] = list(self.backends)
        result["ok"] = self.ok
        return result


def _compare(fx_net: FixedPointNetwork, runs: list[RunResult]) -> tuple[int, int, int, dict[str, Any] | None]:
    """(compared spikes, compared states, mismatches, first divergence) of runs[1:] against runs[0]."""
    reference = runs[0]
    compared_spikes = compared_states = mismatches = 0
    first: tuple[tuple[int, ...], dict[str, Any]] | None = None
    for other in runs[1:]:
        for index, layer in enumerate(fx_net.layers):
            name = layer.name
            steps = reference.u[name].shape[0]
            spikes = [run.layers.get(name, np.zeros(run.u[name].shape, np.int8)) for run in (reference, other)]
            differ = (spikes[0] != spikes[1]) | (reference.u[name] != other.u[name]) | \
                (reference.v[name] != other.v[name])
            compared_spikes += spikes[0].size if layer.spiking else 0
            compared_states += 2 * reference.u[name].size
            mismatches += int(differ.sum())
            found = np.argwhere(differ.reshape(steps, differ.shape[1], -1))
            if not found.size:
                continue
            step, batch, neuron = (int(value) for value in found[0])
            key = (step, index, batch, neuron)
            if first is None or key < first[0]:
                where = (step, batch, *np.unravel_index(neuron, layer.output_shape))
                first = (key, {
                    "layer": name, "layer_index": index, "step": step, "batch": batch, "neuron": neuron,
                    "neuron_index": [int(i) for i in where[2:]], "backends": [reference.backend, other.backend],
                    "spike": {run.backend: int(values[where]) for run, values in zip((reference, other), spikes)},
                    "u": {run.backend: int(run.u[name][where]) for run in (reference, other)},
                    "v": {run.backend: int(run.v[name][where]) for run in (reference, other)},
                })
    return compared_spikes, compared_states, mismatches, None if first is None else first[1]


def float_fixed_agreement(fx_net: FixedPointNetwork, float_run: RunResult, fixed_run: RunResult) -> dict[str, float]:
    """Per spiking layer recorded by both: the fraction of equal spikes, float step t against fixed step
    t + k + 1 for layer k (docs/fixed-point.md §4.8, §5.1)."""
    steps = float_run.input_steps
    agreement = {}
    for index, layer in enumerate(fx_net.layers):
        if layer.name in float_run.layers and layer.name in fixed_run.layers:
            delayed = fixed_run.layers[layer.name][index + 1:index + 1 + steps]
            agreement[layer.name] = float(np.mean(float_run.layers[layer.name] == delayed))
    return agreement


def check_parity(graph_or_path: nir.NIRGraph | str | os.PathLike, backends: Sequence[str] = ("sim", "torch"),
                 inputs: Any = None, labels: Any = None, profile: str = "bso", dt: float | None = None,
                 time_steps: int | None = None, input_scale: float | None = None,
                 weight_bits: int | None = None) -> ParityReport:
    """Compile the graph once, run ``inputs`` (float, (T, batch, *input_shape), or (batch, *input_shape)
    with ``time_steps``) through every fixed backend in ``backends`` with recording, compare them with the
    first exactly, and compare the first with the graph's float model (``float`` backend). ``labels``
    (batch,) adds the accuracies."""
    names = tuple(backends)
    if not names:
        raise ValueError("give at least one fixed-point backend, e.g. backends=('sim', 'torch')")
    for name in names:
        if get_backend(name).kind != "fixed":
            raise ValueError(f"backend {name!r} is not a fixed-point backend; the float model is always compared")
    if inputs is None:
        raise ValueError("check_parity needs inputs (see dataset_samples for a data set's test samples)")
    graph = read_graph(graph_or_path)
    x = prepare_inputs(inputs, graph_input_shape(graph), time_steps)
    fx_net = compile_nir(graph, profile=profile, input_scale=input_scale, weight_bits=weight_bits, dt=dt,
                         time_steps=int(x.shape[0]))
    runs, seconds = [], {}
    for name in names:
        start = time.perf_counter()
        runs.append(run_fixed(fx_net, name, x, record=True))
        seconds[name] = time.perf_counter() - start
    compared_spikes, compared_states, mismatches, first = _compare(fx_net, runs)
    float_run = run_float(graph, "float", x, dt=dt, record=True)
    float_accuracy = fixed_accuracy = None
    backend_accuracy: dict[str, float] = {}
    if labels is not None:
        truth = np.asarray(labels).reshape(-1)
        if truth.shape != (x.shape[1],):
            raise ValueError(f"labels have shape {np.shape(labels)}; expected ({x.shape[1]},), one per sample")
        float_accuracy = float(np.mean(float_run.predictions == truth))
        fixed_accuracy = float(np.mean(runs[0].predictions == truth))
        backend_accuracy = {run.backend: float(np.mean(run.predictions == truth)) for run in runs}
    return ParityReport(
        backends=names, profile=fx_net.profile, samples=int(x.shape[1]), time_steps=int(x.shape[0]),
        latency=fx_net.latency, compared_spikes=compared_spikes, compared_states=compared_states,
        mismatches=mismatches, first_divergence=first, float_accuracy=float_accuracy, fixed_accuracy=fixed_accuracy,
        prediction_agreement=float(np.mean(float_run.predictions == runs[0].predictions)),
        float_fixed_agreement=float_fixed_agreement(fx_net, float_run, runs[0]), backend_accuracy=backend_accuracy,
        backend_seconds=seconds)


def dataset_samples(name: str, samples: int, seed: int = 0,
                    root: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` test samples of data set ``name`` (``bso_deploy.data``): (inputs (samples,
    *input_shape) float32, labels (samples,) int64), for direct encoding (repeat them over time_steps)."""
    from bso_deploy.data import load_dataset

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    split = load_dataset(name, root=root, seed=seed)
    count = min(samples, len(split.test))
    pairs = [split.test[index] for index in range(count)]
    return (np.stack([image.numpy() for image, _ in pairs]).astype(np.float32),
            np.array([int(label) for _, label in pairs], dtype=np.int64))
