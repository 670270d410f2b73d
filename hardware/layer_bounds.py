"""The worst-case (and calibrated) bounds of one layer at a candidate scale K, and the scales to try
(docs/fixed-point.md §8, §10.2, §10.3, §10.6): what :func:`~.quantize.quantize_layer` bisects over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .float_layer import FloatLayer, LayerOptions
from .rounding import round_half_away
from .spec import FixedPointSpec, get_profile

__all__ = [
    "LayerBounds",
    "ScaleCandidate",
    "accumulator_bound",
    "bias_registers",
    "scale_candidates",
    "shift_rounding_for",
]


@dataclass(frozen=True)
class ScaleCandidate:
    """One representable scale K of a layer (:func:`scale_candidates`)."""

    mant: int  # binary magnitude (1 for full precision)
    exp: int  # the real exponent e: a = (mant * acc) * 2**e
    scale: float  # K


def accumulator_bound(weights: np.ndarray, input_max: int, pool: tuple[int, int]) -> int:
    """Worst |sum_j w_ij x_j| for inputs x in [0, input_max] (each summed over a pool window): per row the
    larger of the sum of the positive and of the negative weights (§10.3)."""
    rows = weights.reshape(weights.shape[0], -1)
    positive = np.where(rows > 0, rows, 0).sum(axis=1)
    negative = -np.where(rows < 0, rows, 0).sum(axis=1)
    return int(max(positive.max(initial=0), negative.max(initial=0))) * input_max * math.prod(pool)


def bias_registers(bias: np.ndarray, spec: FixedPointSpec,
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


class LayerBounds:
    """Evaluates the worst-case bounds of one layer for a candidate scale (docs/fixed-point.md §8, §10.3)."""

    def __init__(self, layer: FloatLayer, acc_bound: int, row_factor: np.ndarray, du: int, dv: int,
                 options: LayerOptions, spec: FixedPointSpec) -> None:
        self.layer, self.acc_bound, self.row_factor, self.du, self.dv = layer, acc_bound, row_factor, du, dv
        self.options, self.spec = options, spec

    def evaluate(self, candidate: ScaleCandidate) -> dict[str, Any]:
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
            u_bound = min(u_bound, self.peak(options.current_peak, per_neuron))
        offset = self.floor_offset(candidate)
        bias_mant, bias_exp, bias = bias_registers(layer.bias * per_neuron * (1 << spec.state_shift) + offset, spec,
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
            v_bound = self.peak(options.voltage_peak, per_neuron)
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

    def floor_offset(self, candidate: ScaleCandidate) -> np.ndarray | float:
        """The floor compensation of §10.6, in v units per neuron (0.0 where none applies): with a floored
        negative exponent that drops k' fractional bits of the sum (k = -weight_exp, less the factors of 2 of
        the sum's multiplier, 2 for full precision, weight_mant for binary), each nonzero sum loses
        (2**k' - 1) / 2**(k' + 1) LSB of a on average (residues uniform), i.e. 64 times that in v; the neuron
        gets that times its calibrated rate of nonzero sums as bias."""
        options = self.options
        if options.drive_rate is None or shift_rounding_for(options.profile) != "floor":
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

    def peak(self, peak: np.ndarray, per_neuron: np.ndarray) -> int:
        """ceil(margin * max_i 64 K_i peak_i): a float peak in the integer units of u and v (§10.6)."""
        scaled = np.asarray(peak, np.float64) * per_neuron * (1 << self.spec.state_shift)
        return math.ceil(self.options.calibration_margin * float(scaled.max(initial=0.0)))


def scale_candidates(binary: bool, c: float, s_in: float, q_max: int, spec: FixedPointSpec,
                     netx_compatible: bool = False) -> list[ScaleCandidate]:
    """Every representable scale, largest first. Full precision: K = c s_in 2**e with the stored
    weight_exp = e - 1 in range; binary: K = mant 2**e s_in, mant in [1, q_max]. ``netx_compatible``
    admits e = 0 only (a = W x with integer W, §10.5)."""
    if netx_compatible:
        return [ScaleCandidate(mant, 0, mant * s_in) for mant in range(q_max, 0, -1)] if binary else \
            [ScaleCandidate(1, 0, c * s_in)]
    if binary:
        found = {}
        for exp in range(spec.weight_exp_min, spec.weight_exp_max + 1):
            for mant in range(1, q_max + 1):
                found.setdefault(mant * 2.0 ** exp, ScaleCandidate(mant, exp, mant * 2.0 ** exp * s_in))
        return [found[key] for key in sorted(found, reverse=True)]
    exps = range(spec.weight_exp_max + 1, spec.weight_exp_min, -1)
    return [ScaleCandidate(1, exp, c * s_in * 2.0 ** exp) for exp in exps]


def shift_rounding_for(profile: str) -> str:
    """Round negative weight exponents to nearest where the profile can (docs/fixed-point.md §4.7, §10.2): the
    floor's -0.5 LSB per step would add up in layers without leak."""
    return "nearest" if "nearest" in get_profile(profile).shift_roundings else "floor"
