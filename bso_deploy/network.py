"""A feed-forward spiking network run one time step at a time.

:class:`SpikingNetwork` holds an ``nn.Sequential`` of synapses (Linear/Conv2d, binary or not),
BatchNorm, LIF neurons, pooling and Flatten, and routes the OTTT presynaptic trace alongside the spikes:

- a synapse consumes (spikes, trace) through :func:`bso_deploy.layers.synapse_forward`;
- a LIF layer produces spikes and its own trace;
- Flatten and average pooling are linear, so they are applied to the spikes and the trace alike;
- BatchNorm acts on the synaptic current between a synapse and its LIF layer.

The first synapse sees the encoded input with the input itself as its "trace" (as in OTTT, whose first
layer is not wrapped). The output of :meth:`SpikingNetwork.step` is the last layer's output at that step:
the classifier's current (logits) for the default readout.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import PER_STEP_BATCHNORM_TYPES, SYNAPSE_TYPES, linear_spike_op, synapse_forward
from .neuron import LIF

LINEAR_SPIKE_OPS = (nn.Flatten, nn.AvgPool2d, nn.Identity)
CURRENT_OPS = (nn.BatchNorm1d, nn.BatchNorm2d)


class SpikingNetwork(nn.Module):
    """Sequential spiking network; call :meth:`reset_state` before each new sample batch."""

    def __init__(self, layers: nn.Sequential, online: bool = True) -> None:
        super().__init__()
        supported = (*SYNAPSE_TYPES, LIF, *LINEAR_SPIKE_OPS, *CURRENT_OPS)
        for index, layer in enumerate(layers):
            if not isinstance(layer, supported):
                names = ", ".join(t.__name__ for t in supported)
                raise TypeError(f"layer {index} ({type(layer).__name__}) is not supported; use one of {names}")
        self.layers = layers
        self.set_online(online)

    def set_online(self, online: bool) -> None:
        """Online (OTTT) mode: LIF state detached between steps and trace gradients. Off: plain
        autograd through time (the BPTT baseline)."""
        self.online = online
        for layer in self.lif_layers():
            layer.detach_state = online

    def lif_layers(self) -> list[LIF]:
        return [layer for layer in self.layers if isinstance(layer, LIF)]

    def reset_state(self) -> None:
        """Forget the neurons' state and restart the time-step count of per-step BatchNorm."""
        for layer in self.layers:
            if isinstance(layer, (LIF, PER_STEP_BATCHNORM_TYPES)):
                layer.reset_state()

    def step(self, x: Tensor) -> Tensor:
        """Advance one time step. x: (batch, *input_shape) input at this step; returns the last layer's
        output for this step, (batch, num_outputs)."""
        trace: Tensor | None = x if self.online else None
        for layer in self.layers:
            if isinstance(layer, SYNAPSE_TYPES):
                x = synapse_forward(layer, x, trace)
                trace = None
            elif isinstance(layer, LIF):
                x = layer(x)
                trace = layer.trace if self.online else None
            elif isinstance(layer, LINEAR_SPIKE_OPS):
                x = linear_spike_op(layer, x)
                trace = linear_spike_op(layer, trace) if trace is not None else None
            else:
                x = layer(x)
        return x

    def forward(self, inputs: Tensor) -> Tensor:
        """Run a whole sequence: inputs (T, batch, *input_shape) -> outputs (T, batch, num_outputs).
        Resets the state first."""
        self.reset_state()
        return torch.stack([self.step(x_t) for x_t in inputs])
