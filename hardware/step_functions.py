"""The pure integer step functions of docs/fixed-point.md: one neuron update (§3), one synapse stage (§4) and
their prepared per-layer constants, in int64 NumPy, never mutating their inputs.

They are the reference that everything NumPy-based calls: :func:`~.simulator.simulate_stepwise` loops over
them, the fused path of :func:`~.simulator.simulate` is tested against that loop, and the Lava models and the
learners call them. ``hardware/simulator.py`` re-exports every name. Connections run as float matrix products
in which every operand and partial sum is an exact integer (:func:`synapse_params` picks float32 below 2**24,
float64 below 2**53, docs/fixed-point.md §1.1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layer import FixedPointLayer
from .spec import SPEC, FixedPointSpec

__all__ = [
    "NeuronEvents",
    "NeuronParams",
    "NeuronState",
    "SynapseParams",
    "bias_int",
    "connect_float",
    "connect_int",
    "dense_weight_int",
    "lif_step_events_int",
    "lif_step_int",
    "neuron_params",
    "recurrent_synapse_params",
    "saturate_v_int",
    "shift_int",
    "sum_pool_int",
    "synapse_params",
    "synapse_step_int",
    "trunc_decay_int",
    "wrap_u_int",
]


class NeuronState(NamedTuple):
    """u and v of a population, int64 (batch, *shape) (docs/fixed-point.md §3)."""

    u: np.ndarray
    v: np.ndarray


class NeuronEvents(NamedTuple):
    """Where one neuron update left the registers' range (docs/fixed-point.md §5.6), bool (batch, *shape)."""

    v: np.ndarray  # the clip of §3.3 changed v
    u: np.ndarray  # the wrap of §3.2 changed u
    a: np.ndarray  # the delivered synaptic input had |a| > 2**15 - 1 (§8)


class NeuronParams(NamedTuple):
    """Per-layer neuron constants, prepared once: vth_scaled = vth << 6, bias = bias_mant shifted, added at
    steps >= bias_delay (§3.4)."""

    du: int
    dv: int
    vth_scaled: np.ndarray
    bias: np.ndarray
    reset: str
    spiking: bool
    bias_delay: int = 0


class SynapseParams(NamedTuple):
    """Per-layer synapse constants, prepared once (docs/fixed-point.md §4).

    matrix: effective weights (§4.5) or signs (§4.6) as floats in which the products are exact; dense:
    (n_in, n_out), conv: (C_out, C_in, kh, kw). weight_mant multiplies the sum (1 for full precision).
    shift_rounding: how a negative weight_exp rounds the sum, "floor" or "nearest" (§4.7).
    """

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    matrix: np.ndarray
    weight_mant: int
    weight_exp: int
    output_shape: tuple[int, ...]
    shift_rounding: str = "floor"


def trunc_decay_int(x: np.ndarray, factor: int, spec: FixedPointSpec = SPEC) -> np.ndarray:
    """``trunc(x * factor / 4096)``, rounded toward zero (docs/fixed-point.md §1.2, §3.1, §3.3)."""
    if factor == 0:  # du = 4095 clears u: skip the arithmetic, same result
        return np.zeros_like(x)
    if factor == spec.decay_unity:  # dv = 0: no leak
        return x
    product = x * factor
    return np.sign(product) * (np.abs(product) >> spec.decay_bits)


def wrap_u_int(x: np.ndarray, spec: FixedPointSpec = SPEC) -> np.ndarray:
    """Wrap into (-2**23, 2**23] modulo 2**24 (docs/fixed-point.md §3.2)."""
    return np.mod(x - spec.u_min, spec.u_modulus) + spec.u_min


def saturate_v_int(x: np.ndarray, spec: FixedPointSpec = SPEC) -> np.ndarray:
    """Clip to [-(2**23 - 1), 2**23 - 1] (docs/fixed-point.md §3.3)."""
    return np.clip(x, spec.v_min, spec.v_max)


