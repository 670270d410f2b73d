"""Torch integer reference of the fixed-point semantics in docs/fixed-point.md (the GPU reference).

Written independently of ``hardware/simulator.py`` on purpose (a parity test between two calls of the same
code proves nothing): the two share only the constants of ``hardware/spec.py`` and the result container.
States are int64 tensors; every rounding is spelled with torch's own operators (for the truncating decays
an arithmetic shift after adding 2**12 - 1 to negative products, ``torch.div`` with ``rounding_mode="floor"``
for negative exponents, of the sum plus half the divisor for ``shift_rounding = "nearest"``, a bit mask for the
wrap). The saturation counts of §5.6 compare each value with what the wrap and the clip made of it. Layer
0's input does not depend on any state, so its sums for all steps are one product; the other layers run step
by step. A recurrent synapse (§4.9) adds its sum of the layer's own spikes to the delay buffer of the next
step, where the feed-forward sum already waits.

Connections run as float ``linear``/``conv2d`` (CUDA has no int64 matmul): exact, because every product
and partial sum is an integer below 2**24 (float32) or 2**53 (float64) in magnitude, which the constructor
checks per layer to pick the dtype (docs/fixed-point.md §1.1).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .network import FixedPointLayer, FixedPointNetwork, LayerSaturation, SimulationResult
from .spec import SPEC, FixedPointSpec

__all__ = ["TorchReference", "default_device"]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _Layer(NamedTuple):
    """One layer's constants as tensors on the device."""

    kind: str
    pool: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    weight: Tensor  # effective weights (§4.5) or signs (§4.6), float32/float64: sums exact (module docstring)
    weight_mant: int
    weight_exp: int
    nearest: bool  # shift_rounding "nearest" (§4.7)
    u_factor: int  # 4096 - (du + 1)          (§3.1)
    v_factor: int  # 4096 - dv                (§3.3)
    threshold: Tensor  # vth * 2**6           (§3.5)
    bias: Tensor  # per neuron                (§3.4)
    bias_start: int  # first step with the bias: bias_delay (§3.4)
    subtract: bool
    spiking: bool
    shape: tuple[int, ...]


def _pow2_shift(x: Tensor, exponent: Tensor | int) -> Tensor:
    """x * 2**e for e >= 0, floor(x / 2**-e) for e < 0 (docs/fixed-point.md §1.2)."""
    if isinstance(exponent, int):  # one exponent for the whole tensor (a layer's weight_exp)
        return x * (1 << exponent) if exponent >= 0 else torch.div(x, 1 << -exponent, rounding_mode="floor")
    exponent = torch.as_tensor(exponent, dtype=torch.int64, device=x.device)
    up = x * torch.pow(2, exponent.clamp(min=0))
    down = torch.div(x, torch.pow(2, (-exponent).clamp(min=0)), rounding_mode="floor")
    return torch.where(exponent >= 0, up, down)


def _lava_dense_weights(weight: Tensor, spec: FixedPointSpec) -> Tensor:
    """Lava Dense's sign-mode clip and mixed-mode truncation (docs/fixed-point.md §4.5)."""
    low, high = (weight.min().item(), weight.max().item()) if weight.numel() else (0, 0)
    if low >= 0:
        return weight.clamp(0, spec.weight_max)
    if high <= 0:
        return weight.clamp(-spec.weight_max, 0)
    clipped = weight.clamp(spec.weight_min, spec.weight_max)
    return clipped - torch.remainder(clipped, 1 << spec.mixed_dropped_bits)  # floor to the even value below


def _prepare(layer: FixedPointLayer, max_input: int, device: torch.device, spec: FixedPointSpec) -> _Layer:
    weight = torch.tensor(np.asarray(layer.weight), dtype=torch.int64)
    if not layer.binary:
        weight = _lava_dense_weights(weight, spec)
    worst = weight.abs().max().item() * (weight[0].numel() if weight.numel() else 0) * max_input
    worst *= layer.pool[0] * layer.pool[1]
    if worst >= spec.exact_float64_bound:
        raise ValueError(f"layer {layer.name!r}: sums up to {worst} would not be exact in float64")

    def per_neuron(values: np.ndarray) -> Tensor:
        return torch.tensor(np.asarray(values), dtype=torch.int64, device=device)

    dtype = torch.float32 if worst < spec.exact_float32_bound else torch.float64
    return _Layer(
        kind=layer.kind, pool=layer.pool, stride=layer.stride, padding=layer.padding,
        weight=weight.to(device=device, dtype=dtype), weight_mant=layer.weight_mant,
        weight_exp=layer.weight_exp, nearest=layer.shift_rounding == "nearest",
        u_factor=spec.decay_unity - layer.du - 1, v_factor=spec.decay_unity - layer.dv,
        threshold=per_neuron(layer.vth) * (1 << spec.state_shift),
        bias=_pow2_shift(per_neuron(layer.bias_mant), per_neuron(layer.bias_exp)), bias_start=layer.bias_delay,
        subtract=layer.reset == "subtract", spiking=layer.spiking, shape=layer.output_shape)


