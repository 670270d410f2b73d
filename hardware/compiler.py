"""NIR graph -> :class:`FixedPointNetwork`: :func:`compile_nir`.

The graph must be a chain ``Input -> [SumPool2d | AvgPool2d | Flatten]* -> (Affine | Linear | Conv2d) ->
(LIF | CubaLIF | IF) -> ... -> (Affine | Linear) -> Output`` (the last neuron may also feed the Output
directly); a neuron may have one recurrent loop through an Affine/Linear (:mod:`.chain`, §10.2). The steps,
one module each: :mod:`.node_readers` reads the chain into :class:`~.quantize.FloatLayer`\\ s (float units,
the neuron's input gain folded in); :mod:`.scaling` chooses each layer's scale from the worst case (§10.3) or
from calibration data (:mod:`.calibration`, §10.6); :func:`~.quantize.quantize_layer` turns each layer into
integers; :mod:`.compile_report` types what was chosen (:class:`~.compile_report.QuantizationReport`). The
mapping and the quantization rules are docs/fixed-point.md §7 and §10; unsupported nodes, values and profile
restrictions raise ValueError naming the NIR node (or layer), the parameter and the option that would fix it.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import nir
import numpy as np
from bso_deploy.export.nir.files import read_nir_file
from bso_deploy.export.nir.metadata import metadata_float

from bso_deploy.errors import InvalidInputError

from .calibration import DEFAULT_CALIBRATION_MARGIN, LayerActivity, observe_activity, weight_error_current
from .chain import graph_chain
from .compile_report import LayerQuantization, QuantizationReport, ThresholdFold
from .network import FixedPointNetwork
from .node_readers import SUPPORTED_NODE_TYPES, float_layers
from .quantize import (
    DEFAULT_INPUT_SCALE,
    FloatLayer,
    LayerOptions,
    fold_layer_thresholds,
    input_max_for_scale,
    quantize_inputs,
    quantize_layer,
    rounded_weight,
)
from .scaling import (
    DEFAULT_TIME_STEPS,
    SCALINGS,
    calibrated_input_scale,
    calibration_samples,
    layer_options,
    resolve_scaling,
)
from .spec import SPEC, get_profile

__all__ = [
    "DEFAULT_TIME_STEPS",
    "SCALINGS",
    "SUPPORTED_NODE_TYPES",
    "compile_nir",
    "float_layers",
    "graph_input_shape",
    "quantize_inputs",
    "read_graph",
]

TIME_STEPS_KEY = "time_steps"  # graph metadata written by export_checkpoint_to_nir


def read_graph(graph_or_path: nir.NIRGraph | str | os.PathLike) -> nir.NIRGraph:
    """A NIR graph, or one read (and checked) from a file with the importer's reader."""
    if isinstance(graph_or_path, (str, os.PathLike)):
        return read_nir_file(Path(graph_or_path))
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    raise TypeError(f"expected a nir.NIRGraph or a path, not {type(graph_or_path).__name__}")


def graph_input_shape(graph: nir.NIRGraph) -> tuple[int, ...]:
    """Per-sample shape of the graph's Input node (the graph must be a chain, :func:`float_layers`)."""
    return graph_chain(graph).input_shape


def _time_steps(time_steps: int | None, graph: nir.NIRGraph) -> int:
    if time_steps is None and TIME_STEPS_KEY in (graph.metadata or {}):
        time_steps = int(metadata_float(graph.metadata[TIME_STEPS_KEY], "graph metadata 'time_steps'"))
    if time_steps is None:
        return DEFAULT_TIME_STEPS
    if isinstance(time_steps, bool) or int(time_steps) != time_steps or time_steps < 1:
        raise InvalidInputError(f"time_steps must be an integer >= 1, got {time_steps!r}")
    return int(time_steps)


