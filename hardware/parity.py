"""Parity checker: the same inputs through several fixed-point backends, compared exactly, and the float
model of the same graph compared with the fixed-point result: :func:`check_parity` -> :class:`ParityReport`.

Fixed backends must agree bit for bit: spikes, u and v of every layer at every step (docs/fixed-point.md
§5.5). The first backend is the reference; a disagreement is reported at its earliest step (then lowest
layer, sample, neuron), where it was caused rather than propagated.

Float vs fixed: layer k of the fixed-point network receives the input of step t at step t + k + 1 (one
synaptic delay per layer, including layer 0, §4.8 and §5.1), so fixed step t + k + 1 of layer k is compared
with float step t of the same layer. That agreement is a measurement, not a requirement (docs/fixed-point.md
§10.4 lists what differs). Since most neuron-steps are silent, agreement stays high when a fixed layer
fires a fraction of the float spikes; :func:`spike_match` therefore also gives, per layer, the ratio of the
spike counts and the precision and recall of the fixed spikes against the float ones.

Saturation counts (docs/fixed-point.md §5.6) are part of a fixed run: backends that both report them must
report the same counts, neuron by neuron; a difference counts as mismatches.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import nir
import numpy as np

from .backends import (
    RunResult,
    compile_for_inputs,
    get_backend,
    input_clip_warning,
    prepare_inputs,
    run_fixed,
    run_float,
    silent_layer_warnings,
)
from .compiler import graph_input_shape, read_graph
from .network import FixedPointNetwork

__all__ = ["ParityReport", "SpikeMatch", "check_parity", "float_fixed_agreement", "spike_match"]


@dataclass(frozen=True)
class ParityReport:
    """What :func:`check_parity` found; :meth:`to_dict` is JSON-serialisable.

    compared_spikes: spike values compared (layers x steps x samples x neurons, per compared pair);
    compared_states: u and v values compared; mismatches: positions where spikes, u or v differ, plus the
    per-neuron saturation counts that differ (0 means parity). first_divergence: None, or the earliest
    spike/state mismatch: layer, step, batch index, neuron (flat and per axis), and each backend's spike, u
    and v there. saturation_divergence: None, or the first differing saturation count (layer, event,
    batch, neuron, each backend's count).

    Float vs first fixed backend, per spiking layer (delays accounted for; empty without a float model,
    ``float_model`` False, when a compiled network was given): float_fixed_agreement, the fraction of equal
    spikes over all neuron-steps; float_spikes / fixed_spikes, the spike counts, matched_spikes those in
    both (same neuron, sample and step); spike_ratio = fixed / float; spike_precision = matched / fixed,
    the fraction of fixed spikes that the float model also emits; spike_recall = matched / float, the
    fraction of float spikes the fixed network reproduces (None where undefined: no fixed spikes for
    precision, no float spikes for ratio and recall).
    prediction_agreement: fraction of samples with equal float and fixed predictions (None without a float
    model). Accuracies are None without labels; backend_accuracy holds each fixed backend's own accuracy
    (empty without labels), and backend_seconds each backend's wall time for the whole run (compilation
    for it included, recording on).
    saturation: per layer, the first counting backend's totals (``LayerSaturation.totals``; empty when no
    backend counts); saturation_backends: the backends that reported counts. input_clipped: input values
    above the network's input range (clipped). warnings: silent layers (check dt) and clipped inputs.
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
    prediction_agreement: float | None
    float_fixed_agreement: dict[str, float]
    backend_accuracy: dict[str, float] = field(default_factory=dict)
    backend_seconds: dict[str, float] = field(default_factory=dict)
    float_model: bool = True
    float_spikes: dict[str, int] = field(default_factory=dict)
    fixed_spikes: dict[str, int] = field(default_factory=dict)
    matched_spikes: dict[str, int] = field(default_factory=dict)
    spike_ratio: dict[str, float | None] = field(default_factory=dict)
    spike_precision: dict[str, float | None] = field(default_factory=dict)
    spike_recall: dict[str, float | None] = field(default_factory=dict)
    saturation: dict[str, dict[str, int]] = field(default_factory=dict)
    saturation_backends: tuple[str, ...] = ()
    saturation_mismatches: int = 0
    saturation_divergence: dict[str, Any] | None = None
    input_clipped: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        for name in ("backends", "saturation_backends", "warnings"):
            result[name] = list(getattr(self, name))
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