def _prepare_recurrent(layer: FixedPointLayer, prepared: _Layer, spec: FixedPointSpec) -> _Layer | None:
    """The recurrent synapse of §4.9 as a dense ``_Layer`` (only its synapse fields matter), or None."""
    if layer.recurrent_weight is None:
        return None
    weight = torch.tensor(np.asarray(layer.recurrent_weight), dtype=torch.int64)
    if not layer.recurrent_binary:
        weight = _lava_dense_weights(weight, spec)  # its own sign mode: a Dense of its own in Lava
    worst = weight.abs().max().item() * weight.shape[1]  # inputs are 0/1 spikes
    dtype = torch.float32 if worst < spec.exact_float32_bound else torch.float64
    return prepared._replace(kind="dense", pool=(1, 1), weight=weight.to(device=prepared.threshold.device,
                                                                         dtype=dtype),
                             weight_mant=layer.recurrent_weight_mant, weight_exp=layer.recurrent_weight_exp)


def synaptic_input(x: Tensor, layer: _Layer) -> Tensor:
    """Sum-pool, flatten, connect, scale and shift x (batch, *input_shape) (docs/fixed-point.md §4.2 - §4.7);
    any leading batch-like axes may be merged into batch (the sum of one row does not see the others)."""
    values = x.to(layer.weight.dtype)
    if layer.pool != (1, 1):
        values = F.avg_pool2d(values, layer.pool, stride=layer.pool, divisor_override=1)  # a sum pool
    if layer.kind == "dense":
        summed = F.linear(torch.flatten(values, start_dim=1), layer.weight)
    else:
        summed = F.conv2d(values, layer.weight, stride=layer.stride, padding=layer.padding)
    summed = summed.to(torch.int64)
    if layer.weight_mant != 1:
        summed = summed * layer.weight_mant
    if layer.nearest and layer.weight_exp < 0:  # to nearest, halves up: floor((acc + 2**(k-1)) / 2**k) (§4.7)
        return torch.div(summed + (1 << (-layer.weight_exp - 1)), 1 << -layer.weight_exp, rounding_mode="floor")
    return _pow2_shift(summed, layer.weight_exp)


def _decay(x: Tensor, factor: int, spec: FixedPointSpec) -> Tensor:
    """trunc(x * factor / 2**decay_bits), toward zero (docs/fixed-point.md §1.2): an arithmetic right shift
    floors, so negative products first get 2**decay_bits - 1 added (int64 division is slower)."""
    product = x * factor
    return (product + (product < 0) * (spec.decay_unity - 1)) >> spec.decay_bits


def neuron_step(a: Tensor, u: Tensor, v: Tensor, layer: _Layer, bias_on: bool,
                spec: FixedPointSpec = SPEC) -> tuple[Tensor, Tensor, Tensor]:
    """One LIF update (docs/fixed-point.md §3); ``bias_on``: whether this step adds the bias (the caller's
    step index has reached the layer's bias_delay, §3.4). Returns (spikes bool, u, v after reset); no input
    mutated. :func:`neuron_step_counted` also returns where it saturated (§5.6)."""
    return neuron_step_counted(a, u, v, layer, bias_on, spec)[:3]


def neuron_step_counted(a: Tensor, u: Tensor, v: Tensor, layer: _Layer, bias_on: bool,
                        spec: FixedPointSpec = SPEC) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """:func:`neuron_step` plus three bool tensors (§5.6): the clip changed v, the wrap changed u, and
    |a| > 2**15 - 1."""
    current = a * (1 << spec.state_shift)
    if layer.u_factor:  # du = 4095 clears u (§3.1): nothing of the old u is left
        current = _decay(u, layer.u_factor, spec) + current
    wrapped = torch.bitwise_and(current - spec.u_min, spec.u_modulus - 1) + spec.u_min  # §3.2
    voltage = v if layer.v_factor == spec.decay_unity else _decay(v, layer.v_factor, spec)
    voltage = voltage + wrapped
    if bias_on:
        voltage = voltage + layer.bias
    clipped = voltage.clamp(spec.v_min, spec.v_max)
    events = (clipped != voltage, wrapped != current, a.abs() > spec.activation_max)
    if not layer.spiking:
        return torch.zeros_like(clipped, dtype=torch.bool), wrapped, clipped, *events
    fired = clipped > layer.threshold
    after = clipped - layer.threshold if layer.subtract else torch.zeros_like(clipped)
    return fired, wrapped, torch.where(fired, after, clipped), *events


