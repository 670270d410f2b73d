"""snnTorch's backpropagation through time on the float architecture of a bso-deploy model: the reference
that ``bso-deploy bench data`` times T-BSO against (training samples per second and activation memory).

:func:`snntorch_network` rebuilds a :class:`~bso_deploy.network.SpikingNetwork` layer for layer with
snnTorch: each (binary) Linear/Conv2d becomes a float ``nn.Linear``/``nn.Conv2d`` of the same shape,
BatchNorm, pooling and Flatten are copied, and each LIF becomes ``snn.Leaky`` with the same neuron:
``beta = 1 - 1/tau``, the same threshold and reset (``reset_delay=False``: the reset applies in the step that
fires, as ours does) and snnTorch's sigmoid surrogate with ``slope = alpha``, whose derivative
``alpha sig(alpha x) (1 - sig(alpha x))`` is ours (:mod:`bso_deploy.neuron`).

:func:`train_snntorch_batch` is one BPTT step: the T per-step losses of
:func:`bso_deploy.training.online_loss` (the loss of every method here) summed, one backward through the
unrolled T steps, one Adam step over every parameter.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..encoding import Encoder
from ..layers import BinaryConv2d, BinaryLinear
from ..network import SpikingNetwork
from ..neuron import LIF
from ..training import online_loss

__all__ = ["BatchStep", "SnnTorchNetwork", "snntorch_network", "snntorch_trainer", "train_snntorch_batch"]

BatchStep = Callable[..., None]  # (x, y, key, after_backward=None) -> None: one training step on one batch


class SnnTorchNetwork(nn.Module):
    """An ``nn.Sequential`` of torch layers and ``snn.Leaky`` neurons run one time step at a time; each
    Leaky's membrane is passed explicitly (snnTorch's ``init_hidden=False`` style) and kept in the graph."""

    def __init__(self, layers: nn.Sequential) -> None:
        super().__init__()
        self.layers = layers
        self._membranes: dict[int, Tensor] = {}

    def reset_state(self) -> None:
        self._membranes = {index: layer.reset_mem() for index, layer in enumerate(self.layers)
                           if hasattr(layer, "reset_mem")}

    def step(self, x: Tensor) -> Tensor:
        """One time step: x (batch, *input_shape) -> the classifier's current (batch, classes)."""
        for index, layer in enumerate(self.layers):
            if index in self._membranes:
                x, self._membranes[index] = layer(x, self._membranes[index])
            else:
                x = layer(x)
        return x


def _float_synapse(layer: nn.Module) -> nn.Module:
    if isinstance(layer, BinaryLinear):
        return nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if isinstance(layer, BinaryConv2d):
        return nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                         padding=layer.padding, bias=layer.bias is not None)
    return copy.deepcopy(layer)


def snntorch_network(model: SpikingNetwork) -> SnnTorchNetwork:
    """The float architecture of ``model`` (an unparametrized one, e.g. fresh from ``build_network`` of an
    online method) in snnTorch; see the module docstring for the mapping."""
    import snntorch as snn  # lazy: snnTorch is a benchmark dependency only
    from snntorch import surrogate

    layers: list[nn.Module] = []
    for layer in model.layers:
        if isinstance(layer, LIF):
            p = layer.params
            layers.append(snn.Leaky(beta=p.decay, threshold=p.threshold, reset_mechanism=p.reset,
                                    spike_grad=surrogate.sigmoid(slope=p.alpha), reset_delay=False))
        else:
            layers.append(_float_synapse(layer))
    return SnnTorchNetwork(nn.Sequential(*layers))


def train_snntorch_batch(network: SnnTorchNetwork, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
                         encoder: Encoder, key: int, time_steps: int, num_classes: int, mse_weight: float,
                         after_backward: Callable[[], None] | None = None) -> float:
    """One BPTT step on batch x (batch, *input_shape), y (batch,); returns the loss. ``after_backward`` is
    called after the backward pass (a :class:`~bso_deploy.memory.SavedTensorMeter`'s ``release``)."""
    network.reset_state()
    optimizer.zero_grad(set_to_none=True)
    one_hot = F.one_hot(y, num_classes).to(x.dtype)  # once per batch, as the online loop does
    loss = sum(online_loss(network.step(encoder(x, t, key)), y, num_classes, time_steps, mse_weight, one_hot=one_hot)
               for t in range(time_steps))
    loss.backward()
    if after_backward is not None:
        after_backward()
    optimizer.step()
    return float(loss.item())


def snntorch_trainer(model: SpikingNetwork, encoder: Encoder, time_steps: int, num_classes: int,
                     mse_weight: float, lr: float = 1e-3) -> tuple[BatchStep, list[Tensor]]:
    """A fresh snnTorch copy of ``model``'s float architecture with Adam (``lr``): its batch step
    ``(x, y, key, after_backward) -> None`` and its parameters (which activation memory does not count)."""
    network = snntorch_network(model)
    network.train()
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)

    def step(x: Tensor, y: Tensor, key: int, after_backward: Callable[[], None] | None = None) -> None:
        train_snntorch_batch(network, optimizer, x, y, encoder, key, time_steps, num_classes, mse_weight,
                             after_backward)

    return step, list(network.parameters())
