"""Bit-exact NumPy simulator of the fixed-point semantics in docs/fixed-point.md.

The arithmetic is in pure ``*_int`` step functions that never mutate their inputs; :func:`simulate` is the
thin loop over time steps and layers (docs/fixed-point.md §5.1). Everything is vectorised over the batch
and the neurons. The torch reference (``hardware/torch_reference.py``) implements the same document
independently; the two share only ``hardware/spec.py``.

Connections (dense and conv) are computed as float matrix products, which are exact here: every operand
and every partial sum is an integer whose magnitude is bounded by ``fan_in * max|w| * max|x|``, and
:func:`synapse_params` picks float32 when that bound is below 2**24 and float64 when it is below 2**53
(docs/fixed-point.md §1.1). Integer matmuls in NumPy do not use BLAS and are several times slower.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .network import FixedPointLayer, FixedPointNetwork, SimulationResult
from .spec import SPEC, FixedPointSpec

__all__ = [
    "NeuronParams",
    "NeuronState",
    "SynapseParams",
    "bias_int",
    "connect_int",
    "dense_weight_int",
    "latency",
    "lif_step_int",
    "neuron_params",
    "saturate_v_int",
    "shift_int",
    "simulate",
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
    """

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    matrix: np.ndarray
    weight_mant: int
    weight_exp: int
    output_shape: tuple[int, ...]


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