def shift_int(x: np.ndarray, exponent: np.ndarray | int, rounding: str = "floor") -> np.ndarray:
    """``x << e`` for e >= 0; for e = -k < 0 ``x >> k`` (arithmetic: floor, §1.2) or, with ``rounding =
    "nearest"``, ``(x + 2**(k-1)) >> k`` (to nearest, halves up, §4.7); elementwise (§3.4, §4.7)."""
    x = np.asarray(x, dtype=np.int64)
    if rounding not in ("floor", "nearest"):
        raise ValueError(f"rounding must be 'floor' or 'nearest', got {rounding!r}")
    if isinstance(exponent, (int, np.integer)):  # one exponent per layer: a single shift
        if exponent >= 0:
            return x << int(exponent)
        k = -int(exponent)
        return (x + (1 << (k - 1)) if rounding == "nearest" else x) >> k
    exponent = np.asarray(exponent, dtype=np.int64)
    down = np.maximum(-exponent, 0)
    if rounding == "nearest":
        x = x + np.where(down > 0, np.left_shift(1, np.maximum(down - 1, 0)), 0)
    return np.where(exponent >= 0, x << np.maximum(exponent, 0), x >> down)


def bias_int(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """The bias added to v at every step from bias_delay on: bias_mant shifted by bias_exp (docs/fixed-point.md
    §3.4)."""
    return shift_int(bias_mant, bias_exp)


def dense_weight_int(weight: np.ndarray, spec: FixedPointSpec = SPEC) -> np.ndarray:
    """Effective full-precision weights as Lava's Dense computes them (docs/fixed-point.md §4.5)."""
    weight = np.asarray(weight, dtype=np.int64)
    if weight.size == 0 or weight.min() >= 0:  # excitatory
        return np.clip(weight, 0, spec.weight_max)
    if weight.max() <= 0:  # inhibitory
        return np.clip(weight, -spec.weight_max, 0)
    mixed = np.clip(weight, spec.weight_min, spec.weight_max)
    dropped = spec.mixed_dropped_bits  # mixed sign mode drops the lowest bit of the 8-bit weight
    return (mixed >> dropped) << dropped


def neuron_params(layer: FixedPointLayer, spec: FixedPointSpec = SPEC) -> NeuronParams:
    return NeuronParams(du=layer.du, dv=layer.dv, vth_scaled=layer.vth << spec.state_shift,
                        bias=bias_int(layer.bias_mant, layer.bias_exp), reset=layer.reset, spiking=layer.spiking,
                        bias_delay=layer.bias_delay)


def _exact_matrix(layer: FixedPointLayer, weights: np.ndarray, bound: int, spec: FixedPointSpec) -> np.ndarray:
    """``weights`` as float32 when partial sums up to ``bound`` are exact there, else float64 (§1.1)."""
    if bound >= spec.exact_float64_bound:
        raise ValueError(f"layer {layer.name!r}: partial sums up to {bound} are not exact in float64")
    return np.ascontiguousarray(weights, dtype=np.float32 if bound < spec.exact_float32_bound else np.float64)


def synapse_params(layer: FixedPointLayer, input_max: int, spec: FixedPointSpec = SPEC) -> SynapseParams:
    """Prepare a layer's synapse; ``input_max`` bounds its (unpooled) input values (255 or 1)."""
    weights = np.asarray(layer.weight, dtype=np.int64) if layer.binary else dense_weight_int(layer.weight, spec)
    fan_in = math.prod(weights.shape[1:])
    bound = fan_in * int(np.abs(weights).max(initial=0)) * input_max * math.prod(layer.pool)
    matrix = _exact_matrix(layer, weights.T if layer.kind == "dense" else weights, bound, spec)
    return SynapseParams(kind=layer.kind, pool=layer.pool, stride=layer.stride, padding=layer.padding,
                         matrix=matrix, weight_mant=layer.weight_mant, weight_exp=layer.weight_exp,
                         output_shape=layer.output_shape, shift_rounding=layer.shift_rounding)


def recurrent_synapse_params(layer: FixedPointLayer, spec: FixedPointSpec = SPEC) -> SynapseParams | None:
    """Prepare a layer's recurrent synapse (docs/fixed-point.md §4.9), a dense synapse from its own 0/1 spikes
    with its own weight rule (§4.5 or §4.6) and exponent; None for a layer without one."""
    if layer.recurrent_weight is None:
        return None
    weights = np.asarray(layer.recurrent_weight, dtype=np.int64)
    weights = weights if layer.recurrent_binary else dense_weight_int(weights, spec)
    bound = weights.shape[1] * int(np.abs(weights).max(initial=0))
    return SynapseParams(kind="dense", pool=(1, 1), stride=(1, 1), padding=(0, 0),
                         matrix=_exact_matrix(layer, weights.T, bound, spec),
                         weight_mant=layer.recurrent_weight_mant, weight_exp=layer.recurrent_weight_exp,
                         output_shape=layer.output_shape, shift_rounding=layer.shift_rounding)


def sum_pool_int(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Sum over non-overlapping pool windows of x (batch, C, H, W) (docs/fixed-point.md §4.2)."""
    if pool == (1, 1):
        return x
    batch, channels, height, width = x.shape
    blocks = x.reshape(batch, channels, height // pool[0], pool[0], width // pool[1], pool[1])
    return blocks.sum(axis=(3, 5))


def connect_float(values: np.ndarray, synapse: SynapseParams) -> np.ndarray:
    """The connection of §4.3, §4.4 on values (batch, *pooled_shape) already in the matrix's float dtype:
    (batch, *output_shape) floats holding exact integers (the module docstring says why); a conv's result is
    a transposed view, not C-contiguous."""
    if synapse.kind == "dense":
        return values.reshape(values.shape[0], -1) @ synapse.matrix
    (pad_h, pad_w), (stride_h, stride_w) = synapse.padding, synapse.stride
    kernel = synapse.matrix.shape[2:]
    padded = np.pad(values, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    windows = sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::stride_h, ::stride_w]
    return np.tensordot(windows, synapse.matrix, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)


def connect_int(x: np.ndarray, synapse: SynapseParams) -> np.ndarray:
    """``acc = sum_j w_ij x_j`` (docs/fixed-point.md §4.3, §4.4) of x (batch, *pooled_shape) -> int64."""
    acc = connect_float(x.astype(synapse.matrix.dtype), synapse)
    return acc.astype(np.int64).reshape(x.shape[0], *synapse.output_shape)


def synapse_step_int(x: np.ndarray, synapse: SynapseParams) -> np.ndarray:
    """The synaptic input a_next computed from layer input x (batch, *input_shape), to be delivered one
    step later (docs/fixed-point.md §4.2 - §4.8)."""
    acc = connect_int(sum_pool_int(x, synapse.pool), synapse)
    if synapse.weight_mant != 1:
        acc = acc * synapse.weight_mant
    return shift_int(acc, synapse.weight_exp, synapse.shift_rounding)


def lif_step_int(a: np.ndarray, state: NeuronState, params: NeuronParams, step: int,
                 spec: FixedPointSpec = SPEC) -> tuple[np.ndarray, NeuronState]:
    """One neuron update (docs/fixed-point.md §3.1 - §3.7) with synaptic input a (batch, *shape) int64 at
    ``step`` (0-based index of this step in the run: the bias counts from step params.bias_delay on, §3.4).

    Returns (spikes as int8 0/1, new state after reset); :func:`lif_step_events_int` also says where the
    update saturated (§5.6)."""
    spikes, state, _ = lif_step_events_int(a, state, params, step, spec)
    return spikes, state


def lif_step_events_int(a: np.ndarray, state: NeuronState, params: NeuronParams, step: int,
                        spec: FixedPointSpec = SPEC) -> tuple[np.ndarray, NeuronState, NeuronEvents]:
    """:func:`lif_step_int` and the events of §5.6: v_pre outside [-(2**23 - 1), 2**23 - 1] (clipped), u_pre
    outside (-2**23, 2**23] (wrapped), |a| > 2**15 - 1; returns (spikes, new state, events)."""
    u_pre = trunc_decay_int(state.u, spec.decay_unity - (params.du + 1), spec) + (a << spec.state_shift)
    u = wrap_u_int(u_pre, spec)
    v_pre = trunc_decay_int(state.v, spec.decay_unity - params.dv, spec) + u
    if step >= params.bias_delay:
        v_pre = v_pre + params.bias
    v = saturate_v_int(v_pre, spec)
    events = NeuronEvents(v=(v_pre < spec.v_min) | (v_pre > spec.v_max), u=(u_pre < spec.u_min) | (u_pre > spec.u_max),
                          a=np.abs(a) > spec.activation_max)
    if not params.spiking:
        return np.zeros(v.shape, dtype=np.int8), NeuronState(u=u, v=v), events
    fired = v > params.vth_scaled
    if params.reset == "zero":
        v = np.where(fired, 0, v)
    else:
        v = v - np.where(fired, params.vth_scaled, 0)
    return fired.astype(np.int8), NeuronState(u=u, v=v), events
