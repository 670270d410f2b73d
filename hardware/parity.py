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

from ..errors import InvalidInputError
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
from .input_checks import check_input_values, check_labels, network_classes, network_input_range
from .network import FixedPointNetwork

__all__ = ["PARITY_MEMORY", "ParityReport", "SpikeMatch", "check_parity", "float_fixed_agreement", "parity_batch_size",
           "spike_match"]

PARITY_MEMORY = 1 << 30  # bytes of recorded runs per pass of check_parity (parity_batch_size)


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


Keyed = tuple[tuple[int, ...], dict[str, Any]]  # a first difference and its place in the order of the search


def _compare(fx_net: FixedPointNetwork, runs: list[RunResult], offset: int) -> tuple[int, int, int, Keyed | None]:
    """(compared spikes, compared states, mismatches, first divergence keyed by (step, layer, batch, neuron))
    of runs[1:] against runs[0], whose sample 0 is sample ``offset`` of the whole run."""
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
            key = (step, index, batch + offset, neuron)
            if first is None or key < first[0]:
                where = (step, batch, *np.unravel_index(neuron, layer.output_shape))
                first = (key, {
                    "layer": name, "layer_index": index, "step": step, "batch": batch + offset, "neuron": neuron,
                    "neuron_index": [int(i) for i in where[2:]], "backends": [reference.backend, other.backend],
                    "spike": {run.backend: int(values[where]) for run, values in zip((reference, other), spikes)},
                    "u": {run.backend: int(run.u[name][where]) for run in (reference, other)},
                    "v": {run.backend: int(run.v[name][where]) for run in (reference, other)},
                })
    return compared_spikes, compared_states, mismatches, first


def _compare_saturation(fx_net: FixedPointNetwork, runs: list[RunResult], offset: int) -> tuple[int, Keyed | None]:
    """(differing per-neuron counts, first difference keyed by (backend, layer, event, batch, neuron)) between
    the runs that report saturation counts, each against the first of them (docs/fixed-point.md §5.6); sample
    0 of the runs is sample ``offset`` of the whole run."""
    counting = [run for run in runs if run.saturation]
    mismatches, first = 0, None
    for backend, other in enumerate(counting[1:]):
        for index, layer in enumerate(fx_net.layers):
            for number, event in enumerate(("v", "u", "a")):
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
                    first = ((backend, index, number, batch + offset, neuron), {
                        "layer": layer.name, "event": event, "batch": batch + offset, "neuron": neuron,
                        "backends": [counting[0].backend, other.backend],
                        "count": {counting[0].backend: int(ours[where]), other.backend: int(theirs[where])}})
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
    return {name: _spike_match(counts) for name, counts in _match_counts(fx_net, float_run, fixed_run).items()}


def _spike_match(counts: list[int]) -> SpikeMatch:
    equal, total, floats, fixed, matched = counts
    return SpikeMatch(agreement=equal / total if total else float("nan"), float_spikes=floats, fixed_spikes=fixed,
                      matched_spikes=matched)


def _match_counts(fx_net: FixedPointNetwork, float_run: RunResult, fixed_run: RunResult) -> dict[str, list[int]]:
    """Per layer of :func:`spike_match`: [equal spikes, compared, float spikes, fixed spikes, matched], counts
    that add up over blocks of samples."""
    steps = float_run.input_steps
    result = {}
    for index, layer in enumerate(fx_net.layers):
        if layer.name in float_run.layers and layer.name in fixed_run.layers:
            floating = float_run.layers[layer.name] != 0
            fixed = fixed_run.layers[layer.name][index + 1:index + 1 + steps] != 0
            result[layer.name] = [int(np.count_nonzero(floating == fixed)), floating.size, int(floating.sum()),
                                  int(fixed.sum()), int((floating & fixed).sum())]
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