def shift_int(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """``x << e`` for e >= 0, arithmetic ``x >> -e`` (floor) for e < 0, elementwise (§1.2, §3.4, §4.7)."""
    x = np.asarray(x, dtype=np.int64)
    if isinstance(exponent, (int, np.integer)):  # one exponent per layer: a single shift
        return x << int(exponent) if exponent >= 0 else x >> -int(exponent)
    exponent = np.asarray(exponent, dtype=np.int64)
    return np.where(exponent >= 0, x << np.maximum(exponent, 0), x >> np.maximum(-exponent, 0))


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


def synapse_params(layer: FixedPointLayer, input_max: int, spec: FixedPointSpec = SPEC) -> SynapseParams:
    """Prepare a layer's synapse; ``input_max`` bounds its (unpooled) input values (255 or 1)."""
    weights = np.asarray(layer.weight, dtype=np.int64) if layer.binary else dense_weight_int(layer.weight, spec)
    fan_in = math.prod(weights.shape[1:])
    bound = fan_in * int(np.abs(weights).max(initial=0)) * input_max * math.prod(layer.pool)
    if bound >= spec.exact_float64_bound:
        raise ValueError(f"layer {layer.name!r}: partial sums up to {bound} are not exact in float64")
    dtype = np.float32 if bound < spec.exact_float32_bound else np.float64
    matrix = weights.T if layer.kind == "dense" else weights
    return SynapseParams(kind=layer.kind, pool=layer.pool, stride=layer.stride, padding=layer.padding,
                         matrix=np.ascontiguousarray(matrix, dtype=dtype), weight_mant=layer.weight_mant,
                         weight_exp=layer.weight_exp, output_shape=layer.output_shape)


def sum_pool_int(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Sum over non-overlapping pool windows of x (batch, C, H, W) (docs/fixed-point.md §4.2)."""
    if pool == (1, 1):
        return x
    batch, channels, height, width = x.shape
    blocks = x.reshape(batch, channels, height // pool[0], pool[0], width // pool[1], pool[1])
    return blocks.sum(axis=(3, 5))


def connect_int(x: np.ndarray, synapse: SynapseParams) -> np.ndarray:
    """``acc = sum_j w_ij x_j`` (docs/fixed-point.md §4.3, §4.4) of x (batch, *pooled_shape) -> int64."""
    values = x.astype(synapse.matrix.dtype)
    if synapse.kind == "dense":
        acc = values.reshape(values.shape[0], -1) @ synapse.matrix
    else:
        (pad_h, pad_w), (stride_h, stride_w) = synapse.padding, synapse.stride
        kernel = synapse.matrix.shape[2:]
        padded = np.pad(values, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
        windows = sliding_window_view(padded, kernel, axis=(2, 3))[:, :, ::stride_h, ::stride_w]
        acc = np.tensordot(windows, synapse.matrix, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return acc.astype(np.int64).reshape(x.shape[0], *synapse.output_shape)


def synapse_step_int(x: np.ndarray, synapse: SynapseParams) -> np.ndarray:
    """The synaptic input a_next computed from layer input x (batch, *input_shape), to be delivered one
    step later (docs/fixed-point.md §4.2 - §4.8)."""
    acc = connect_int(sum_pool_int(x, synapse.pool), synapse)
    if synapse.weight_mant != 1:
        acc = acc * synapse.weight_mant
    return shift_int(acc, synapse.weight_exp)


def lif_step_int(a: np.ndarray, state: NeuronState, params: NeuronParams, step: int,
                 spec: FixedPointSpec = SPEC) -> tuple[np.ndarray, NeuronState]:
    """One neuron update (docs/fixed-point.md §3.1 - §3.7) with synaptic input a (batch, *shape) int64 at
    ``step`` (0-based index of this step in the run: the bias counts from step params.bias_delay on, §3.4).

    Returns (spikes as int8 0/1, new state after reset)."""
    u = wrap_u_int(trunc_decay_int(state.u, spec.decay_unity - (params.du + 1), spec) + (a << spec.state_shift),
                   spec)
    v = trunc_decay_int(state.v, spec.decay_unity - params.dv, spec) + u
    v = saturate_v_int(v + params.bias if step >= params.bias_delay else v, spec)
    if not params.spiking:
        return np.zeros(v.shape, dtype=np.int8), NeuronState(u=u, v=v)
    fired = v > params.vth_scaled
    if params.reset == "zero":
        v = np.where(fired, 0, v)
    else:
        v = v - np.where(fired, params.vth_scaled, 0)
    return fired.astype(np.int8), NeuronState(u=u, v=v)


def latency(fx_net: FixedPointNetwork) -> int:
    """Steps from a network input to the last layer's neurons (docs/fixed-point.md §5.2)."""
    return fx_net.latency


def _checked_inputs(fx_net: FixedPointNetwork, inputs: np.ndarray, spec: FixedPointSpec) -> np.ndarray:
    inputs = np.asarray(inputs)
    if inputs.dtype.kind not in "iub":
        raise ValueError(f"inputs must be integers in [0, {spec.input_max}] (docs/fixed-point.md §5.3), got "
                         f"dtype {inputs.dtype}; quantize float inputs first")
    if inputs.ndim != 2 + len(fx_net.input_shape) or tuple(inputs.shape[2:]) != fx_net.input_shape:
        raise ValueError(f"inputs must have shape (T, batch, *{fx_net.input_shape}), got {inputs.shape}")
    if inputs.size and (inputs.min() < 0 or inputs.max() > spec.input_max):
        raise ValueError(f"inputs must lie in [0, {spec.input_max}] (docs/fixed-point.md §5.3), got values in "
                         f"[{inputs.min()}, {inputs.max()}]")
    return inputs.astype(np.int64)


def simulate(fx_net: FixedPointNetwork, inputs: np.ndarray, record: bool = False) -> SimulationResult:
    """Run ``fx_net`` on ``inputs`` (T, batch, *input_shape) integers in [0, 255] for exactly T steps
    (docs/fixed-point.md §5). Append ``latency(fx_net)`` zero steps to flush the delays (§5.2).

    Returns spikes per layer, the output (§5.4) and, with ``record=True``, u and v per layer (§5.5)."""
    spec = SPEC
    inputs = _checked_inputs(fx_net, inputs, spec)
    steps, batch = inputs.shape[:2]
    layers = fx_net.layers
    input_bounds = [spec.input_max] + [1] * (len(layers) - 1)
    synapses = [synapse_params(layer, bound, spec) for layer, bound in zip(layers, input_bounds)]
    neurons = [neuron_params(layer, spec) for layer in layers]
    shapes = [(batch, *layer.output_shape) for layer in layers]
    states = [NeuronState(np.zeros(shape, np.int64), np.zeros(shape, np.int64)) for shape in shapes]
    pending = [np.zeros(shape, np.int64) for shape in shapes]  # delay buffers (§4.8)
    spikes = [np.zeros((steps, *shape), np.int8) for shape in shapes]
    record_u = [np.zeros((steps, *shape), np.int64) for shape in shapes] if record else []
    record_v = [np.zeros((steps, *shape), np.int64) for shape in shapes] if record else []
    output_v = np.zeros((steps, *shapes[-1]), np.int64)
    for t in range(steps):
        x = inputs[t]
        for k in range(len(layers)):
            a = pending[k]
            if t + 1 < steps:  # a sum computed at the last step would only be delivered after the run
                pending[k] = synapse_step_int(x, synapses[k])
            fired, states[k] = lif_step_int(a, states[k], neurons[k], t, spec)
            spikes[k][t] = fired
            if record:
                record_u[k][t] = states[k].u
                record_v[k][t] = states[k].v
            x = fired
        output_v[t] = states[-1].v
    output = spikes[-1].astype(np.int64) if layers[-1].spiking else output_v
    return SimulationResult(spikes=tuple(spikes), output=output, u=tuple(record_u), v=tuple(record_v))