def _compare_saturation(fx_net: FixedPointNetwork, runs: list[RunResult]) -> tuple[int, dict[str, Any] | None]:
    """(differing per-neuron counts, first difference) between the runs that report saturation counts,
    each against the first of them (docs/fixed-point.md §5.6)."""
    counting = [run for run in runs if run.saturation]
    mismatches, first = 0, None
    for other in counting[1:]:
        for layer in fx_net.layers:
            for event in ("v", "u", "a"):
                ours = np.asarray(getattr(counting[0].saturation[layer.name], event))
                theirs = np.asarray(getattr(other.saturation[layer.name], event))
                if ours.shape != theirs.shape:
                    raise ValueError(f"backends {counting[0].backend!r} and {other.backend!r} report saturation "
                                     f"counts of shapes {ours.shape} and {theirs.shape} for layer {layer.name!r}")
                differ = ours != theirs
                mismatches += int(differ.sum())
                if first is None and differ.any():
                    batch, neuron = (int(i) for i in np.argwhere(differ.reshape(differ.shape[0], -1))[0])
                    where = (batch, *np.unravel_index(neuron, layer.output_shape))
                    first = {"layer": layer.name, "event": event, "batch": batch, "neuron": neuron,
                             "backends": [counting[0].backend, other.backend],
                             "count": {counting[0].backend: int(ours[where]), other.backend: int(theirs[where])}}
    return mismatches, first


class SpikeMatch(NamedTuple):
    """Float vs fixed spikes of one layer over the aligned steps (see :func:`spike_match`)."""

    agreement: float
    float_spikes: int
    fixed_spikes: int
    matched_spikes: int

    @property
    def ratio(self) -> float | None:
        return self.fixed_spikes / self.float_spikes if self.float_spikes else None

    @property
    def precision(self) -> float | None:
        return self.matched_spikes / self.fixed_spikes if self.fixed_spikes else None

    @property
    def recall(self) -> float | None:
        return self.matched_spikes / self.float_spikes if self.float_spikes else None


def spike_match(fx_net: FixedPointNetwork, float_run: RunResult, fixed_run: RunResult) -> dict[str, SpikeMatch]:
    """Per spiking layer recorded by both: float step t against fixed step t + k + 1 for layer k
    (docs/fixed-point.md §4.8, §5.1) over the T input steps. With F, X the float and fixed spikes (0/1)
    there: agreement = mean(F == X), matched = sum(F X), ratio = sum X / sum F, precision = matched / sum
    X, recall = matched / sum F."""
    steps = float_run.input_steps
    result = {}
    for index, layer in enumerate(fx_net.layers):
        if layer.name in float_run.layers and layer.name in fixed_run.layers:
            floating = float_run.layers[layer.name] != 0
            fixed = fixed_run.layers[layer.name][index + 1:index + 1 + steps] != 0
            result[layer.name] = SpikeMatch(agreement=float(np.mean(floating == fixed)),
                                            float_spikes=int(floating.sum()), fixed_spikes=int(fixed.sum()),
                                            matched_spikes=int((floating & fixed).sum()))
    return result


def float_fixed_agreement(fx_net: FixedPointNetwork, float_run: RunResult, fixed_run: RunResult) -> dict[str, float]:
    """Per spiking layer recorded by both: the fraction of equal spikes, float step t against fixed step
    t + k + 1 for layer k (docs/fixed-point.md §4.8, §5.1)."""
    return {name: match.agreement for name, match in spike_match(fx_net, float_run, fixed_run).items()}


def _model_and_inputs(model: Any, inputs: Any, profile: str | None, dt: float | None, time_steps: int | None,
                      compile_options: dict[str, Any]) -> tuple[FixedPointNetwork, nir.NIRGraph | None, np.ndarray]:
    if isinstance(model, FixedPointNetwork):
        given = sorted(name for name, value in {"dt": dt, **compile_options}.items() if value is not None)
        if given:
            raise ValueError(f"{', '.join(given)} apply to NIR graphs; a compiled network is already quantized "
                             "(compile the graph again with them)")
        if profile not in (None, model.profile):
            raise ValueError(f"the compiled network has profile {model.profile!r}, not {profile!r}; drop the "
                             "profile or compile the graph for it")
        return model, None, prepare_inputs(inputs, model.input_shape, time_steps)
    graph = read_graph(model)
    x = prepare_inputs(inputs, graph_input_shape(graph), time_steps)
    fx_net = compile_for_inputs(graph, int(x.shape[0]), profile=profile or "bso", dt=dt, **compile_options)
    return fx_net, graph, x


