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

Also :func:`quantize_inputs`, the caller's side of the input scale (§10.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .network import FixedPointLayer, FixedPointNetwork
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

DEFAULT_INPUT_SCALE = float(SPEC.input_max)  # inputs in [0, 1] -> 0 ... 255 (docs/fixed-point.md §5.3)


def round_half_away(x: Any) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (symmetric for negative values), as int64."""
    x = np.asarray(x, dtype=np.float64)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def input_max_for_scale(input_scale: float, spec: FixedPointSpec = SPEC, input_range: float = 1.0) -> int:
    """Largest integer input for float inputs in [0, input_range]: round(input_scale * input_range), at least 1
    and at most 255 (docs/fixed-point.md §10.1)."""
    return int(min(spec.input_max, max(1, int(round_half_away(input_scale * input_range)))))


def _real_inputs(x_float: Any) -> np.ndarray:
    x = np.asarray(x_float)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"inputs must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.size and not np.all(np.isfinite(x)):
        raise ValueError(f"inputs hold {int(x.size - np.isfinite(x).sum())} NaN/Inf value(s)")
    if x.size and x.min() < 0:
        raise ValueError(f"inputs must be >= 0 (the fixed-point input is unsigned, docs/fixed-point.md §5.3), "
                         f"got a minimum of {x.min()}")
    return x


def quantize_inputs(fx_net: FixedPointNetwork, x_float: Any) -> np.ndarray:
    """Float inputs (any shape) -> int64 ``clip(round(x * input_scale), 0, input_max)`` with the network's
    ``input_scale`` and ``input_max`` (docs/fixed-point.md §10.1). Larger values saturate (count them with
    :func:`clipped_inputs`); negative or non-finite values are a ValueError, since the hardware input is
    unsigned (§5.3). A network without an input scale (``input_scale`` None, e.g. imported from netx) takes
    integers in [0, input_max] as they are."""
    x = _real_inputs(x_float)
    if fx_net.input_scale is None:
        if x.size and (np.any(x != np.round(x)) or x.max() > fx_net.input_max):
            raise ValueError(f"this network takes integer inputs in [0, {fx_net.input_max}] (it has no input "
                             f"scale); got values in [{x.min()}, {x.max()}], not all integers or too large")
        return x.astype(np.int64)
    return np.clip(round_half_away(x * fx_net.input_scale), 0, fx_net.input_max)


def clipped_inputs(fx_net: FixedPointNetwork, x_float: Any) -> int:
    """How many values of ``x_float`` :func:`quantize_inputs` saturates at ``input_max`` (§10.1)."""
    x = _real_inputs(x_float)
    if fx_net.input_scale is None:
        return int(np.count_nonzero(x > fx_net.input_max))
    return int(np.count_nonzero(round_half_away(x * fx_net.input_scale) > fx_net.input_max))


@dataclass(frozen=True)
class FloatLayer:
    """One layer of a float network, read from a NIR graph, with the neuron's input gain folded in.

    The neuron computes ``v = decay v + I`` (``I = W x + b`` after pooling; for CubaLIF the current is
    first filtered, ``i = syn_decay i + I``, and v is driven by the new i), fires when ``v > threshold`` and
    resets by ``reset``. Per-neuron arrays have the layer's output shape. Binary layers carry ``signs``
    (weight's shape, +-1) and ``alpha`` (per output row/channel, > 0) with ``weight = signs * alpha``.
    tau_steps / tau_syn_steps are time constants in steps (inf: no leak; tau_syn_steps None: no current).
    """

    name: str
    nodes: tuple[str, ...]
    kind: str
    input_shape: tuple[int, ...]
    pool: tuple[int, int]
    weight: np.ndarray
    bias: np.ndarray
    threshold: np.ndarray | None  # None: non-spiking readout
    tau_steps: float
    tau_syn_steps: float | None
    reset: str
    signs: np.ndarray | None = None
    alpha: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_shape: tuple[int, ...] = ()
    bias_note: str = ""  # how the bias was mapped when not exactly (CubaLIF)
    note: str = ""  # why the layer is compiled otherwise than its graph says (a binary readout of uneven alpha)
    recurrent_weight: np.ndarray | None = None  # (n, n): the layer's own spikes of the previous step, gain folded

    @property
    def binary(self) -> bool:
        return self.signs is not None

    @property
    def spiking(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class LayerOptions:
    """What the compiler passes down for every layer: input_scale (s_in of layer 0), input_max (max integer
    input of this layer), weight_bits (mantissa bits of full-precision weights and of a binary magnitude),
    readout_steps (steps a layer without leak, the readout or IF, must sum without saturating), profile name,
    first (layer 0), first_input_step (k + 1 for layer k: the step its first input arrives, §4.8, §5.1),
    netx_compatible (only what lava-dl netx can carry: no weight exponent, bias exponent 6, §10.5),
    current_peak / voltage_peak (calibrated scaling, §10.6: per-neuron max |i| and |v| of the float layer on
    the calibration inputs, output shape; None: worst-case scaling, §10.3) and calibration_margin (the factor
    of headroom kept above those peaks)."""

    input_scale: float
    input_max: int
    weight_bits: int
    readout_steps: int
    profile: str
    first: bool
    first_input_step: int
    netx_compatible: bool = False
    current_peak: np.ndarray | None = None
    voltage_peak: np.ndarray | None = None
    calibration_margin: float = 2.0
    drive_rate: np.ndarray | None = None  # calibrated: per-neuron fraction of steps with a nonzero sum (§10.6)

    @property
    def calibrated(self) -> bool:
        return self.voltage_peak is not None


@dataclass(frozen=True)
class _Candidate:
    mant: int  # binary magnitude (1 for full precision)
    exp: int  # the real exponent e: a = (mant * acc) * 2**e
    scale: float  # K


def _rows(values: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Per-row (output unit / channel) values broadcast to the layer's output shape."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape((-1,) + (1,) * (len(shape) - 1)) if kind == "conv" else values


def _acc_bound(weights: np.ndarray, input_max: int, pool: tuple[int, int]) -> int:
    """Worst |sum_j w_ij x_j| for inputs x in [0, input_max] (each summed over a pool window): per row the
    larger of the sum of the positive and of the negative weights (§10.3)."""
    rows = weights.reshape(weights.shape[0], -1)
    positive = np.where(rows > 0, rows, 0).sum(axis=1)
    negative = -np.where(rows < 0, rows, 0).sum(axis=1)
    return int(max(positive.max(initial=0), negative.max(initial=0))) * input_max * math.prod(pool)


def _fail(layer: FloatLayer, parameter: str, message: str) -> ValueError:
    return ValueError(f"layer {layer.name!r} (NIR nodes {', '.join(layer.nodes)}): {parameter} {message}")


def _bias_registers(bias: np.ndarray, spec: FixedPointSpec,
                    netx_compatible: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bias_mant << bias_exp nearest to the real bias (v units), smallest exponent >= 0 per neuron (§10.2);
    with ``netx_compatible`` the exponent is state_shift (6) everywhere, as lava-dl netx fixes it (§10.5)."""
    if netx_compatible:
        exp = np.full(bias.shape, spec.state_shift, dtype=np.int64)
        mant = round_half_away(bias / (1 << spec.state_shift))
        return mant, exp, mant << exp
    exp = np.zeros(bias.shape, dtype=np.int64)
    mant = round_half_away(bias)
    for _ in range(spec.bias_exp_max):
        over = np.abs(mant) > spec.bias_mant_max
        if not over.any():
            break
        exp = np.where(over, exp + 1, exp)
        mant = np.where(over, round_half_away(bias / 2.0 ** exp), mant)
    return mant, exp, mant << exp


class _Bounds:
    """Evaluates the worst-case bounds of one layer for a candidate scale (docs/fixed-point.md §8, §10.3)."""

    def __init__(self, layer: FloatLayer, acc_bound: int, row_factor: np.ndarray, du: int, dv: int,
                 options: LayerOptions, spec: FixedPointSpec) -> None:
        self.layer, self.acc_bound, self.row_factor, self.du, self.dv = layer, acc_bound, row_factor, du, dv
        self.options, self.spec = options, spec

    def evaluate(self, candidate: _Candidate) -> dict[str, Any]:
        """Integer parameters and bounds for ``candidate``; ``violations`` lists the bounds it breaks."""
        spec, layer = self.spec, self.layer
        per_neuron = candidate.scale * self.row_factor  # K_i
        raw = candidate.mant * self.acc_bound * 2.0 ** candidate.exp
        activation = math.ceil(raw)
        u_bound = (activation << spec.state_shift) * spec.decay_unity // (self.du + 1)
        recurrent = self.recurrent(per_neuron)
        if recurrent is not None:  # the recurrent synapse adds to the same synaptic input (§4.9, §10.2)
            activation += recurrent["activation"]
            u_bound = (activation << spec.state_shift) * spec.decay_unity // (self.du + 1)
        options = self.options
        if options.calibrated:  # what the calibration inputs drove u to, with the margin (§10.6)
            u_bound = min(u_bound, self._peak(options.current_peak, per_neuron))
        offset = self.floor_offset(candidate)
        bias_mant, bias_exp, bias = _bias_registers(layer.bias * per_neuron * (1 << spec.state_shift) + offset, spec,
                                                    self.options.netx_compatible)
        bias_bound = int(np.abs(bias).max(initial=0))
        violations = []
        if recurrent is not None and recurrent["exp"] - 1 > spec.weight_exp_max:
            violations.append(("recurrent", f"recurrent weights need exponent {recurrent['exp'] - 1} > "
                               f"{spec.weight_exp_max} (§4.9)"))
        if activation > spec.activation_max:
            violations.append(("activation", f"worst-case |a| = {activation} exceeds {spec.activation_max} (§8)"))
        if u_bound >= spec.u_max:
            violations.append(("u", f"worst-case |u| = {u_bound} would wrap at 2**23 (§3.2)"))
        if np.abs(bias_mant).max(initial=0) > spec.bias_mant_max:
            limit = spec.bias_mant_max << spec.bias_exp_max
            violations.append(("bias", f"needs |bias| up to {bias_bound} > {limit} = 4095 << 7 (§3.4)"))
        vth = None
        v_bound: int | None = None
        if layer.spiking:
            vth = round_half_away(layer.threshold * per_neuron)
            if vth.max(initial=0) > spec.vth_max:
                violations.append(("vth", f"needs vth up to {vth.max()} > {spec.vth_max} (§3.5)"))
        v_limit = spec.vth_max << spec.state_shift if self.options.netx_compatible and not layer.spiking \
            else spec.v_max  # netx runs a readout as a LIF with vth = max, firing above vth_max << 6 (§3.7, §10.5)
        if options.calibrated:  # the largest |v| the calibration inputs reached, with the margin (§10.6)
            v_bound = self._peak(options.voltage_peak, per_neuron)
            if v_bound > v_limit:
                violations.append(("v", f"calibrated |v| up to {v_bound} (margin {options.calibration_margin}) "
                                   f"would saturate at {v_limit} (§3.3, §10.6)"))
        elif self.dv > 0:  # a leak bounds v at any time
            v_bound = (u_bound + bias_bound) * spec.decay_unity // self.dv
            if v_bound > spec.v_max:
                violations.append(("v", f"worst-case |v| = {v_bound} would saturate at {spec.v_max} (§3.3)"))
        else:  # no leak (readout, IF): v is bounded over the steps of a run only
            v_bound = (u_bound + bias_bound) * self.options.readout_steps
            if v_bound > v_limit:
                violations.append(("v", f"worst-case |v| after {self.options.readout_steps} steps = {v_bound} "
                                   f"would saturate at {v_limit} (§3.3, §3.7)"))
        return {"per_neuron": per_neuron, "activation": activation, "u_bound": u_bound, "bias_mant": bias_mant,
                "bias_exp": bias_exp, "bias": bias, "vth": vth, "v_bound": v_bound, "violations": violations,
                "recurrent": recurrent, "floor_offset": offset}

    def floor_offset(self, candidate: _Candidate) -> np.ndarray | float:
        """The floor compensation of §10.6, in v units per neuron (0.0 where none applies): with a floored
        negative exponent that drops k' fractional bits of the sum (k = -weight_exp, less the factors of 2 of
        the sum's multiplier, 2 for full precision, weight_mant for binary), each nonzero sum loses
        (2**k' - 1) / 2**(k' + 1) LSB of a on average (residues uniform), i.e. 64 times that in v; the neuron
        gets that times its calibrated rate of nonzero sums as bias."""
        options = self.options
        if options.drive_rate is None or _shift_rounding(options.profile) != "floor":
            return 0.0
        exp, multiplier = (candidate.exp, candidate.mant) if self.layer.binary else (candidate.exp - 1, 2)
        bits = -exp - ((multiplier & -multiplier).bit_length() - 1)
        if exp >= 0 or bits <= 0:
            return 0.0
        lost = (2.0 ** bits - 1) / 2.0 ** (bits + 1) * (1 << self.spec.state_shift)
        return np.broadcast_to(np.asarray(options.drive_rate, np.float64), self.layer.output_shape) * lost

    def recurrent(self, per_neuron: np.ndarray) -> dict[str, Any] | None:
        """The recurrent synapse at the layer's scales K_i (docs/fixed-point.md §4.9, §10.2): integer weights
        q_ij = round(K_i W_ij / 2**E) with the smallest E that keeps |q| <= q_max (not below weight_exp_min + 1),
        stored as ``2 q`` with exponent E - 1 (§4.5), so a_rec = q . s 2**E; None without one."""
        weight = self.layer.recurrent_weight
        if weight is None:
            return None
        spec, q_max = self.spec, (1 << (self.options.weight_bits - 1)) - 1
        target = np.asarray(weight, np.float64) * np.asarray(per_neuron, np.float64).reshape(-1, 1)
        largest = float(np.abs(target).max(initial=0.0))
        exp = spec.weight_exp_min + 1
        if largest > 0:
            exp = max(exp, math.ceil(math.log2(largest / q_max)))
            while largest / 2.0 ** exp > q_max:  # log2's rounding
                exp += 1
        q = round_half_away(target / 2.0 ** exp)
        mass = max(np.where(q > 0, q, 0).sum(axis=1).max(initial=0), -np.where(q < 0, q, 0).sum(axis=1).min(initial=0))
        return {"q": q, "exp": exp, "activation": math.ceil(int(mass) * 2.0 ** exp),
                "error": float(np.abs(q * 2.0 ** exp / np.asarray(per_neuron, np.float64).reshape(-1, 1)
                                      - weight).max(initial=0.0))}

    def _peak(self, peak: np.ndarray, per_neuron: np.ndarray) -> int:
        """ceil(margin * max_i 64 K_i peak_i): a float peak in the integer units of u and v (§10.6)."""
        scaled = np.asarray(peak, np.float64) * per_neuron * (1 << self.spec.state_shift)
        return math.ceil(self.options.calibration_margin * float(scaled.max(initial=0.0)))


def _candidates(binary: bool, c: float, s_in: float, q_max: int, spec: FixedPointSpec,
                netx_compatible: bool = False) -> list[_Candidate]:
    """Every representable scale, largest first. Full precision: K = c s_in 2**e with the stored
    weight_exp = e - 1 in range; binary: K = mant 2**e s_in, mant in [1, q_max]. ``netx_compatible``
    admits e = 0 only (a = W x with integer W, §10.5)."""
    if netx_compatible:
        return [_Candidate(mant, 0, mant * s_in) for mant in range(q_max, 0, -1)] if binary else \
            [_Candidate(1, 0, c * s_in)]
    if binary:
        found = {}
        for exp in range(spec.weight_exp_min, spec.weight_exp_max + 1):
            for mant in range(1, q_max + 1):
                found.setdefault(mant * 2.0 ** exp, _Candidate(mant, exp, mant * 2.0 ** exp * s_in))
        return [found[key] for key in sorted(found, reverse=True)]
    exps = range(spec.weight_exp_max + 1, spec.weight_exp_min, -1)
    return [_Candidate(1, exp, c * s_in * 2.0 ** exp) for exp in exps]


def _fix_hint(parameter: str, bounds: _Bounds, options: LayerOptions) -> str:
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
        raise _fail(layer, "tau", f"cannot be expressed as a 12-bit decay: {error}") from None
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
        row_factor = np.broadcast_to(1.0 / _rows(layer.alpha, layer.kind, out_shape), out_shape)
        c = 1.0
    else:
        c = _weight_scale(layer, q_max)
        weights = round_half_away(layer.weight * c)
        row_factor = np.ones(out_shape)
    du, dv = _decays(layer, spec)
    acc_bound = _acc_bound(weights, options.input_max, layer.pool)
    matmul_bound = weights[0].size * int(np.abs(weights).max(initial=0)) * options.input_max * math.prod(layer.pool)
    if matmul_bound * (1 if layer.binary else 2) >= spec.exact_float64_bound:
        raise _fail(layer, "weight", f"partial sums up to {matmul_bound} are not exact in float64 (§1.1); "
                    "split the layer")
    bounds = _Bounds(layer, acc_bound, row_factor, du, dv, options, spec)
    candidates = _candidates(layer.binary, c, s_in, q_max, spec, options.netx_compatible)
    low, high = 0, len(candidates)  # the bounds grow with the scale: bisect for the first one that holds
    while low < high:
        middle = (low + high) // 2
        if bounds.evaluate(candidates[middle])["violations"]:
            low = middle + 1
        else:
            high = middle
    if low == len(candidates):
        parameter, message = bounds.evaluate(candidates[-1])["violations"][0]
        raise _fail(layer, parameter, f"does not fit even at the smallest scale: {message}; "
                    f"{_fix_hint(parameter, bounds, options)}")
    chosen = candidates[low]
    result = bounds.evaluate(chosen)
    binding = bounds.evaluate(candidates[low - 1])["violations"][0][0] if low > 0 else "exponent range"
    bias_mant, bias_exp, bias_value = result["bias_mant"], result["bias_exp"], result["bias"]
    per_neuron = result["per_neuron"]
    vth = result["vth"] if layer.spiking else np.zeros(out_shape, dtype=np.int64)
    if options.profile == "loihi" and layer.spiking and np.ptp(vth) != 0:
        reason = "per-row binary scales (alpha)" if layer.binary else "per-neuron thresholds"
        raise _fail(layer, "vth", f"takes {len(np.unique(vth))} values in [{vth.min()}, {vth.max()}] from {reason}; "
                    "profile 'loihi' shares one vth per layer (Lava's LIF); use --profile bso")
    # The float bias acts from the layer's first input on: start it there, where the profile can (§3.4, §10.2).
    bias_delay = options.first_input_step if get_profile(options.profile).delayed_bias else 0
    fixed = FixedPointLayer(
        name=layer.name, kind=layer.kind, input_shape=layer.input_shape,
        weight=weights if layer.binary else 2 * weights, binary=layer.binary, weight_mant=chosen.mant,
        weight_exp=chosen.exp if layer.binary else chosen.exp - 1, du=du, dv=dv, vth=vth, bias_mant=bias_mant,
        bias_exp=bias_exp, bias_delay=bias_delay, reset=layer.reset, spiking=layer.spiking, stride=layer.stride,
        padding=layer.padding, pool=layer.pool, shift_rounding=_shift_rounding(options.profile),
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
        report["calibrated_u_peak"] = bounds._peak(options.current_peak, per_neuron)
        report["calibrated_v_peak"] = bounds._peak(options.voltage_peak, per_neuron)
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


def _shift_rounding(profile: str) -> str:
    """Round negative weight exponents to nearest where the profile can (docs/fixed-point.md §4.7, §10.2): the
    floor's -0.5 LSB per step would add up in layers without leak."""
    return "nearest" if "nearest" in get_profile(profile).shift_roundings else "floor"


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
        raise _fail(layer, "threshold", "differs within a conv channel; folding needs one threshold per channel")
    row_theta = rows[:, 0]
    uneven_alpha = layer.binary and np.ptp(layer.alpha) > 0
    if np.ptp(row_theta) == 0 and not uneven_alpha:
        return layer, None
    if np.any(row_theta <= 0):
        zero = np.flatnonzero(row_theta <= 0)[:8].tolist()
        raise _fail(layer, "threshold", f"is 0 in rows {zero}; a zero threshold cannot be folded into the weights "
                    "(use profile 'bso', which keeps per-neuron thresholds)")
    reference = float(row_theta.max())
    row_scale = reference / row_theta
    shape = (-1,) + (1,) * (layer.weight.ndim - 1)
    weight = layer.weight * row_scale.reshape(shape)
    bias = layer.bias * _rows(row_scale, layer.kind, layer.output_shape)
    signs, alpha = layer.signs, None if layer.alpha is None else layer.alpha * row_scale
    if alpha is not None and _alphas_differ(alpha):
        signs, alpha = None, None  # rows of different magnitude: 8-bit weights
    recurrent = None if layer.recurrent_weight is None else layer.recurrent_weight * row_scale.reshape(-1, 1)
    folded = replace(layer, weight=weight, bias=np.asarray(bias), threshold=np.full(theta.shape, reference),
                     signs=signs, alpha=alpha, recurrent_weight=recurrent)
    report = {"threshold_reference": reference, "row_scale_min": float(row_scale.min()),
              "row_scale_max": float(row_scale.max()), "binary_to_full_precision": layer.binary and signs is None}
    return folded, report