def parity_batch_size(fx_net: FixedPointNetwork, steps: int, backends: int) -> int:
    """Samples per pass of :func:`check_parity`: what one pass holds, the recorded spikes, u and v (int8 and
    two int64) of every neuron at every step (T + latency) for each fixed backend and the float model's
    spikes and states (float64), within PARITY_MEMORY bytes."""
    per_sample = (17 * backends + 8) * sum(layer.num_neurons for layer in fx_net.layers) * (steps + fx_net.latency)
    return max(1, PARITY_MEMORY // per_sample)


@dataclass
class _Totals:
    """What :func:`check_parity` adds up over its passes; every field is a sum, or a first difference by the
    order of the search, so that the report does not depend on the size of the passes."""

    compared_spikes: int = 0
    compared_states: int = 0
    mismatches: int = 0
    first: Keyed | None = None
    saturation_mismatches: int = 0
    saturation_first: Keyed | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)
    spike_counts: dict[str, dict[str, int]] = field(default_factory=dict)  # fixed (first backend), float
    matches: dict[str, list[int]] = field(default_factory=dict)
    saturation: dict[str, dict[str, int]] = field(default_factory=dict)
    saturation_backends: tuple[str, ...] = ()
    clipped: int = 0

    def add_pass(self, fx_net: FixedPointNetwork, runs: list[RunResult], float_run: RunResult | None,
                 offset: int) -> None:
        spikes, states, mismatches, first = _compare(fx_net, runs, offset)
        saturation_mismatches, saturation_first = _compare_saturation(fx_net, runs, offset)
        self.compared_spikes, self.compared_states = self.compared_spikes + spikes, self.compared_states + states
        self.mismatches += mismatches
        self.saturation_mismatches += saturation_mismatches
        self.first = min((f for f in (self.first, first) if f is not None), default=None, key=lambda f: f[0])
        self.saturation_first = min((f for f in (self.saturation_first, saturation_first) if f is not None),
                                    default=None, key=lambda f: f[0])
        for run in runs + ([float_run] if float_run is not None else []):
            self.predictions.setdefault(run.backend, []).append(run.predictions)
        for run in (runs[0], float_run):
            if run is not None:
                counts = self.spike_counts.setdefault(run.backend, {})
                counts.update({name: counts.get(name, 0) + count for name, count in run.spike_counts.items()})
        if float_run is not None:
            for name, values in _match_counts(fx_net, float_run, runs[0]).items():
                self.matches[name] = [a + b for a, b in zip(self.matches.get(name, [0] * 5), values)]
        counting = [run for run in runs if run.saturation]
        self.saturation_backends = tuple(run.backend for run in counting)
        for name, counts in (counting[0].saturation.items() if counting else ()):
            totals = self.saturation.setdefault(name, {})
            totals.update({key: totals.get(key, 0) + value for key, value in counts.totals().items()})
        self.clipped += runs[0].input_clipped

    def silent_warnings(self, fx_net: FixedPointNetwork, backend: str, float_model: bool) -> list[str]:
        """Silent layers over the whole run (a layer may be silent on a few samples only)."""

        def counted(name: str) -> RunResult:
            return RunResult(backend=name, output=np.empty(0), latency=0, predictions=np.empty(0, np.int64),
                             input_steps=0, spike_counts=self.spike_counts[name])

        warnings = silent_layer_warnings(counted(backend), fx_net)
        return warnings + (silent_layer_warnings(counted("float")) if float_model else [])


