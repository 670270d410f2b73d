"""Torch integer reference of the fixed-point semantics in docs/fixed-point.md (the GPU reference).

The arithmetic is in the pure step functions of ``hardware/torch_kernels.py``, written independently of the
NumPy simulator on purpose (a parity test between two calls of the same code proves nothing); this module is
the stateful wrapper that runs a whole network with them. States are int64 tensors. The batch runs in blocks
of samples and, within a block, layer by layer: the network is feed-forward between layers and every synapse
delays by one step (§4.8, §5.1), so a layer's whole input train is known before it runs, and its sums for
all steps are one product; its neurons then run step by step. A recurrent synapse (§4.9) adds its sum of the
layer's own spikes to the delay buffer of the next step, where the feed-forward sum already waits. The
saturation counts of §5.6 add up each step's events.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInputError, RangeError
from ..limits import check_memory, simulation_bytes
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

__all__ = ["BLOCK_NEURONS", "TorchReference", "default_device"]

BLOCK_NEURONS = {"cpu": 1 << 18, "cuda": 1 << 25}  # neurons of the widest layer per block of samples


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

    def _block_samples(self, batch: int) -> int:
        """Samples per block: at most BLOCK_NEURONS neurons in the widest layer: on the CPU so that a step's
        elementwise passes over a block's int64 states stay in the caches, on a GPU to bound the memory of
        a layer's sums for all steps; blocks of equal size."""
        widest = max(max(math.prod(layer.output_shape), math.prod(layer.input_shape)) for layer in self.fx_net.layers)
        largest = max(1, BLOCK_NEURONS.get(self.device.type, BLOCK_NEURONS["cuda"]) // widest)
        return -(-batch // -(-batch // largest)) if batch else 1

    def _inputs(self, inputs: np.ndarray | Tensor, record: bool) -> Tensor:
        spec = SPEC
        if isinstance(inputs, np.ndarray) and inputs.dtype.kind not in "biu":
            raise InvalidInputError(f"inputs must be integers in [0, {spec.input_max}] (docs/fixed-point.md "
                                    f"§5.3), got dtype {inputs.dtype}; quantize float inputs first")
        try:
            tensor = torch.as_tensor(inputs)
        except (TypeError, ValueError, RuntimeError) as error:  # ragged lists, strings, objects
            raise InvalidInputError(f"inputs must be an integer array (T, batch, *input_shape): {error}") from error
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex:
            raise InvalidInputError(f"inputs must be integers in [0, {spec.input_max}] (docs/fixed-point.md §5.3), "
                                    f"got dtype {tensor.dtype}; quantize float inputs first")
        expected = self.fx_net.input_shape
        if tensor.dim() != 2 + len(expected) or tuple(tensor.shape[2:]) != expected:
            raise InvalidInputError(f"inputs must have shape (T, batch, *{expected}), got {tuple(tensor.shape)}")
        steps, batch = int(tensor.shape[0]), int(tensor.shape[1])
        check_memory(simulation_bytes(steps, batch, math.prod(expected),
                                      [layer.num_neurons for layer in self.fx_net.layers], record),
                     f"the torch reference on {steps} time steps of {batch} samples")
        tensor = tensor.to(device=self.device, dtype=torch.int64)
        if tensor.numel() and (tensor.min().item() < 0 or tensor.max().item() > spec.input_max):
            raise RangeError(f"inputs must lie in [0, {spec.input_max}] (docs/fixed-point.md §5.3)")
        return tensor

    @torch.no_grad()
    def run(self, inputs: np.ndarray | Tensor, record: bool = False) -> SimulationResult:
        """Same contract as ``hardware.simulator.simulate``: exactly T steps; NumPy arrays on return. The batch
        runs in blocks of samples (:meth:`_block_samples`), each layer of a block over all T steps before the
        next layer (:meth:`_run_block`)."""
        x_all = self._inputs(inputs, record)
        steps, batch = int(x_all.shape[0]), int(x_all.shape[1])
        device = self.device

        def tensor(neuron: NeuronConstants, leading: tuple[int, ...] = (), dtype: torch.dtype = torch.int64,
                   make: Callable[..., Tensor] = torch.empty) -> Tensor:  # empty: every element is written
            return make((*leading, batch, *neuron.shape), dtype=dtype, device=device)

        spikes = [tensor(neuron, (steps,), torch.int8) for neuron in self._neurons]
        u_trace = [tensor(neuron, (steps,)) for neuron in self._neurons] if record else []
        v_trace = [tensor(neuron, (steps,)) for neuron in self._neurons] if record else []
        last_v = tensor(self._neurons[-1], (steps,))
        counts = [[tensor(neuron, make=torch.zeros) for _ in LayerSaturation._fields]  # v, u, a (§5.6)
                  for neuron in self._neurons]
        block = self._block_samples(batch)
        for start in range(0, batch, block):
            cut = slice(start, min(batch, start + block))
            self._run_block(x_all[:, cut], [s[:, cut] for s in spikes], [u[:, cut] for u in u_trace],
                            [v[:, cut] for v in v_trace], last_v[:, cut], [[c[cut] for c in layer] for layer in counts])
        output = spikes[-1].to(torch.int64) if self._neurons[-1].spiking else last_v

        def to_numpy(tensors: list[Tensor]) -> tuple[np.ndarray, ...]:
            return tuple(tensor.cpu().numpy() for tensor in tensors)

        saturation = tuple(LayerSaturation(*to_numpy(layer_counts)) for layer_counts in counts)
        return SimulationResult(spikes=to_numpy(spikes), output=output.cpu().numpy(), u=to_numpy(u_trace),
                                v=to_numpy(v_trace), saturation=saturation)

    def _run_block(self, x: Tensor, spikes: list[Tensor], u_trace: list[Tensor], v_trace: list[Tensor],
                   last_v: Tensor, counts: list[list[Tensor]]) -> None:
        """One block of samples x (T, block, *input_shape), written into views of the whole run's tensors
        (spikes, traces, the last layer's v, the §5.6 counts). Layer by layer: layer k's input for all T
        steps is layer k - 1's spike train, complete before layer k runs, so its feed-forward sums of all
        steps are one product; the sum of step t arrives at step t + 1 (§4.8; the last step's would arrive
        after the run), with the recurrent sum of the layer's own spikes of step t (§4.9)."""
        steps, batch = int(x.shape[0]), int(x.shape[1])
        layer_input = x
        for index, (synapse, neuron) in enumerate(zip(self._synapses, self._neurons)):
            sums = synaptic_current(layer_input[:-1].reshape(-1, *layer_input.shape[2:]), synapse).reshape(
                steps - 1, batch, *neuron.shape) if steps > 1 else None
            state = initial_state(neuron, batch)  # §3.8
            arriving = torch.zeros((batch, *neuron.shape), dtype=torch.int64, device=self.device)
            recurrent = self._recurrent[index]
            for t in range(steps):
                step = lif_step(arriving, state, neuron, t >= neuron.bias_start)
                state = step.state
                for count, event in zip(counts[index], step.events):
                    count += event
                if t + 1 < steps:
                    arriving = sums[t] if recurrent is None else sums[t] + synaptic_current(step.spikes, recurrent)
                spikes[index][t].copy_(step.spikes)
                if u_trace:
                    u_trace[index][t] = state.u
                    v_trace[index][t] = state.v
                if index == len(self._neurons) - 1:
                    last_v[t] = state.v
            layer_input = spikes[index]
