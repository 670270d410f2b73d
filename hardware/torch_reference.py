"""Torch integer reference of the fixed-point semantics in docs/fixed-point.md (the GPU reference).

The arithmetic is in the pure step functions of ``hardware/torch_kernels.py``, written independently of the
NumPy simulator on purpose (a parity test between two calls of the same code proves nothing); this module is
the stateful wrapper that runs a whole network with them. States are int64 tensors. Layer 0's input does not
depend on any state, so its sums for all steps are one product; the other layers run step by step (§5.1). A
recurrent synapse (§4.9) adds its sum of the layer's own spikes to the delay buffer of the next step, where
the feed-forward sum already waits. The saturation counts of §5.6 add up each step's events.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .network import FixedPointNetwork, LayerSaturation, SimulationResult
from .spec import SPEC
from .torch_kernels import (
    NeuronConstants,
    initial_state,
    lif_step,
    neuron_constants,
    recurrent_synapse_constants,
    synapse_constants,
    synaptic_current,
)

__all__ = ["TorchReference", "default_device"]


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchReference:
    """Run a :class:`FixedPointNetwork` with torch integer tensors on ``device`` (None: CUDA if available).

    The constructor prepares every layer's constants once (:func:`~.torch_kernels.synapse_constants`, which
    checks that its sums are exact in floats, :func:`~.torch_kernels.neuron_constants`); :meth:`run` loops
    over steps and layers."""

    def __init__(self, fx_net: FixedPointNetwork, device: str | torch.device | None = None) -> None:
        self.fx_net = fx_net
        self.device = default_device() if device is None else torch.device(device)
        spec = SPEC
        bounds = [spec.input_max] + [1] * (len(fx_net.layers) - 1)  # network input (§5.3), then spikes
        self._synapses = [synapse_constants(layer, bound, self.device, spec)
                          for layer, bound in zip(fx_net.layers, bounds)]
        self._neurons = [neuron_constants(layer, self.device, spec) for layer in fx_net.layers]
        self._recurrent = [recurrent_synapse_constants(layer, self.device, spec) for layer in fx_net.layers]

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

        def zeros(neuron: NeuronConstants, leading: tuple[int, ...] = (), dtype: torch.dtype = torch.int64) -> Tensor:
            return torch.zeros((*leading, batch, *neuron.shape), dtype=dtype, device=device)

        states = [initial_state(neuron, batch) for neuron in self._neurons]  # §3.8
        delayed = [zeros(neuron) for neuron in self._neurons]  # docs/fixed-point.md §4.8
        spikes = [zeros(neuron, (steps,), torch.int8) for neuron in self._neurons]
        u_trace = [zeros(neuron, (steps,)) for neuron in self._neurons] if record else []
        v_trace = [zeros(neuron, (steps,)) for neuron in self._neurons] if record else []
        last_v = zeros(self._neurons[-1], (steps,))
        counts = [[zeros(neuron) for _ in LayerSaturation._fields] for neuron in self._neurons]  # v, u, a (§5.6)
        # layer 0's input does not depend on any state: its sums for all steps in one product (§4.8: the sum of
        # step t arrives at step t + 1; the last step's sum would arrive after the run)
        first = self._synapses[0]
        first_inputs = synaptic_current(x_all[:-1].reshape(-1, *x_all.shape[2:]), first).reshape(
            steps - 1, batch, *self._neurons[0].shape) if steps > 1 else None
        for t in range(steps):
            layer_input = None
            for index, (synapse, neuron) in enumerate(zip(self._synapses, self._neurons)):
                arriving = delayed[index]
                if t + 1 < steps:  # a sum computed at the last step would only arrive after the run
                    delayed[index] = first_inputs[t] if index == 0 else synaptic_current(layer_input, synapse)
                step = lif_step(arriving, states[index], neuron, t >= neuron.bias_start)
                states[index] = step.state
                for count, event in zip(counts[index], step.events):
                    count += event
                recurrent = self._recurrent[index]
                if recurrent is not None and t + 1 < steps:  # its own spikes, delivered at t + 1 (§4.9)
                    delayed[index] = delayed[index] + synaptic_current(step.spikes, recurrent)
                spikes[index][t].copy_(step.spikes)
                if record:
                    u_trace[index][t] = step.state.u
                    v_trace[index][t] = step.state.v
                layer_input = step.spikes
            last_v[t] = states[-1].v
        output = spikes[-1].to(torch.int64) if self._neurons[-1].spiking else last_v

        def to_numpy(tensors: list[Tensor]) -> tuple[np.ndarray, ...]:
            return tuple(tensor.cpu().numpy() for tensor in tensors)

        saturation = tuple(LayerSaturation(*to_numpy(layer_counts)) for layer_counts in counts)
        return SimulationResult(spikes=to_numpy(spikes), output=output.cpu().numpy(), u=to_numpy(u_trace),
                                v=to_numpy(v_trace), saturation=saturation)
