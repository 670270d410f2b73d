"""Pure torch integer step functions of docs/fixed-point.md: the arithmetic of the torch reference.

Written independently of the NumPy step functions (``hardware/step_functions.py``) on purpose (a parity test
between two calls of the same code proves nothing): the two share only the constants of ``hardware/spec.py``.
Every rounding is spelled with torch's own operators: for the truncating decays an arithmetic shift after
adding 2**12 - 1 to negative products, for a layer's negative weight exponent an arithmetic right shift
(which floors; int64 division, ``torch.div`` with ``rounding_mode="floor"``, gives the same and is several
times slower), of the sum plus half the divisor for ``shift_rounding = "nearest"``, ``torch.div`` for the
per-neuron bias exponents, a bit mask for the wrap. The
saturation events of §5.6 compare each value with what the wrap and the clip made of it.

Three callers, one arithmetic: :class:`~bso_deploy.hardware.torch_reference.TorchReference` (the network
run), the torch learner (``hardware/torch_learning.py``) and hardware-aware training
(``bso_deploy/hardware_aware.py``, whose forward values are these functions' values).

- Constants, prepared once per layer: :func:`synapse_constants` (:class:`SynapseConstants`, §4),
  :func:`recurrent_synapse_constants` (§4.9), :func:`neuron_constants` (:class:`NeuronConstants`, §3).
- Steps, pure (no input is mutated, state in NamedTuples): :func:`synaptic_current` (§4.2 - §4.7),
  :func:`lif_step` (§3.1 - §3.7, returning a :class:`LIFStep` with the §5.6 events).
- Their parts: :func:`pow2_shift` (§1.2), :func:`exponent_shift` (§4.7), :func:`effective_weights` (§4.5),
  :func:`trunc_decay` (§1.2), :func:`wrap_u` (§3.2), :func:`exact_dtype` (§1.1).

Connections run as float ``linear``/``conv2d`` (CUDA has no int64 matmul): exact, because every product
and partial sum is an integer below 2**24 (float32) or 2**53 (float64) in magnitude, which
:func:`exact_dtype` checks per layer (docs/fixed-point.md §1.1).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .network import FixedPointLayer
from .spec import SPEC, FixedPointSpec

__all__ = [
    "LIFState",
    "LIFStep",
    "NeuronConstants",
    "SaturationEvents",
    "SynapseConstants",
    "effective_weights",
    "exact_dtype",
    "exponent_shift",
    "initial_state",
    "lif_step",
    "neuron_constants",
    "pow2_shift",
    "recurrent_synapse_constants",
    "synapse_constants",
    "synaptic_current",
    "trunc_decay",
    "wrap_u",
]


class SynapseConstants(NamedTuple):
    """One synapse stage's constants as tensors on the device (docs/fixed-point.md §4).

    weight: effective weights (§4.5) or signs (§4.6) in the float dtype :func:`exact_dtype` chose; dense
    (n_out, n_in), conv (C_out, C_in, kh, kw). weight_mant multiplies the sum (1 for full precision);
    nearest: a negative weight_exp rounds the sum to nearest, halves up (shift_rounding "nearest", §4.7),
    else down (floor)."""

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weight: Tensor
    weight_mant: int
    weight_exp: int
    nearest: bool


class NeuronConstants(NamedTuple):
    """One population's constants (docs/fixed-point.md §3); tensors int64 with the layer's output shape.

    u_factor = 4096 - (du + 1) (§3.1), v_factor = 4096 - dv (§3.3), threshold = vth << 6 (§3.5), bias =
    bias_mant shifted by bias_exp (§3.4), added from step bias_start = bias_delay on; subtract: the reset of
    §3.6 subtracts the threshold (else it zeroes v); spiking False: a readout (§3.7)."""

    u_factor: int
    v_factor: int
    threshold: Tensor
    bias: Tensor
    bias_start: int
    subtract: bool
    spiking: bool
    shape: tuple[int, ...]


class LIFState(NamedTuple):
    """u and v of a population after reset, int64 (batch, *shape) (docs/fixed-point.md §3)."""

    u: Tensor
    v: Tensor


class SaturationEvents(NamedTuple):
    """Where one neuron update left the registers' range (docs/fixed-point.md §5.6), bool (batch, *shape)."""

    v: Tensor  # the clip of §3.3 changed v
    u: Tensor  # the wrap of §3.2 changed u
    a: Tensor  # the delivered synaptic input had |a| > 2**15 - 1 (§8)


