"""The integer arithmetic of bso-deploy's own Lava process models (profile ``bso``), written from the spec.

Lava is the third implementation of docs/fixed-point.md, beside the NumPy simulator and the torch reference.
This module computes every value that the neuron and synapse models of ``hardware/lava/processes`` (and the
frozen parts of ``hardware/lava/learning``) send or store, from the text of the spec and the constants of
``hardware/spec.py`` alone: it imports neither the simulator, nor its step functions, nor the torch reference
(``tests/hardware/test_lava_imports.py`` checks every module of ``hardware/lava``), so that a parity test
between them compares two pieces of arithmetic, not one piece twice. ``learning_arithmetic.py`` does the
same for docs/onchip-learning.md.

It works as a Lava process model does: one time step at a time, vectorized over a population (any leading
axes: copies of the network side by side), int64 throughout. The formulations are its own: truncation
toward zero as a shift of a biased product, the wrap of u as a 24-bit mask, Lava's weight truncation as a
bit mask, a negative exponent as a floor division, pooling as a sum of strided slices and a convolution as
a sum over kernel offsets. No step relies on the overflow of a machine type (§1.1): the largest
intermediate is a decayed state times a 12-bit factor, below 2**36.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from bso_deploy.hardware.spec import RESET_MODES, SHIFT_ROUNDINGS, SPEC

__all__ = [
    "NeuronConfig",
    "NeuronStep",
    "SynapseConfig",
    "bias_value",
    "connect",
    "lava_dense_weights",
    "neuron_config",
    "neuron_step",
    "saturate_voltage",
    "shift_sum",
    "sum_pool",
    "synapse_config",
    "synapse_step",
    "truncating_decay",
    "wrap_current",
]


# --- neuron: docs/fixed-point.md §3 ---------------------------------------------------------------------------

def truncating_decay(x: np.ndarray, keep: int) -> np.ndarray:
    """``trunc(x * keep / 4096)``, rounded toward zero (§1.2; keep = 4096 - (du + 1) for u, §3.1, and
    4096 - dv for v, §3.3). An arithmetic shift floors; adding 4095 to a negative product first turns that
    floor into a truncation (``(p + 4095) >> 12 = ceil(p / 4096)`` for p < 0)."""
    product = np.asarray(x, dtype=np.int64) * keep
    return (product + np.where(product < 0, SPEC.decay_max, 0)) >> SPEC.decay_bits


def wrap_current(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u wrapped into (-2**23, 2**23] modulo 2**24 (§3.2), and where the wrap changed it (§5.6).

    ``x - u_min`` lies in [0, 2**24) exactly when x lies in the interval; its low 24 bits (a mask, in two's
    complement also for negative values) are its residue modulo 2**24, so adding u_min back gives the one
    value of the interval congruent to x: +2**23 stays, -2**23 becomes +2**23."""
    x = np.asarray(x, dtype=np.int64)
    wrapped = ((x - SPEC.u_min) & (SPEC.u_modulus - 1)) + SPEC.u_min
    return wrapped, wrapped != x