def check_parity(model: nir.NIRGraph | FixedPointNetwork | str | os.PathLike,
                 backends: Sequence[str] = ("sim", "torch"), inputs: Any = None, labels: Any = None,
                 profile: str | None = None, dt: float | None = None, time_steps: int | None = None,
                 input_scale: float | None = None, weight_bits: int | None = None,
                 scaling: str | None = None, calibration: np.ndarray | None = None,
                 input_range: float | None = None, bias_correction: bool = True) -> ParityReport:
    """Compile the graph once (profile default "bso"; input_scale, weight_bits, scaling, calibration,
    input_range, bias_correction as :func:`compile_for_inputs` takes them), or take a compiled network as it is, run
    ``inputs`` (float, (T, batch, *input_shape), or (batch, *input_shape) with ``time_steps``) through
    every fixed backend in
    ``backends`` with recording, compare them with the first exactly, and compare the first with the
    graph's float model (``float`` backend; none for a compiled network). ``labels`` (batch,) adds the
    accuracies."""
    names = tuple(backends)
    if not names:
        raise ValueError("give at least one fixed-point backend, e.g. backends=('sim', 'torch')")
    for name in names:
        if get_backend(name).kind != "fixed":
            raise ValueError(f"backend {name!r} is not a fixed-point backend; the float model is always compared")
    if inputs is None:
        raise ValueError("check_parity needs inputs (bso_deploy.parity_data.dataset_samples gives a data set's test "
                         "samples)")
    fx_net, graph, x = _model_and_inputs(model, inputs, profile, dt, time_steps, {
        "input_scale": input_scale, "weight_bits": weight_bits, "scaling": scaling, "calibration": calibration,
        "input_range": input_range, "bias_correction": None if bias_correction else False})  # None: the default
    truth = None
    if labels is not None:
        truth = np.asarray(labels).reshape(-1)
        if truth.shape != (x.shape[1],):
            raise ValueError(f"labels have shape {np.shape(labels)}; expected ({x.shape[1]},), one per sample")
    runs, seconds = [], {}
    for name in names:
        start = time.perf_counter()
        runs.append(run_fixed(fx_net, name, x, record=True))
        seconds[name] = time.perf_counter() - start
    compared_spikes, compared_states, mismatches, first = _compare(fx_net, runs)
    saturation_mismatches, saturation_first = _compare_saturation(fx_net, runs)
    counting = [run for run in runs if run.saturation]
    float_run = run_float(graph, "float", x, dt=dt, record=True) if graph is not None else None
    warnings = list(dict.fromkeys(silent_layer_warnings(runs[0], fx_net) +
                                  (silent_layer_warnings(float_run) if float_run is not None else [])))
    clip = input_clip_warning(fx_net, x, runs[0].input_clipped)
    warnings += [clip] if clip else []
    matches = spike_match(fx_net, float_run, runs[0]) if float_run is not None else {}
    float_accuracy = fixed_accuracy = None
    backend_accuracy: dict[str, float] = {}
    if truth is not None:
        float_accuracy = None if float_run is None else float(np.mean(float_run.predictions == truth))
        fixed_accuracy = float(np.mean(runs[0].predictions == truth))
        backend_accuracy = {run.backend: float(np.mean(run.predictions == truth)) for run in runs}
    return ParityReport(
        backends=names, profile=fx_net.profile, samples=int(x.shape[1]), time_steps=int(x.shape[0]),
        latency=fx_net.latency, compared_spikes=compared_spikes, compared_states=compared_states,
        mismatches=mismatches + saturation_mismatches, first_divergence=first, float_accuracy=float_accuracy,
        fixed_accuracy=fixed_accuracy,
        prediction_agreement=None if float_run is None else float(np.mean(float_run.predictions ==
                                                                          runs[0].predictions)),
        float_fixed_agreement={name: match.agreement for name, match in matches.items()},
        backend_accuracy=backend_accuracy, backend_seconds=seconds, float_model=float_run is not None,
        float_spikes={name: match.float_spikes for name, match in matches.items()},
        fixed_spikes={name: match.fixed_spikes for name, match in matches.items()},
        matched_spikes={name: match.matched_spikes for name, match in matches.items()},
        spike_ratio={name: match.ratio for name, match in matches.items()},
        spike_precision={name: match.precision for name, match in matches.items()},
        spike_recall={name: match.recall for name, match in matches.items()},
        saturation={name: counts.totals() for name, counts in counting[0].saturation.items()} if counting else {},
        saturation_backends=tuple(run.backend for run in counting), saturation_mismatches=saturation_mismatches,
        saturation_divergence=saturation_first, input_clipped=runs[0].input_clipped, warnings=tuple(warnings))