class LIFStep(NamedTuple):
    """What one :func:`lif_step` produced: spikes (bool), the new state (after reset), v after the clip and
    before the reset (what the threshold compared), and the §5.6 events."""

    spikes: Tensor
    state: LIFState
    v_before_reset: Tensor
    events: SaturationEvents


def pow2_shift(x: Tensor, exponent: Tensor | int) -> Tensor:
    """x * 2**e for e >= 0, floor(x / 2**-e) for e < 0 (an arithmetic right shift, docs/fixed-point.md §1.2);
    ``exponent`` one int or an int tensor broadcast against x (the bias exponents of §3.4)."""
    if isinstance(exponent, int):  # one exponent for the whole tensor (a layer's weight_exp): x integer
        return x * (1 << exponent) if exponent >= 0 else x >> -exponent
    exponent = torch.as_tensor(exponent, dtype=torch.int64, device=x.device)
    up = x * torch.pow(2, exponent.clamp(min=0))
    down = torch.div(x, torch.pow(2, (-exponent).clamp(min=0)), rounding_mode="floor")
    return torch.where(exponent >= 0, up, down)


def exponent_shift(acc: Tensor, exponent: int, nearest: bool) -> Tensor:
    """The exponent shift of a whole sum (docs/fixed-point.md §4.7): ``acc * 2**e`` for e >= 0; for e = -k < 0
    ``floor(acc / 2**k)``, or with ``nearest`` ``floor((acc + 2**(k-1)) / 2**k)`` (to nearest, halves up)."""
    if nearest and exponent < 0:
        return (acc + (1 << (-exponent - 1))) >> -exponent
    return pow2_shift(acc, exponent)


def effective_weights(weight: Tensor, spec: FixedPointSpec = SPEC) -> Tensor:
    """Lava Dense's effective 8-bit weights (docs/fixed-point.md §4.5) of an int64 tensor: all >= 0 clip to
    [0, 255], all <= 0 to [-255, 0], mixed signs clip to [-256, 255] and floor to the even value below."""
    low, high = (weight.min().item(), weight.max().item()) if weight.numel() else (0, 0)
    if low >= 0:
        return weight.clamp(0, spec.weight_max)
    if high <= 0:
        return weight.clamp(-spec.weight_max, 0)
    clipped = weight.clamp(spec.weight_min, spec.weight_max)
    return clipped - torch.remainder(clipped, 1 << spec.mixed_dropped_bits)


def exact_dtype(bound: int, device: torch.device, what: str, spec: FixedPointSpec = SPEC) -> torch.dtype:
    """The float dtype whose products and partial sums up to ``bound`` in magnitude are exact integers
    (docs/fixed-point.md §1.1): float32 below 2**24 on the CPU, else float64 below 2**53; ValueError naming
    ``what`` beyond. On CUDA float64 always: cuDNN may run float32 convolutions in TF32
    (``torch.backends.cudnn.allow_tf32`` is on by default), whose 11-bit operands would round larger sums."""
    if bound >= spec.exact_float64_bound:
        raise ValueError(f"{what}: sums up to {bound} would not be exact in float64")
    return torch.float32 if bound < spec.exact_float32_bound and device.type != "cuda" else torch.float64


def _int_tensor(values: np.ndarray, device: torch.device | None = None) -> Tensor:
    return torch.tensor(np.asarray(values), dtype=torch.int64, device=device)