def saturate_voltage(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """v clipped to +-(2**23 - 1) (§3.3), and where the clip changed it (§5.6)."""
    x = np.asarray(x, dtype=np.int64)
    clipped = np.minimum(np.maximum(x, SPEC.v_min), SPEC.v_max)
    return clipped, clipped != x


def bias_value(bias_mant: np.ndarray, bias_exp: np.ndarray) -> np.ndarray:
    """The bias B (§3.4): ``bias_mant * 2**bias_exp`` for bias_exp >= 0, else ``floor(bias_mant / 2**-bias_exp)``
    (the arithmetic shift of §1.2: -3 with exponent -1 is -2); elementwise, int64."""
    mant = np.asarray(bias_mant, dtype=np.int64)
    exp = np.asarray(bias_exp, dtype=np.int64)
    up = mant * (np.int64(2) ** np.maximum(exp, 0))
    down = np.floor_divide(mant, np.int64(2) ** np.maximum(-exp, 0))
    return np.where(exp >= 0, up, down)


class NeuronConfig(NamedTuple):
    """A population's constants, read once from its registers (§3): the factors that keep u and v, vth << 6,
    B (§3.4) and the step it starts at, the reset and whether the population fires at all (§3.7)."""

    current_keep: int  # 4096 - (du + 1), §3.1
    voltage_keep: int  # 4096 - dv, §3.3
    threshold: np.ndarray  # vth << 6, §3.5
    bias: np.ndarray  # B, §3.4
    bias_delay: int
    subtract: bool  # reset "subtract" (else "zero"), §3.6
    spiking: bool


def neuron_config(*, du: int, dv: int, vth: np.ndarray, bias_mant: np.ndarray, bias_exp: np.ndarray,
                  bias_delay: int, reset: str, spiking: bool) -> NeuronConfig:
    """:class:`NeuronConfig` from a population's registers (du, dv 12-bit; vth, bias_mant, bias_exp per
    neuron); ValueError for a reset outside RESET_MODES."""
    if reset not in RESET_MODES:
        raise ValueError(f"reset must be one of {RESET_MODES}, got {reset!r}")
    threshold = np.asarray(vth, dtype=np.int64) * (1 << SPEC.state_shift)
    return NeuronConfig(current_keep=SPEC.decay_unity - (int(du) + 1), voltage_keep=SPEC.decay_unity - int(dv),
                        threshold=threshold, bias=bias_value(bias_mant, bias_exp), bias_delay=int(bias_delay),
                        subtract=reset == "subtract", spiking=bool(spiking))


class NeuronStep(NamedTuple):
    """One step of a population (all int64 or bool arrays of its shape).

    spikes 0/1; u and v after the step (v after reset, §5.5); v_before_reset (after the clip, the input of
    the learning rule's postsynaptic factor, docs/onchip-learning.md §4); current = u + bias(t), what v
    gained this step besides its decay (the readout error's input, docs/onchip-learning.md §5); and the
    events of §5.6: u_wrapped, v_clipped, a_out_of_range (|a| > 2**15 - 1)."""

    spikes: np.ndarray
    u: np.ndarray
    v: np.ndarray
    v_before_reset: np.ndarray
    current: np.ndarray
    u_wrapped: np.ndarray
    v_clipped: np.ndarray
    a_out_of_range: np.ndarray


def neuron_step(u: np.ndarray, v: np.ndarray, a: np.ndarray, step: int, config: NeuronConfig) -> NeuronStep:
    """Advance a population by one step (docs/fixed-point.md §3.1 - §3.7) with the synaptic input a delivered
    at ``step`` (the 0-based step within the sample: the bias is added from ``config.bias_delay`` on)::

        u' = wrap( trunc(u (4096 - (du + 1)) / 4096) + a 2**6 )                        §3.1, §3.2
        c  = u' + bias(t)
        v' = clip( trunc(v (4096 - dv) / 4096) + c, -(2**23 - 1), 2**23 - 1 )           §3.3, §3.4
        s  = v' > vth 2**6 (spiking populations only)                                  §3.5, §3.7
        v' <- 0 (zero) or v' - vth 2**6 (subtract) where s                             §3.6

    Inputs are not modified."""
    a = np.asarray(a, dtype=np.int64)
    u_new, u_wrapped = wrap_current(truncating_decay(u, config.current_keep) + a * (1 << SPEC.state_shift))
    current = u_new + config.bias if step >= config.bias_delay else u_new
    v_before_reset, v_clipped = saturate_voltage(truncating_decay(v, config.voltage_keep) + current)
    if config.spiking:
        fired = v_before_reset > config.threshold
        after_reset = v_before_reset - config.threshold if config.subtract else 0
        v_new = np.where(fired, after_reset, v_before_reset)
    else:
        fired = np.zeros(v_before_reset.shape, dtype=bool)
        v_new = v_before_reset
    return NeuronStep(spikes=fired.astype(np.int64), u=u_new, v=v_new, v_before_reset=v_before_reset,
                      current=np.broadcast_to(current, u_new.shape).copy(), u_wrapped=u_wrapped, v_clipped=v_clipped,
                      a_out_of_range=np.abs(a) > SPEC.activation_max)


# --- synapse: docs/fixed-point.md §4 --------------------------------------------------------------------------

def lava_dense_weights(weight: np.ndarray) -> np.ndarray:
    """The effective weights of Lava's Dense for 8-bit ``weight`` in [-256, 255] (§4.5), per layer: all >= 0
    (excitatory) clip to [0, 255]; else all <= 0 (inhibitory) clip to [-255, 0]; else (mixed) clip to
    [-256, 255] and clear the lowest ``mixed_dropped_bits`` bit(s) with a mask, which floors to an even value
    in two's complement: +1 -> 0, -1 -> -2, 255 -> 254, -255 -> -256."""
    w = np.asarray(weight, dtype=np.int64)
    if not np.any(w < 0):
        return np.clip(w, 0, SPEC.weight_max)
    if not np.any(w > 0):
        return np.clip(w, -SPEC.weight_max, 0)
    return np.clip(w, SPEC.weight_min, SPEC.weight_max) & -(1 << SPEC.mixed_dropped_bits)


class SynapseConfig(NamedTuple):
    """A synapse stage's constants (§4): geometry, the effective integer weights w_ij in the layer's layout
    (dense (n_out, n_in), conv (C_out, C_in, kh, kw); binary layers: weight_mant * sign, §4.6), the exponent
    and its rounding (§4.7); ``weight_float`` the same integers as float64 and ``row_mass`` the largest
    ``sum_j |w_ij|`` of an output (:func:`synapse_step` says why)."""

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weight: np.ndarray
    weight_exp: int
    shift_rounding: str
    weight_float: np.ndarray
    row_mass: int


def synapse_config(*, weight: np.ndarray, binary: bool, weight_mant: int, weight_exp: int, kind: str,
                   pool: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                   shift_rounding: str) -> SynapseConfig:
    """:class:`SynapseConfig` from a layer's stored weights: signs times weight_mant (binary, §4.6) or Lava's
    Dense rule (§4.5); ValueError for a rounding outside SHIFT_ROUNDINGS."""
    if shift_rounding not in SHIFT_ROUNDINGS:
        raise ValueError(f"shift_rounding must be one of {SHIFT_ROUNDINGS}, got {shift_rounding!r}")
    effective = (int(weight_mant) * np.asarray(weight, dtype=np.int64) if binary else lava_dense_weights(weight))
    mass = np.abs(effective).reshape(effective.shape[0], -1).sum(axis=1)
    return SynapseConfig(kind=kind, pool=tuple(pool), stride=tuple(stride), padding=tuple(padding),
                         weight=effective, weight_exp=int(weight_exp), shift_rounding=shift_rounding,
                         weight_float=effective.astype(np.float64), row_mass=int(mass.max(initial=0)))


def sum_pool(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Sum pooling (§4.2) of x (batch, C, H, W) over non-overlapping (ph, pw) windows, stride = window:
    the sum of the ph * pw strided slices ``x[..., i::ph, j::pw]``, one per offset in the window (any dtype)."""
    rows, cols = pool
    if (rows, cols) == (1, 1):
        return x
    total = x[..., 0::rows, 0::cols].copy()
    for i in range(rows):
        for j in range(cols):
            if i or j:
                total += x[..., i::rows, j::cols]
    return total


def connect(x: np.ndarray, weight: np.ndarray, kind: str, stride: tuple[int, int],
            padding: tuple[int, int]) -> np.ndarray:
    """``acc_i = sum_j w_ij x_j`` (§4.3, §4.4) of the pooled input x (batch, *pooled_shape) in the dtype of
    x and weight (int64, or float64 holding exact integers, :func:`synapse_step`; float64: the float graph).
    Dense flattens x in C order; conv is the 2-D cross-correlation with zero padding and stride, summed over
    the kernel offsets (i, j): each adds ``weight[:, :, i, j]`` times the input window that offset sees,
    (batch, C_out, H_out, W_out)."""
    if kind == "dense":
        return x.reshape(x.shape[0], -1) @ weight.T
    (stride_h, stride_w), (pad_h, pad_w) = stride, padding
    c_out, _, kernel_h, kernel_w = weight.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    out_h = (padded.shape[2] - kernel_h) // stride_h + 1
    out_w = (padded.shape[3] - kernel_w) // stride_w + 1
    acc = np.zeros((x.shape[0], out_h, out_w, c_out), dtype=np.result_type(x, weight))  # channels last
    for i in range(kernel_h):
        for j in range(kernel_w):
            seen = padded[:, :, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]
            acc += np.tensordot(seen, weight[:, :, i, j], axes=([1], [1]))  # (batch, H_out, W_out, C_out)
    return acc.transpose(0, 3, 1, 2)


def shift_sum(acc: np.ndarray, weight_exp: int, rounding: str) -> np.ndarray:
    """The exponent shift of the whole sum (§4.7): ``acc * 2**e`` for e >= 0; for e = -k < 0 the floor of
    ``acc / 2**k`` (``floor``) or of ``(acc + 2**(k-1)) / 2**k`` (``nearest``, halves up: -3 with e = -1 gives
    -1, +3 gives 2), as a floor division."""
    acc = np.asarray(acc, dtype=np.int64)
    if weight_exp >= 0:
        return acc * (1 << weight_exp)
    divisor = 1 << -weight_exp
    return np.floor_divide(acc + (divisor // 2 if rounding == "nearest" else 0), divisor)


def synapse_step(x: np.ndarray, config: SynapseConfig) -> np.ndarray:
    """The synaptic input a computed from the layer input x (batch, *input_shape) int64, to be delivered one
    step later (§4.8, the caller's delay buffer): pooled (§4.2), connected (§4.3 - §4.6) and shifted (§4.7);
    (batch, *output_shape) int64.

    The connection runs in float64 (BLAS) when that is exact (§1.1): every partial sum of output i is at most
    ``sum_j |w_ij| |x_j| <= row_mass max|x|`` in magnitude, so below 2**53 every float operation is on exact
    integers; otherwise in int64."""
    pooled = sum_pool(np.asarray(x, dtype=np.int64), config.pool)
    if config.row_mass * int(np.abs(pooled).max(initial=0)) < SPEC.exact_float64_bound:
        acc = connect(pooled.astype(np.float64), config.weight_float, config.kind, config.stride,
                      config.padding).astype(np.int64)
    else:
        acc = connect(pooled, config.weight, config.kind, config.stride, config.padding)
    return shift_sum(acc, config.weight_exp, config.shift_rounding)