def check_parity(model: nir.NIRGraph | FixedPointNetwork | str | os.PathLike,
                 backends: Sequence[str] = ("sim", "torch"), inputs: Any = None, labels: Any = None,
                 profile: str | None = None, dt: float | None = None, time_steps: int | None = None,
                 input_scale: float | None = None, weight_bits: int | None = None,
                 scaling: str | None = None, calibration: np.ndarray | None = None,
                 input_range: float | None = None, bias_correction: bool = True,
                 batch_size: int | None = None) -> ParityReport:
    """Compile the graph once (profile default "bso"; input_scale, weight_bits, scaling, calibration,
    input_range, bias_correction as :func:`compile_for_inputs` takes them), or take a compiled network as it is, run
    ``inputs`` (float, (T, batch, *input_shape), or (batch, *input_shape) with ``time_steps``) through
    every fixed backend in ``backends`` with recording, compare them with the first exactly, and compare the
    first with the graph's float model (``float`` backend; none for a compiled network). ``labels`` (batch,)
    adds the accuracies.

    The samples go through in passes of ``batch_size`` samples (None: :func:`parity_batch_size`, a bound on
    memory), each backend and the float model on the same pass, so that a whole test set (10,000 images of a
    conv net) runs in bounded memory; the report is the same for any batch_size (backend_seconds aside). A
    backend that compiles per call (``lava``) compiles once per pass."""
    names = tuple(backends)
    if not names:
        raise InvalidInputError("give at least one fixed-point backend, e.g. backends=('sim', 'torch')")
    for name in names:
        if get_backend(name).kind != "fixed":
            raise InvalidInputError(f"backend {name!r} is not a fixed-point backend; the float model is always "
                                    "compared")
    if inputs is None:
        raise InvalidInputError("check_parity needs inputs (bso_deploy.parity_data.dataset_samples gives a data "
                                "set's test samples)")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidInputError(f"batch_size must be an integer >= 1 (samples per pass) or None, got {batch_size!r}")
    fx_net, graph, x = _model_and_inputs(model, inputs, profile, dt, time_steps, {
        "input_scale": input_scale, "weight_bits": weight_bits, "scaling": scaling, "calibration": calibration,
        "input_range": input_range, "bias_correction": None if bias_correction else False})  # None: the default
    check_input_values(x, "inputs", network_input_range(fx_net), exact=False)  # beyond saturation: another scale
    truth = None if labels is None else check_labels(labels, "given", int(x.shape[1]), network_classes(fx_net))
    samples = int(x.shape[1])
    size = batch_size or parity_batch_size(fx_net, int(x.shape[0]), len(names))
    totals = _Totals(seconds=dict.fromkeys(names, 0.0))
    for offset in range(0, samples, size):
        block = x[:, offset:offset + size]
        runs = []
        for name in names:
            start = time.perf_counter()
            runs.append(run_fixed(fx_net, name, block, record=True))
            totals.seconds[name] += time.perf_counter() - start
        float_run = run_float(graph, "float", block, dt=dt, record=True) if graph is not None else None
        totals.add_pass(fx_net, runs, float_run, offset)
    return _report(fx_net, x, names, truth, totals, graph is not None)


def _report(fx_net: FixedPointNetwork, x: np.ndarray, names: tuple[str, ...], truth: np.ndarray | None,
            totals: _Totals, float_model: bool) -> ParityReport:
    warnings = list(dict.fromkeys(totals.silent_warnings(fx_net, names[0], float_model)))
    clip = input_clip_warning(fx_net, x, totals.clipped)
    warnings += [clip] if clip else []
    predictions = {name: np.concatenate(values) for name, values in totals.predictions.items()}
    matches = {name: _spike_match(counts) for name, counts in totals.matches.items()}
    float_accuracy = fixed_accuracy = None
    backend_accuracy: dict[str, float] = {}
    if truth is not None:
        float_accuracy = float(np.mean(predictions["float"] == truth)) if float_model else None
        fixed_accuracy = float(np.mean(predictions[names[0]] == truth))
        backend_accuracy = {name: float(np.mean(predictions[name] == truth)) for name in names}
    return ParityReport(
        backends=names, profile=fx_net.profile, samples=int(x.shape[1]), time_steps=int(x.shape[0]),
        latency=fx_net.latency, compared_spikes=totals.compared_spikes, compared_states=totals.compared_states,
        mismatches=totals.mismatches + totals.saturation_mismatches,
        first_divergence=None if totals.first is None else totals.first[1], float_accuracy=float_accuracy,
        fixed_accuracy=fixed_accuracy,
        prediction_agreement=float(np.mean(predictions["float"] == predictions[names[0]])) if float_model else None,
        float_fixed_agreement={name: match.agreement for name, match in matches.items()},
        backend_accuracy=backend_accuracy, backend_seconds=totals.seconds, float_model=float_model,
        float_spikes={name: match.float_spikes for name, match in matches.items()},
        fixed_spikes={name: match.fixed_spikes for name, match in matches.items()},
        matched_spikes={name: match.matched_spikes for name, match in matches.items()},
        spike_ratio={name: match.ratio for name, match in matches.items()},
        spike_precision={name: match.precision for name, match in matches.items()},
        spike_recall={name: match.recall for name, match in matches.items()},
        saturation=totals.saturation, saturation_backends=totals.saturation_backends,
        saturation_mismatches=totals.saturation_mismatches,
        saturation_divergence=None if totals.saturation_first is None else totals.saturation_first[1],
        input_clipped=totals.clipped, warnings=tuple(warnings))