def synapse_constants(layer: FixedPointLayer, input_max: int, device: torch.device,
                      spec: FixedPointSpec = SPEC) -> SynapseConstants:
    """The feed-forward synapse of ``layer`` (docs/fixed-point.md §4.2 - §4.7) on ``device``; ``input_max``
    bounds the layer's (unpooled) input values: 255 for layer 0 (§5.3), 1 for spikes. The bound of every
    partial sum, max|w| * fan_in * input_max * pool area, picks the float dtype (:func:`exact_dtype`)."""
    weight = _int_tensor(layer.weight)
    if not layer.binary:
        weight = effective_weights(weight, spec)
    fan_in = weight[0].numel() if weight.numel() else 0
    bound = (weight.abs().max().item() if weight.numel() else 0) * fan_in * input_max * math.prod(layer.pool)
    dtype = exact_dtype(bound, device, f"layer {layer.name!r}", spec)
    return SynapseConstants(kind=layer.kind, pool=layer.pool, stride=layer.stride, padding=layer.padding,
                            weight=weight.to(device=device, dtype=dtype), weight_mant=layer.weight_mant,
                            weight_exp=layer.weight_exp, nearest=layer.shift_rounding == "nearest")


def recurrent_synapse_constants(layer: FixedPointLayer, device: torch.device,
                                spec: FixedPointSpec = SPEC) -> SynapseConstants | None:
    """The recurrent synapse of ``layer`` (docs/fixed-point.md §4.9) as a dense synapse from the layer's own
    0/1 spikes, with its own weight rule (§4.5 on the recurrent matrix alone, or §4.6), its own magnitude and
    exponent, and the layer's shift_rounding; None for a layer without one. :func:`synaptic_current` of the
    spikes of step t is a_rec(t + 1), added to the feed-forward sum delivered at that step."""
    if layer.recurrent_weight is None:
        return None
    weight = _int_tensor(layer.recurrent_weight)
    if not layer.recurrent_binary:
        weight = effective_weights(weight, spec)  # its own sign mode: a Dense of its own in Lava
    bound = (weight.abs().max().item() if weight.numel() else 0) * weight.shape[1]  # inputs are 0/1 spikes
    dtype = exact_dtype(bound, device, f"layer {layer.name!r} (recurrent)", spec)
    return SynapseConstants(kind="dense", pool=(1, 1), stride=(1, 1), padding=(0, 0),
                            weight=weight.to(device=device, dtype=dtype), weight_mant=layer.recurrent_weight_mant,
                            weight_exp=layer.recurrent_weight_exp, nearest=layer.shift_rounding == "nearest")


def synaptic_current(x: Tensor, synapse: SynapseConstants) -> Tensor:
    """``a = shift(weight_mant * sum_j w_ij x_j, weight_exp)`` of integer x (batch, *input_shape): sum pool
    (§4.2), flatten (§4.3), dense or conv connection (§4.4 - §4.6), magnitude and exponent shift (§4.7) of
    docs/fixed-point.md; int64 (batch, *output_shape). Without the one-step delay of §4.8, which the caller
    applies. Any leading batch-like axes may be merged into batch (the sum of one row does not see the
    others)."""
    values = x.to(synapse.weight.dtype)
    if synapse.pool != (1, 1):
        values = F.avg_pool2d(values, synapse.pool, stride=synapse.pool, divisor_override=1)  # a sum pool
    if synapse.kind == "dense":
        summed = F.linear(torch.flatten(values, start_dim=1), synapse.weight)
    else:
        summed = F.conv2d(values, synapse.weight, stride=synapse.stride, padding=synapse.padding)
    summed = summed.to(torch.int64)
    if synapse.weight_mant != 1:
        summed = summed * synapse.weight_mant
    return exponent_shift(summed, synapse.weight_exp, synapse.nearest)


