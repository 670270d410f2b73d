"""Quantization of one float layer into a :class:`FixedPointLayer` (docs/fixed-point.md §10).

The compiler (``hardware/compiler.py``) reads a NIR graph into :class:`FloatLayer`\\ s, each one synapse
stage and one neuron population in float units with the neuron's input gain already folded into the weights
and the bias; this module turns each into integers and reports what it did. The rules, with their reasons,
are in docs/fixed-point.md §10; in short, per layer:

- integer synaptic input a = K * I: K (``scale``) integer units of a per unit of float current I;
- full precision: q = round(W * c), c = q_max / max|W|, stored as ``weight = 2 q`` (§4.5) and
  ``weight_exp = e - 1``, so K = c * s_in * 2**e (s_in: 255 for layer 0, 1 for spikes);
- binary: row i is divided by its alpha_i so the synapse stays a sign: K = weight_mant * 2**e * s_in and
  the neuron i works with K_i = K / alpha_i; a non-spiking readout keeps its rows binary only when all
  alpha_i are equal (its argmax compares v across neurons, which needs one unit), else its rows become
  full-precision ones (:func:`readout_in_one_unit`);
- v = 64 K_i v_float, vth_i = round(K_i theta_i), bias_i = round(64 K_i b_i) (mantissa and exponent),
  added from the step of the layer's first input on (bias_delay = k + 1 for layer k) where the profile
  allows it (§3.4, §10.2);
- the largest K is chosen for which every worst-case bound of §8 (and §10.3) holds;
- options (§10.5): :func:`fold_layer_thresholds` folds per-neuron thresholds into the weight rows (one vth
  per layer), ``LayerOptions.netx_compatible`` keeps to what lava-dl netx carries (no weight exponent,
  bias exponent 6).

The float layer and its options are in ``hardware/float_layer.py``, the bounds at a candidate scale in
``hardware/layer_bounds.py``; :func:`quantize_inputs`, the caller's side of the input scale (§10.1), is in
``hardware/input_quantization.py``. Their public names are importable from here.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from .float_layer import FloatLayer, LayerOptions, layer_error, per_row
from .input_quantization import DEFAULT_INPUT_SCALE, clipped_inputs, input_max_for_scale, quantize_inputs
from .layer_bounds import LayerBounds, accumulator_bound, scale_candidates, shift_rounding_for
from .network import FixedPointLayer
from .rounding import round_half_away
from .spec import SPEC, FixedPointSpec, decay_from_tau, get_profile

__all__ = [
    "DEFAULT_INPUT_SCALE",
    "FloatLayer",
    "LayerOptions",
    "clipped_inputs",
    "fold_layer_thresholds",
    "input_max_for_scale",
    "quantize_inputs",
    "quantize_layer",
    "readout_in_one_unit",
    "round_half_away",
    "rounded_weight",
]


def _fix_hint(parameter: str, bounds: LayerBounds, options: LayerOptions) -> str:
    lower = "lower input_scale or weight_bits" if options.first else "lower weight_bits"
    if parameter == "v" and bounds.dv == 0:
        return f"compile for fewer time_steps (v sums over them without a leak), or {lower}"
    if parameter in ("activation", "u", "v"):
        return lower
    return (f"the float {parameter} is too large relative to the layer's weights (or its binary scale alpha "
            "too small); rescale it in the float model")


def _decays(layer: FloatLayer, spec: FixedPointSpec) -> tuple[int, int]:
    try:
        dv = 0 if math.isinf(layer.tau_steps) else decay_from_tau(layer.tau_steps, spec)
        du = spec.decay_max if layer.tau_syn_steps is None else max(0, decay_from_tau(layer.tau_syn_steps, spec) - 1)
    except ValueError as error:
        raise layer_error(layer, "tau", f"cannot be expressed as a 12-bit decay: {error}") from None
    return du, dv


def _alphas_differ(alpha: np.ndarray) -> bool:
    """Whether binary row magnitudes differ beyond float64 rounding (relative 1e-12)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    return bool(np.ptp(alpha) > 1e-12 * np.abs(alpha).max())