def _real(value: Any, name: str, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= low:
        raise InvalidInputError(f"{name} must be a finite number > {low:g}, got {value!r}")
    return float(value)


def _bias_corrected(layer: FloatLayer, weight_bits: int, activity: LayerActivity) -> tuple[FloatLayer, float]:
    """``layer`` whose bias takes back the mean current its weights' rounding removes on the calibration data
    (§10.6), and the largest correction (float units of v)."""
    correction = weight_error_current(layer, rounded_weight(layer, weight_bits), activity.input_mean)
    if layer.tau_syn_steps is not None:  # a current's mean reaches v tau_syn times (§10.2, CubaLIF)
        correction = correction * layer.tau_syn_steps
    return replace(layer, bias=np.asarray(layer.bias) + correction), float(np.abs(correction).max(initial=0.0))


def compile_nir(nir_graph: nir.NIRGraph | str | os.PathLike, profile: str = "bso", input_scale: float | None = None,
                weight_bits: int | None = None, dt: float | None = None,
                time_steps: int | None = None, fold_thresholds: bool = False,
                netx_compatible: bool = False, scaling: str | None = None, calibration: Any = None,
                calibration_margin: float = DEFAULT_CALIBRATION_MARGIN,
                input_range: float | None = None, bias_correction: bool = True) -> FixedPointNetwork:
    """Compile a NIR graph (or file) into a :class:`FixedPointNetwork` for ``profile`` ("bso" or "loihi").

    input_scale: float inputs (expected in [0, 1]) become ``round(x * input_scale)`` clipped to
    ``[0, min(255, round(input_scale))]`` (default 255; :func:`quantize_inputs` applies it).
    weight_bits: signed mantissa bits of full-precision weights and the largest binary magnitude (2 ... 8,
    default 8). dt: seconds per step for graphs that record none. time_steps: input steps the readout must
    sum without saturating (default: graph metadata ``time_steps``, else 32). The input scale and range are
    the network's ``input_scale`` / ``input_max``; per layer, the chosen scales and errors are in
    ``quantization``, which ``QuantizationReport.from_network(fx_net)`` reads typed (docs/fixed-point.md §10).
    Profile "bso" starts layer k's bias at step k + 1, with its first input (``bias_delay``, §3.4), so that
    the network run on T input steps plus ``latency`` zero steps is the float one shifted by the latency;
    profile "loihi" adds it from step 0, as Lava's LIF does, and says so in the report (``bias_timing_note``,
    §10.4). A binary readout whose rows differ in alpha gets full-precision rows, so that its v is in one unit
    for the argmax (report ``binary`` False and ``note``, §10.2).

    fold_thresholds: fold per-neuron thresholds (BatchNorm, binary rows of different alpha) into per-row
    8-bit weights so that one vth per layer suffices, as profile "loihi" needs (report key
    ``threshold_fold``). netx_compatible: only integer weights without exponent and biases with exponent 6,
    what lava-dl's netx format can carry (§10.5).

    scaling: "worst-case" chooses every scale so that no register can overflow on any input in the input range
    over ``time_steps`` (§10.3); "calibrated" runs the float layers on ``calibration`` inputs ((T, batch,
    *input_shape), or (batch, *input_shape) repeated ``time_steps`` times) and bounds u and v by
    ``calibration_margin`` times the largest values seen (§10.6), so precision is not spent on states that never
    occur; saturation on other inputs is then possible and every fixed-point run counts it (§5.6). Default:
    calibrated when ``calibration`` is given. With calibration data and no ``input_scale``, integer-valued data
    (event counts) keep scale 1 and other data map their largest value to 255; the input range (largest float
    input, default 1; ``input_range``, or the calibration data's) sets ``input_max`` (§10.1). bias_correction:
    with calibration data, add to each full-precision neuron's bias the mean current its weights' rounding
    takes away on those data (§10.6)."""
    graph = read_graph(nir_graph)
    profile_ = get_profile(profile)
    scaling = resolve_scaling(scaling, calibration)
    if input_scale is not None:
        _real(input_scale, "input_scale")
    margin = _real(calibration_margin, "calibration_margin", 1.0) if scaling == "calibrated" else 2.0
    bits = SPEC.weight_bits if weight_bits is None else weight_bits
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 2 <= bits <= SPEC.weight_bits:
        raise InvalidInputError(f"weight_bits must be an integer in [2, {SPEC.weight_bits}], got {weight_bits!r}")
    layers = float_layers(graph, profile_.name, dt)
    folds: list[dict[str, Any] | None] = [None] * len(layers)
    if fold_thresholds:
        layers, folds = (list(parts) for parts in zip(*(fold_layer_thresholds(layer) for layer in layers)))
    activity: list[LayerActivity | None] = [None] * len(layers)
    scale = DEFAULT_INPUT_SCALE if input_scale is None else float(input_scale)
    value_range = 1.0 if input_range is None else _real(input_range, "input_range")
    if calibration is not None:
        samples = calibration_samples(calibration, layers[0].input_shape, time_steps)
        activity = observe_activity(layers, samples)  # the peaks for calibrated scales, the rates for §10.6's floor
        if time_steps is None:
            time_steps = int(samples.shape[0])
        scale, peak = calibrated_input_scale(samples, input_scale)
        if input_range is None:
            value_range = peak if peak > 0 else 1.0
    steps = _time_steps(time_steps, graph)
    base = LayerOptions(input_scale=scale, input_max=input_max_for_scale(scale, input_range=value_range),
                        weight_bits=int(bits), readout_steps=steps + len(layers), profile=profile_.name, first=True,
                        first_input_step=1, netx_compatible=bool(netx_compatible), calibration_margin=margin)
    fixed, entries = [], []
    for index, layer in enumerate(layers):  # layer k first receives input at step k + 1 (§4.8)
        options = layer_options(base, index, activity[index], scaling)
        correction = None
        if activity[index] is not None and bias_correction and not layer.binary and not netx_compatible:
            layer, correction = _bias_corrected(layer, options.weight_bits, activity[index])
        fixed_layer, report = quantize_layer(layer, options)
        fold = folds[index]
        entries.append(replace(
            LayerQuantization.from_dict(report),
            calibration_spikes=None if activity[index] is None else activity[index].spikes,
            bias_correction=correction, threshold_fold=None if fold is None else ThresholdFold.from_dict(fold),
            netx_compatible=bool(netx_compatible)))
        fixed.append(fixed_layer)
    quantization = QuantizationReport(layers=tuple(entries), time_steps=steps)
    return FixedPointNetwork(profile=profile_.name, input_shape=layers[0].input_shape, layers=tuple(fixed),
                             quantization=tuple(quantization.to_dicts()), input_scale=base.input_scale,
                             input_max=base.input_max)