def neuron_constants(layer: FixedPointLayer, device: torch.device, spec: FixedPointSpec = SPEC) -> NeuronConstants:
    """The neuron constants of ``layer`` (docs/fixed-point.md §3.1 - §3.7) on ``device``."""
    bias = pow2_shift(_int_tensor(layer.bias_mant, device), _int_tensor(layer.bias_exp, device))  # §3.4
    return NeuronConstants(u_factor=spec.decay_unity - layer.du - 1, v_factor=spec.decay_unity - layer.dv,
                           threshold=_int_tensor(layer.vth, device) * (1 << spec.state_shift), bias=bias,
                           bias_start=layer.bias_delay, subtract=layer.reset == "subtract", spiking=layer.spiking,
                           shape=layer.output_shape)


def initial_state(neuron: NeuronConstants, batch: int) -> LIFState:
    """u = v = 0 for every neuron (docs/fixed-point.md §3.8), int64 (batch, *shape) on the constants' device."""
    zeros = torch.zeros((batch, *neuron.shape), dtype=torch.int64, device=neuron.threshold.device)
    return LIFState(zeros, zeros.clone())


def trunc_decay(x: Tensor, factor: int, spec: FixedPointSpec = SPEC) -> Tensor:
    """``trunc(x * factor / 2**12)``, toward zero (docs/fixed-point.md §1.2): an arithmetic right shift
    floors, so negative products first get 2**12 - 1 added (int64 division is slower)."""
    product = x * factor
    return (product + (product < 0) * (spec.decay_unity - 1)) >> spec.decay_bits


def wrap_u(x: Tensor, spec: FixedPointSpec = SPEC) -> Tensor:
    """x wrapped into (-2**23, 2**23] modulo 2**24 (docs/fixed-point.md §3.2), as a bit mask of x - u_min."""
    return torch.bitwise_and(x - spec.u_min, spec.u_modulus - 1) + spec.u_min


def lif_step(a: Tensor, state: LIFState, neuron: NeuronConstants, bias_on: bool,
             spec: FixedPointSpec = SPEC) -> LIFStep:
    """One LIF update of docs/fixed-point.md with the synaptic input a delivered at this step (§4.8), int64
    (batch, *shape); ``bias_on``: whether this step adds the bias (the caller's step index has reached
    ``neuron.bias_start``, §3.4)::

        u' = wrap_u(trunc(u * u_factor / 4096) + (a << 6))                 §3.1, §3.2 (du = 4095: u' = a << 6)
        v' = clip(trunc(v * v_factor / 4096) + u' + bias, +-(2**23 - 1))    §3.3, §3.4
        s  = v' > threshold;  v = v' - s threshold (subtract) or v' (1 - s) (zero)      §3.5, §3.6

    A readout (``spiking`` False, §3.7) never fires nor resets. Returns spikes, state, v' and the events of
    §5.6 (:class:`LIFStep`); no input is mutated."""
    current = a * (1 << spec.state_shift)
    if neuron.u_factor:  # du = 4095 clears u (§3.1): nothing of the old u is left
        current = trunc_decay(state.u, neuron.u_factor, spec) + current
    u = wrap_u(current, spec)
    voltage = state.v if neuron.v_factor == spec.decay_unity else trunc_decay(state.v, neuron.v_factor, spec)
    voltage = voltage + u
    if bias_on:
        voltage = voltage + neuron.bias
    v = voltage.clamp(spec.v_min, spec.v_max)
    events = SaturationEvents(v=v != voltage, u=u != current, a=a.abs() > spec.activation_max)
    if not neuron.spiking:
        return LIFStep(torch.zeros_like(v, dtype=torch.bool), LIFState(u, v), v, events)
    fired = v > neuron.threshold
    after = v - neuron.threshold if neuron.subtract else torch.zeros_like(v)
    return LIFStep(fired, LIFState(u, torch.where(fired, after, v)), v, events)