def readout_in_one_unit(layer: FloatLayer) -> FloatLayer:
    """``layer`` with one unit of v for all its neurons (itself when nothing changes).

    A binary layer runs neuron i with ``K_i = K / alpha_i`` (§10.2): its v_i is 64 K_i times the float v_i.
    A spiking layer absorbs that in ``vth_i = round(K_i theta_i)``, but the prediction of a non-spiking
    readout is the argmax of v over its neurons, which compares v_i in different units when the alpha_i
    differ. Such a readout becomes full precision (``signs`` and ``alpha`` dropped, ``note`` says why), so
    :func:`quantize_layer` gives it ``q_ij = round(c alpha_i sign_ij)``, ``c = q_max / max_i alpha_i``, and
    one K for the layer; row i keeps ``round(q_max alpha_i / max alpha)`` weight levels. A spiking layer, a
    full-precision one and a binary readout whose alpha_i are all equal (then K_i = K for every i, exact) are
    returned as they are (docs/fixed-point.md §10.2)."""
    if layer.spiking or not layer.binary or not _alphas_differ(layer.alpha):
        return layer
    alpha = np.asarray(layer.alpha, dtype=np.float64)
    note = (f"binary readout with per-row alpha in [{alpha.min():.6g}, {alpha.max():.6g}] compiled with full-"
            "precision rows round(c alpha_i sign_ij), one scale K for all neurons, so that the argmax compares v "
            "in one unit (docs/fixed-point.md §10.2)")
    return replace(layer, signs=None, alpha=None, note=note)


def quantize_layer(layer: FloatLayer, options: LayerOptions,
                   spec: FixedPointSpec = SPEC) -> tuple[FixedPointLayer, dict[str, Any]]:
    """Integer layer and its quantization report for ``layer`` (docs/fixed-point.md §10).

    A binary readout whose rows differ in alpha is quantized as full precision (:func:`readout_in_one_unit`;
    report ``binary`` False and ``note``). With ``options.netx_compatible`` a full-precision layer has no
    exponent to trade against its weights, so the largest integer weight q_max' <= 2**(weight_bits - 1) - 1
    for which every bound holds is chosen instead (bisection: the bounds grow with q_max'; §10.5)."""
    q_max = (1 << (options.weight_bits - 1)) - 1
    layer = readout_in_one_unit(layer)  # the compiler's float_layers already did; direct callers may not have
    if not options.netx_compatible or layer.binary:
        return _quantize_at(layer, options, q_max, spec)
    low, high = 1, q_max
    while low < high:  # largest q in [1, q_max] that fits
        middle = (low + high + 1) // 2
        try:
            _quantize_at(layer, options, middle, spec)
            low = middle
        except ValueError:
            high = middle - 1
    fixed, report = _quantize_at(layer, options, low, spec)  # raises, naming the bound, if even q = 1 fails
    report["weight_max_int"] = low
    return fixed, report


def _weight_scale(layer: FloatLayer, q_max: int) -> float:
    """c of §10.2: full-precision weights become q = round(c W) with max |q| = q_max."""
    largest = float(np.abs(layer.weight).max(initial=0.0))
    return q_max / largest if largest > 0 else 1.0


def rounded_weight(layer: FloatLayer, weight_bits: int) -> np.ndarray:
    """The float weights the integer synapses of ``layer`` represent: ``round(c W) / c`` for full precision
    (§10.2), the weights themselves for binary layers (signs times alpha are exact)."""
    if layer.binary:
        return np.asarray(layer.weight, np.float64)
    c = _weight_scale(layer, (1 << (weight_bits - 1)) - 1)
    return round_half_away(layer.weight * c) / c