class TorchReference:
    """Run a :class:`FixedPointNetwork` with torch integer tensors on ``device`` (None: CUDA if available)."""

    def __init__(self, fx_net: FixedPointNetwork, device: str | torch.device | None = None) -> None:
        self.fx_net = fx_net
        self.device = default_device() if device is None else torch.device(device)
        spec = SPEC
        bounds = [spec.input_max] + [1] * (len(fx_net.layers) - 1)
        self._layers = [_prepare(layer, bound, self.device, spec) for layer, bound in zip(fx_net.layers, bounds)]
        self._recurrent = [_prepare_recurrent(layer, prepared, spec) for layer, prepared in
                           zip(fx_net.layers, self._layers)]

    def _inputs(self, inputs: np.ndarray | Tensor) -> Tensor:
        spec = SPEC
        tensor = torch.as_tensor(inputs)
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
            raise ValueError(f"inputs must be integers in [0, {spec.input_max}] (docs/fixed-point.md §5.3), "
                             f"got dtype {tensor.dtype}; quantize float inputs first")
        expected = self.fx_net.input_shape
        if tensor.dim() != 2 + len(expected) or tuple(tensor.shape[2:]) != expected:
            raise ValueError(f"inputs must have shape (T, batch, *{expected}), got {tuple(tensor.shape)}")
        tensor = tensor.to(device=self.device, dtype=torch.int64)
        if tensor.numel() and (tensor.min().item() < 0 or tensor.max().item() > spec.input_max):
            raise ValueError(f"inputs must lie in [0, {spec.input_max}] (docs/fixed-point.md §5.3)")
        return tensor

    @torch.no_grad()
    def run(self, inputs: np.ndarray | Tensor, record: bool = False) -> SimulationResult:
        """Same contract as ``hardware.simulator.simulate``: exactly T steps; NumPy arrays on return."""
        x_all = self._inputs(inputs)
        steps, batch = int(x_all.shape[0]), int(x_all.shape[1])
        device = self.device

        def zeros(layer: _Layer, leading: tuple[int, ...] = (), dtype: torch.dtype = torch.int64) -> Tensor:
            return torch.zeros((*leading, batch, *layer.shape), dtype=dtype, device=device)

        u = [zeros(layer) for layer in self._layers]
        v = [zeros(layer) for layer in self._layers]
        delayed = [zeros(layer) for layer in self._layers]  # docs/fixed-point.md §4.8
        spikes = [zeros(layer, (steps,), torch.int8) for layer in self._layers]
        u_trace = [zeros(layer, (steps,)) for layer in self._layers] if record else []
        v_trace = [zeros(layer, (steps,)) for layer in self._layers] if record else []
        last_v = zeros(self._layers[-1], (steps,))
        counts = [[zeros(layer) for _ in LayerSaturation._fields] for layer in self._layers]  # v, u, a (§5.6)
        # layer 0's input does not depend on any state: its sums for all steps in one product (§4.8: the sum of
        # step t arrives at step t + 1; the last step's sum would arrive after the run)
        first = self._layers[0]
        first_inputs = synaptic_input(x_all[:-1].reshape(-1, *x_all.shape[2:]), first).reshape(
            steps - 1, batch, *first.shape) if steps > 1 else None
        for t in range(steps):
            layer_input = None
            for index, layer in enumerate(self._layers):
                arriving = delayed[index]
                if t + 1 < steps:  # a sum computed at the last step would only arrive after the run
                    delayed[index] = first_inputs[t] if index == 0 else synaptic_input(layer_input, layer)
                fired, u[index], v[index], *events = neuron_step_counted(arriving, u[index], v[index], layer,
                                                                         t >= layer.bias_start)
                for count, event in zip(counts[index], events):
                    count += event
                recurrent = self._recurrent[index]
                if recurrent is not None and t + 1 < steps:  # its own spikes, delivered at t + 1 (§4.9)
                    delayed[index] = delayed[index] + synaptic_input(fired, recurrent)
                spikes[index][t].copy_(fired)
                if record:
                    u_trace[index][t] = u[index]
                    v_trace[index][t] = v[index]
                layer_input = fired
            last_v[t] = v[-1]
        output = spikes[-1].to(torch.int64) if self._layers[-1].spiking else last_v

        def to_numpy(tensors: list[Tensor]) -> tuple[np.ndarray, ...]:
            return tuple(tensor.cpu().numpy() for tensor in tensors)

        saturation = tuple(LayerSaturation(*to_numpy(layer_counts)) for layer_counts in counts)
        return SimulationResult(spikes=to_numpy(spikes), output=output.cpu().numpy(), u=to_numpy(u_trace),
                                v=to_numpy(v_trace), saturation=saturation)

