"""Calibration: the activity of a graph's float layers on sample inputs, for the compiler's scales
(docs/fixed-point.md §10.6).

:func:`observe_activity` runs the float layers exactly as the compiler reads them (:class:`~.float_layer.FloatLayer`:
the neuron's input gain folded into the weights, v relative to v_leak) on calibration inputs and records, per
neuron, the extremes that the fixed-point registers must hold:

- ``current_peak``: max |i| of the synaptic current of a CubaLIF layer (u of §3.1), where
  ``i_t = syn_decay * i_{t-1} + I_t`` with ``I_t = W pool(x_t) + W_rec s_{t-1}`` (the recurrent synapse, if
  any, carries the layer's own spikes of the previous step, §4.9); for a layer without current (LIF, IF, the
  readout) it is max |I_t|, which u equals (du = 4095);
- ``voltage_peak``: max |v| before the reset, ``v_t = decay * v_{t-1} + i_t + b`` (the bias b added to v at every
  step, as the integer network adds it from the layer's first input, §3.4, §10.2), over steps, samples and signs;
- ``input_peak`` (layer 0): the largest float input value;
- ``drive_rate``: the fraction of steps and samples at which the neuron's synaptic sum ``W pool(x_t)`` (plus the
  recurrent one) is nonzero, for the floor compensation of §10.6.

The float model here is the one the compiler quantizes, so its v is exactly what 64 K_i v_int approximates
(§10.2): a scale chosen from these peaks (with the margin of §10.6) keeps the integer registers in range on
inputs like the calibration ones. It runs in float64 with torch on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .float_layer import FloatLayer

__all__ = ["DEFAULT_CALIBRATION_MARGIN", "LayerActivity", "observe_activity"]

DEFAULT_CALIBRATION_MARGIN = 2.0  # one bit of headroom above the largest |u|, |v| observed (§10.6)


@dataclass(frozen=True)
class LayerActivity:
    """Per-neuron extremes of one float layer on the calibration inputs (module docstring); arrays have the
    layer's output shape, float64. spikes: spikes emitted over all steps and samples (0 for the readout)."""

    current_peak: np.ndarray
    voltage_peak: np.ndarray
    input_peak: float
    spikes: int
    drive_rate: np.ndarray | None = None  # fraction of (step, sample) with a nonzero synaptic sum, per neuron
    input_mean: np.ndarray | None = None  # the layer input averaged over steps and samples, input_shape


def _connect(layer: FloatLayer, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """W pool(x) for x (rows, *input_shape): sum pooling (§4.2), flatten (§4.3), dense or conv (§4.4)."""
    if layer.pool != (1, 1):
        x = F.avg_pool2d(x, layer.pool) * math.prod(layer.pool)  # the sum over each window
    if layer.kind == "dense":
        return x.reshape(x.shape[0], -1) @ weight.T
    return F.conv2d(x, weight, stride=layer.stride, padding=layer.padding)


def _checked(inputs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(inputs)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"calibration inputs must be real numbers, got dtype {x.dtype}")
    if x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != tuple(shape):
        raise ValueError(f"calibration inputs must have shape (T, batch, *{tuple(shape)}), got {x.shape}; give "
                         "samples as the graph's input node takes them, with the time axis first")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"calibration inputs of shape {x.shape} hold no time step or no sample")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"calibration inputs hold {int(x.size - np.isfinite(x).sum())} NaN/Inf value(s); "
                         "remove those samples")
    if x.min() < 0:
        raise ValueError(f"calibration inputs must be >= 0 (the fixed-point input is unsigned, docs/fixed-point.md "
                         f"§5.3), got a minimum of {x.min()}")
    return x