def _quantize_at(layer: FloatLayer, options: LayerOptions, q_max: int,
                 spec: FixedPointSpec) -> tuple[FixedPointLayer, dict[str, Any]]:
    s_in = options.input_scale if options.first else 1.0
    out_shape = layer.output_shape
    if layer.binary:
        weights = layer.signs.astype(np.int64)
        row_factor = np.broadcast_to(1.0 / per_row(layer.alpha, layer.kind, out_shape), out_shape)
        c = 1.0
    else:
        c = _weight_scale(layer, q_max)
        weights = round_half_away(layer.weight * c)
        row_factor = np.ones(out_shape)
    du, dv = _decays(layer, spec)
    acc_bound = accumulator_bound(weights, options.input_max, layer.pool)
    matmul_bound = weights[0].size * int(np.abs(weights).max(initial=0)) * options.input_max * math.prod(layer.pool)
    if matmul_bound * (1 if layer.binary else 2) >= spec.exact_float64_bound:
        raise layer_error(layer, "weight", f"partial sums up to {matmul_bound} are not exact in float64 (§1.1); "
                          "split the layer")
    bounds = LayerBounds(layer, acc_bound, row_factor, du, dv, options, spec)
    candidates = scale_candidates(layer.binary, c, s_in, q_max, spec, options.netx_compatible)
    low, high = 0, len(candidates)  # the bounds grow with the scale: bisect for the first one that holds
    while low < high:
        middle = (low + high) // 2
        if bounds.evaluate(candidates[middle])["violations"]:
            low = middle + 1
        else:
            high = middle
    if low == len(candidates):
        parameter, message = bounds.evaluate(candidates[-1])["violations"][0]
        raise layer_error(layer, parameter, f"does not fit even at the smallest scale: {message}; "
                          f"{_fix_hint(parameter, bounds, options)}")
    chosen = candidates[low]
    result = bounds.evaluate(chosen)
    binding = bounds.evaluate(candidates[low - 1])["violations"][0][0] if low > 0 else "exponent range"
    bias_mant, bias_exp, bias_value = result["bias_mant"], result["bias_exp"], result["bias"]
    per_neuron = result["per_neuron"]
    vth = result["vth"] if layer.spiking else np.zeros(out_shape, dtype=np.int64)
    if options.profile == "loihi" and layer.spiking and np.ptp(vth) != 0:
        reason = "per-row binary scales (alpha)" if layer.binary else "per-neuron thresholds"
        raise layer_error(layer, "vth", f"takes {len(np.unique(vth))} values in [{vth.min()}, {vth.max()}] from "
                          f"{reason}; profile 'loihi' shares one vth per layer (Lava's LIF); use --profile bso")
    # The float bias acts from the layer's first input on: start it there, where the profile can (§3.4, §10.2).
    bias_delay = options.first_input_step if get_profile(options.profile).delayed_bias else 0
    fixed = FixedPointLayer(
        name=layer.name, kind=layer.kind, input_shape=layer.input_shape,
        weight=weights if layer.binary else 2 * weights, binary=layer.binary, weight_mant=chosen.mant,
        weight_exp=chosen.exp if layer.binary else chosen.exp - 1, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
        bias_exp=bias_exp, bias_delay=bias_delay, reset=layer.reset, spiking=layer.spiking, stride=layer.stride,
        padding=layer.padding, pool=layer.pool, shift_rounding=shift_rounding_for(options.profile),
        **_recurrent_fields(result["recurrent"]))
    v_scale = per_neuron * (1 << spec.state_shift)
    report: dict[str, Any] = {
        "layer": layer.name, "nodes": list(layer.nodes), "kind": layer.kind, "binary": layer.binary,
        "spiking": layer.spiking, "reset": layer.reset,
        "scale": chosen.scale, "scale_min": float(per_neuron.min()), "scale_max": float(per_neuron.max()),
        "binding_bound": binding,
        "weight_bits": 1 if layer.binary else options.weight_bits,
        "weight_max_abs_error": 0.0 if layer.binary else float(np.abs(weights / c - layer.weight).max(initial=0)),
        "bias_max_abs_error": float(np.abs((bias_value - result["floor_offset"]) / v_scale - layer.bias)
                                    .max(initial=0)),
        "threshold_max_abs_error": float(np.abs(vth / per_neuron - layer.threshold).max(initial=0))
        if layer.spiking else 0.0,
        "du": du, "dv": dv,
        "decay_error": 0.0 if math.isinf(layer.tau_steps) else
        abs((spec.decay_unity - dv) / spec.decay_unity - (1 - 1 / layer.tau_steps)),
        "syn_decay_error": None if layer.tau_syn_steps is None else
        abs((spec.decay_unity - du - 1) / spec.decay_unity - (1 - 1 / layer.tau_syn_steps)),
        "activation_bound": result["activation"], "u_bound": result["u_bound"], "v_bound": result["v_bound"],
        "matmul_bound": matmul_bound, "bias_delay": bias_delay, "shift_rounding": fixed.shift_rounding,
        "scaling": "calibrated" if options.calibrated else "worst-case",
    }
    if result["recurrent"] is not None:
        report["recurrent_weight_max_abs_error"] = result["recurrent"]["error"]
        report["recurrent_activation_bound"] = result["recurrent"]["activation"]
    if np.any(result["floor_offset"]):
        report["floor_compensation"] = float(np.max(result["floor_offset"]))
    if options.calibrated:
        report["calibration_margin"] = float(options.calibration_margin)
        report["calibrated_u_peak"] = bounds.peak(options.current_peak, per_neuron)
        report["calibrated_v_peak"] = bounds.peak(options.voltage_peak, per_neuron)
    if bias_delay != options.first_input_step and np.any(bias_value != 0):
        report["bias_timing_note"] = (
            f"the bias is added from step {bias_delay}, {options.first_input_step - bias_delay} step(s) before the "
            f"layer's first input (profile {options.profile!r}: Lava's LIF has no bias delay); the fixed-point "
            "network then differs from the float one shifted by the latency (§10.4); profile 'bso' delays it")
    if dv == 0:
        report["readout_steps"] = options.readout_steps
    if layer.bias_note:
        report["bias_note"] = layer.bias_note
    if layer.note:
        levels = np.abs(weights.reshape(weights.shape[0], -1)).max(axis=1, initial=0)
        report["note"] = f"{layer.note}; rows keep {int(levels.min())} ... {int(levels.max())} of {q_max} levels"
    if options.first:
        report["input_scale"] = float(options.input_scale)
        report["input_max"] = int(options.input_max)
    return fixed, report


