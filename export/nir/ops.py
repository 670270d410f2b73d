"""Thin torch modules, one per kind of NIR node, that the executor runs.

Every op takes ``(x, state)`` with x of shape (batch, *node_input_shape) and returns ``(y, new_state)``;
stateless ops pass ``state=None`` through. Neuron ops (``stateful``) take the tuple of their incoming edges'
values instead of their sum, so that each is added with its own gain term (:func:`.dynamics.leaky_integrate`).
Shapes are checked once, for every backend, by :func:`.validate.check_graph` (rules in :mod:`.shapes`).
Parameters are buffers, so ``.to(dtype)`` converts them; neuron coefficients are computed in float64 before
the conversion (:mod:`.conversions`). The neuron arithmetic lives in :mod:`.dynamics`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dynamics import Firing, Leaky, NeuronState, initial_neuron_state, neuron_step
from .shapes import Shape


def as_tensor(value, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


class NodeOp(nn.Module):
    """Base class: stateless identity (Input and Output nodes)."""

    stateful = False

    def initial_state(self, x: Tensor) -> NeuronState | None:
        return None

    def forward(self, x: Tensor, state: NeuronState | None) -> tuple[Tensor, NeuronState | None]:
        return x, state


class AffineOp(NodeOp):
    """``y = x W^T + b`` on the last dimension (nir.Affine; nir.Linear without bias)."""

    def __init__(self, weight, bias, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight", as_tensor(weight, dtype))
        self.register_buffer("bias", None if bias is None else as_tensor(bias, dtype))

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return F.linear(x, self.weight, self.bias), state


class Conv2dOp(NodeOp):
    """PyTorch ``conv2d`` semantics (nir.Conv2d): weight (C_out, C_in / groups, K_h, K_w)."""

    def __init__(self, weight, bias, stride: Shape, padding: Shape | str, dilation: Shape, groups: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("weight", as_tensor(weight, dtype))
        self.register_buffer("bias", as_tensor(bias, dtype))
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups), state


class Pool2dOp(NodeOp):
    """2-D average pooling (padding counted) or sum pooling (``divisor_override=1``)."""

    def __init__(self, kernel_size: Shape, stride: Shape, padding: Shape, summed: bool) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.summed = kernel_size, stride, padding, summed

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        divisor = 1 if self.summed else None
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=divisor), state


def _batch_dim(dim: int) -> int:
    """NIR Flatten dims exclude the batch dimension; torch's include it."""
    return dim + 1 if dim >= 0 else dim


class FlattenOp(NodeOp):
    """``torch.flatten`` over dims start_dim..end_dim of the sample (batch excluded, as in NIR)."""

    def __init__(self, start_dim: int, end_dim: int) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return torch.flatten(x, _batch_dim(self.start_dim), _batch_dim(self.end_dim)), state


class ElementwiseOp(NodeOp):
    """``x * scale`` (nir.Scale) or ``x > threshold`` (nir.Threshold, strict, output 0/1)."""

    def __init__(self, parameter, threshold: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("parameter", as_tensor(parameter, dtype))
        self.threshold = threshold

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        if self.threshold:
            return (x > self.parameter).to(x.dtype), state
        return x * self.parameter, state


class NeuronOp(NodeOp):
    """A neuron node: membrane (and optional synapse) coefficients, optional firing; see
    :func:`.dynamics.neuron_step`. ``forward`` takes the tuple of the node's incoming values."""

    stateful = True

    def __init__(self, membrane: dict, synapse: dict | None, firing: dict | None, subtract: bool,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self._names: dict[str, list[str]] = {}
        for group, values in (("membrane", membrane), ("synapse", synapse), ("firing", firing)):
            self._names[group] = []
            for key, value in (values or {}).items():
                self.register_buffer(f"{group}_{key}", as_tensor(value, dtype))
                self._names[group].append(key)
        self.has_synapse, self.spiking, self.subtract = synapse is not None, firing is not None, subtract

    def _group(self, group: str) -> dict[str, Tensor]:
        return {key: getattr(self, f"{group}_{key}") for key in self._names[group]}

    def membrane(self) -> Leaky:
        return Leaky(**self._group("membrane"))

    def initial_state(self, x: Tensor) -> NeuronState:
        return initial_neuron_state(x, self.membrane(), self.has_synapse)

    def forward(self, inputs: tuple[Tensor, ...], state: NeuronState) -> tuple[Tensor, NeuronState]:
        synapse = Leaky(**self._group("synapse")) if self.has_synapse else None
        firing = Firing(**self._group("firing"), subtract=self.subtract) if self.spiking else None
        return neuron_step(inputs, state, self.membrane(), synapse, firing)