def observe_activity(layers: list[FloatLayer], inputs: np.ndarray, batch_size: int = 256) -> list[LayerActivity]:
    """Run ``layers`` (a chain, as :func:`~.compiler.float_layers` returns it) on float ``inputs`` (T, batch,
    *input_shape) and return each layer's :class:`LayerActivity`. ValueError for inputs of the wrong shape,
    non-finite or negative values."""
    x_all = _checked(inputs, layers[0].input_shape)
    steps, samples = x_all.shape[:2]
    current = [np.zeros(layer.output_shape) for layer in layers]
    voltage = [np.zeros(layer.output_shape) for layer in layers]
    spikes = [0] * len(layers)
    driven = [np.zeros(layer.output_shape) for layer in layers]
    input_sum = [np.zeros(layer.input_shape) for layer in layers]
    weights = [torch.as_tensor(np.asarray(layer.weight, np.float64)) for layer in layers]
    recurrent = [None if layer.recurrent_weight is None else torch.as_tensor(np.asarray(layer.recurrent_weight,
                                                                                        np.float64))
                 for layer in layers]
    biases = [torch.as_tensor(np.broadcast_to(layer.bias, layer.output_shape).copy()) for layer in layers]
    with torch.no_grad():
        for start in range(0, samples, batch_size):
            x_chunk = torch.as_tensor(x_all[:, start:start + batch_size])
            batch = x_chunk.shape[1]
            state = [(torch.zeros(batch, *layer.output_shape, dtype=torch.float64),
                      torch.zeros(batch, *layer.output_shape, dtype=torch.float64)) for layer in layers]
            previous = [torch.zeros(batch, *layer.output_shape, dtype=torch.float64) for layer in layers]
            i_peak = [torch.zeros(layer.output_shape, dtype=torch.float64) for layer in layers]
            v_peak = [torch.zeros(layer.output_shape, dtype=torch.float64) for layer in layers]
            for t in range(steps):
                x = x_chunk[t]
                for k, layer in enumerate(layers):
                    i, v = state[k]
                    input_sum[k] += x.sum(dim=0).numpy()
                    drive = _connect(layer, x, weights[k])
                    if recurrent[k] is not None:
                        drive = drive + previous[k] @ recurrent[k].T
                    syn_decay = 0.0 if layer.tau_syn_steps is None else 1.0 - 1.0 / layer.tau_syn_steps
                    driven[k] += (drive != 0).sum(dim=0).numpy()
                    i = syn_decay * i + drive
                    decay = 1.0 if math.isinf(layer.tau_steps) else 1.0 - 1.0 / layer.tau_steps
                    v = decay * v + i + biases[k]
                    i_peak[k] = torch.maximum(i_peak[k], i.abs().amax(dim=0))
                    v_peak[k] = torch.maximum(v_peak[k], v.abs().amax(dim=0))
                    if layer.spiking:
                        threshold = torch.as_tensor(np.asarray(layer.threshold, np.float64))
                        fired = v > threshold
                        spikes[k] += int(fired.sum())
                        v = torch.where(fired, v - threshold if layer.reset == "subtract" else torch.zeros_like(v),
                                        v)
                        x = fired.to(torch.float64)
                        previous[k] = x
                    state[k] = (i, v)
            for k in range(len(layers)):
                current[k] = np.maximum(current[k], i_peak[k].numpy())
                voltage[k] = np.maximum(voltage[k], v_peak[k].numpy())
    peak = float(x_all.max())
    return [LayerActivity(current_peak=current[k], voltage_peak=voltage[k], input_peak=peak if k == 0 else 1.0,
                          spikes=spikes[k], drive_rate=driven[k] / (steps * samples),
                          input_mean=input_sum[k] / (steps * samples)) for k in range(len(layers))]


def weight_error_current(layer: FloatLayer, rounded_weight: np.ndarray, input_mean: np.ndarray) -> np.ndarray:
    """``(W - W_rounded) pool(mean x)``: the mean synaptic current (float units, output shape) the rounding of
    the weights takes away on inputs like the calibration ones (the bias correction of §10.6)."""
    delta = torch.as_tensor(np.asarray(layer.weight, np.float64) - np.asarray(rounded_weight, np.float64))
    mean = torch.as_tensor(np.asarray(input_mean, np.float64)[None])
    return _connect(layer, mean, delta)[0].numpy().reshape(layer.output_shape)