def _recurrent_fields(recurrent: dict[str, Any] | None) -> dict[str, Any]:
    """FixedPointLayer fields of a recurrent synapse (docs/fixed-point.md §4.9): 8-bit Lava Dense weights."""
    if recurrent is None:
        return {}
    return {"recurrent_weight": 2 * recurrent["q"], "recurrent_weight_exp": recurrent["exp"] - 1}


def fold_layer_thresholds(layer: FloatLayer) -> tuple[FloatLayer, dict[str, Any] | None]:
    """``layer`` with one threshold for all its neurons, and a report (None when nothing was folded).

    Neuron i with threshold theta_i > 0 is scaled by c_i = theta_ref / theta_i (theta_ref = max_i theta_i):
    its weight row and bias are multiplied by c_i, so v_i becomes c_i v_i, which crosses theta_ref exactly
    when v_i crosses theta_i; the zero and the subtractive reset and the leaks are linear, so the float
    network is unchanged (docs/fixed-point.md §10.5). A binary layer whose rows then differ in magnitude
    becomes a full-precision one (its rows are quantized to 8-bit weights). Conv layers need one threshold
    per channel. A layer whose thresholds are equal and whose binary rows share one alpha is returned as is.
    """
    if not layer.spiking:
        return layer, None
    theta = np.asarray(layer.threshold, dtype=np.float64)
    rows = theta.reshape(theta.shape[0], -1)
    if np.any(rows != rows[:, :1]):
        raise layer_error(layer, "threshold", "differs within a conv channel; folding needs one threshold per channel")
    row_theta = rows[:, 0]
    uneven_alpha = layer.binary and np.ptp(layer.alpha) > 0
    if np.ptp(row_theta) == 0 and not uneven_alpha:
        return layer, None
    if np.any(row_theta <= 0):
        zero = np.flatnonzero(row_theta <= 0)[:8].tolist()
        raise layer_error(layer, "threshold", f"is 0 in rows {zero}; a zero threshold cannot be folded into the "
                          "weights (use profile 'bso', which keeps per-neuron thresholds)")
    reference = float(row_theta.max())
    row_scale = reference / row_theta
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    weight = layer.weight * row_scale.reshape(shape)
    bias = layer.bias * per_row(row_scale, layer.kind, layer.output_shape)
    signs, alpha = layer.signs, None if layer.alpha is None else layer.alpha * row_scale
    if alpha is not None and _alphas_differ(alpha):
        signs, alpha = None, None  # rows of different magnitude: 8-bit weights
    recurrent = None if layer.recurrent_weight is None else layer.recurrent_weight * row_scale.reshape(-1, 1)
    folded = replace(layer, weight=weight, bias=np.asarray(bias), threshold=np.full(theta.shape, reference),
                     signs=signs, alpha=alpha, recurrent_weight=recurrent)
    report = {"threshold_reference": reference, "row_scale_min": float(row_scale.min()),
              "row_scale_max": float(row_scale.max()), "binary_to_full_precision": layer.binary and signs is None}
    return folded, report
