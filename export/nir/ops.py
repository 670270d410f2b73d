"""Thin torch modules, one per kind of NIR node, that the executor runs.

Every op takes ``(x, state)`` with x of shape (batch, *node_input_shape) and returns ``(y, new_state)``;
stateless ops pass ``state=None`` through. ``output_shape`` maps an input shape (without batch) to the
output shape and raises ValueError on inconsistent shapes. Parameters are buffers, so ``.to(dtype)``
converts them; neuron coefficients are computed in float64 before the conversion (:mod:`.conversions`).
The neuron arithmetic lives in :mod:`.dynamics`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dynamics import Firing, Leaky, NeuronState, initial_neuron_state, neuron_step

Shape = tuple[int, ...]


def as_tensor(value, dtype: torch.dtype) -> Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype)


class NodeOp(nn.Module):
    """Base class: stateless identity on a declared shape (Input and Output nodes)."""

    stateful = False

    def __init__(self, declared_shape: Shape | None = None) -> None:
        super().__init__()
        self.declared_shape = declared_shape

    def output_shape(self, input_shape: Shape) -> Shape:
        if self.declared_shape is not None and len(self.declared_shape) and input_shape != self.declared_shape:
            raise ValueError(f"receives shape {input_shape} but declares shape {self.declared_shape}")
        return input_shape

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

    def output_shape(self, input_shape: Shape) -> Shape:
        n_out, n_in = self.weight.shape
        if len(input_shape) != 1 or input_shape[0] != n_in:
            raise ValueError(f"receives shape {input_shape} but its weight {tuple(self.weight.shape)} expects "
                             f"({n_in},); insert a Flatten node before it if the input is multi-dimensional")
        return (n_out,)

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return F.linear(x, self.weight, self.bias), state


class Conv2dOp(NodeOp):
    """PyTorch ``conv2d`` semantics (nir.Conv2d): weight (C_out, C_in / groups, K_h, K_w)."""

    def __init__(self, weight, bias, stride: Shape, padding: Shape | str, dilation: Shape, groups: int,
                 declared_hw: Shape | None, dtype: torch.dtype) -> None:
        super().__init__(declared_hw)
        self.register_buffer("weight", as_tensor(weight, dtype))
        self.register_buffer("bias", as_tensor(bias, dtype))
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def output_shape(self, input_shape: Shape) -> Shape:
        c_out, c_in_group, k_h, k_w = self.weight.shape
        if len(input_shape) != 3 or input_shape[0] != c_in_group * self.groups:
            raise ValueError(f"receives shape {input_shape} but its weight {tuple(self.weight.shape)} with "
                             f"groups={self.groups} expects ({c_in_group * self.groups}, H, W)")
        if self.declared_shape is not None and len(self.declared_shape) and \
                tuple(input_shape[1:]) != self.declared_shape:
            raise ValueError(f"receives H, W = {input_shape[1:]} but declares input_shape {self.declared_shape}")
        if self.padding == "same":
            return (c_out, *input_shape[1:])
        padding = (0, 0) if self.padding == "valid" else self.padding
        sizes = []
        for axis, kernel in enumerate((k_h, k_w)):
            span = input_shape[1 + axis] + 2 * padding[axis] - self.dilation[axis] * (kernel - 1) - 1
            if span < 0:
                raise ValueError(f"input {input_shape[1:]} is smaller than the dilated kernel")
            sizes.append(span // self.stride[axis] + 1)
        return (c_out, *sizes)

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups), state


class Pool2dOp(NodeOp):
    """2-D average pooling (padding counted) or sum pooling (``divisor_override=1``)."""

    def __init__(self, kernel_size: Shape, stride: Shape, padding: Shape, summed: bool) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.summed = kernel_size, stride, padding, summed

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 3:
            raise ValueError(f"receives shape {input_shape}; 2-D pooling needs (C, H, W)")
        sizes = []
        for axis in range(2):
            span = input_shape[1 + axis] + 2 * self.padding[axis] - self.kernel_size[axis]
            if span < 0:
                raise ValueError(f"input {input_shape[1:]} is smaller than the kernel {self.kernel_size}")
            sizes.append(span // self.stride[axis] + 1)
        return (input_shape[0], *sizes)

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        divisor = 1 if self.summed else None
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=divisor), state


def _batch_dim(dim: int) -> int:
    """NIR Flatten dims exclude the batch dimension; torch's include it."""
    return dim + 1 if dim >= 0 else dim


class FlattenOp(NodeOp):
    """``torch.flatten`` over dims start_dim..end_dim of the sample (batch excluded, as in NIR)."""

    def __init__(self, start_dim: int, end_dim: int, declared_shape: Shape | None) -> None:
        super().__init__(declared_shape)
        self.start_dim, self.end_dim = start_dim, end_dim

    def output_shape(self, input_shape: Shape) -> Shape:
        super().output_shape(input_shape)
        rank = len(input_shape)
        start = self.start_dim % rank if rank else 0
        end = self.end_dim % rank if rank else 0
        if not (-rank <= self.start_dim < rank and -rank <= self.end_dim < rank) or start > end:
            raise ValueError(f"cannot flatten dims {self.start_dim}..{self.end_dim} of shape {input_shape}")
        return (*input_shape[:start], int(np.prod(input_shape[start:end + 1])), *input_shape[end + 1:])

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        return torch.flatten(x, _batch_dim(self.start_dim), _batch_dim(self.end_dim)), state


def _check_broadcast(name: str, parameter: Tensor, input_shape: Shape) -> None:
    """A parameter must match the input shape or be a single value."""
    if parameter.numel() != 1 and tuple(parameter.shape) != input_shape:
        raise ValueError(f"receives shape {input_shape} but its {name} have shape {tuple(parameter.shape)}")


class ElementwiseOp(NodeOp):
    """``x * scale`` (nir.Scale) or ``x > threshold`` (nir.Threshold, strict, output 0/1)."""

    def __init__(self, parameter, threshold: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("parameter", as_tensor(parameter, dtype))
        self.threshold = threshold

    def output_shape(self, input_shape: Shape) -> Shape:
        _check_broadcast("values (threshold)" if self.threshold else "values (scale)", self.parameter, input_shape)
        return input_shape

    def forward(self, x: Tensor, state: None) -> tuple[Tensor, None]:
        if self.threshold:
            return (x > self.parameter).to(x.dtype), state
        return x * self.parameter, state


class NeuronOp(NodeOp):
    """A neuron node: membrane (and optional synapse) coefficients, optional firing; see
    :func:`.dynamics.neuron_step`."""

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

    def output_shape(self, input_shape: Shape) -> Shape:
        for group in ("membrane", "synapse", "firing"):
            for value in self._group(group).values():
                _check_broadcast("per-neuron parameters", value, input_shape)
        return input_shape

    def initial_state(self, x: Tensor) -> NeuronState:
        return initial_neuron_state(x, self.membrane(), self.has_synapse)

    def forward(self, x: Tensor, state: NeuronState) -> tuple[Tensor, NeuronState]:
        synapse = Leaky(**self._group("synapse")) if self.has_synapse else None
        firing = Firing(**self._group("firing"), subtract=self.subtract) if self.spiking else None
        return neuron_step(x, state, self.membrane(), synapse, firing)
