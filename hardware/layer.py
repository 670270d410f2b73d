"""One layer of the integer network format: :class:`FixedPointLayer`, a synapse stage (sum pooling, flatten,
dense/conv connection, exponent shift, one-step delay) followed by one population of LIF neurons, every
parameter an integer within the widths of ``hardware/spec.py`` (docs/fixed-point.md §3, §4).

Arrays are stored as read-only int64 copies; per-neuron parameters (vth, bias_mant, bias_exp) given as
scalars are broadcast to the layer's output shape. Invalid values raise ValueError naming the layer, the
parameter and what would fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .checks import field_error, int_array, int_scalar, int_shape
from .spec import CONNECTION_KINDS, RESET_MODES, SHIFT_ROUNDINGS, SPEC, FixedPointSpec

__all__ = ["FixedPointLayer"]

_MAX_STEP = np.iinfo(np.int64).max  # bias_delay is a step index, no register: any int64 >= 0
MAX_LAYER_NEURONS = 1 << 24  # neurons of one layer: its per-neuron arrays are allocated from this count


@dataclass(frozen=True, eq=False)
class FixedPointLayer:
    """One synapse stage + neuron population (docs/fixed-point.md §3, §4). Shapes exclude the batch axis.

    kind: "dense" (weight (n_out, n_in)) or "conv" (weight (C_out, C_in, kh, kw), stride, padding) §4.4.
    input_shape: shape of the layer input (§4.1), before pooling; pool: sum-pool window (§4.2).
    weight: binary=False: Lava Dense weights in [-256, 255] (§4.5); binary=True: signs -1/+1 (§4.6).
    weight_mant: binary magnitude in [1, 127] (1 for full precision); weight_exp: §4.7.
    du, dv: decay registers (§3.1, §3.3); vth, bias_mant, bias_exp: per neuron (§3.4, §3.5).
    bias_delay: the bias is added at steps t >= bias_delay only (0-based step of the run, §3.4).
    reset: "zero" | "subtract" (§3.6); spiking: False for a readout layer (§3.7).
    shift_rounding: "floor" (Lava's Dense) or "nearest" (half up): how a negative weight_exp rounds (§4.7), in
    both synapses.
    recurrent_weight: None, or (n_out, n_out) integers (dense layers only): the layer's own spikes of the
    previous step through a second synapse, whose sum adds to the synaptic input (§4.9). recurrent_binary:
    its weights are signs -1/+1 with magnitude recurrent_weight_mant in [1, 127] (§4.6), else Lava Dense
    weights in [-256, 255] (§4.5, recurrent_weight_mant 1); recurrent_weight_exp: its exponent (§4.7).
    """

    name: str
    kind: str
    input_shape: tuple[int, ...]
    weight: np.ndarray
    binary: bool = False
    weight_mant: int = 1
    weight_exp: int = 0
    du: int = 0
    dv: int = 0
    vth: np.ndarray | int = 0
    bias_mant: np.ndarray | int = 0
    bias_exp: np.ndarray | int = 0
    bias_delay: int = 0
    reset: str = "zero"
    spiking: bool = True
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    pool: tuple[int, int] = (1, 1)
    shift_rounding: str = "floor"
    recurrent_weight: np.ndarray | None = None
    recurrent_binary: bool = False
    recurrent_weight_mant: int = 1
    recurrent_weight_exp: int = 0

    def __post_init__(self) -> None:
        spec = SPEC  # the widths are the same in every profile (docs/fixed-point.md §6)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name must be a non-empty string, got {self.name!r}")
        name = self.name
        if self.kind not in CONNECTION_KINDS:
            raise field_error(name, "kind", f"must be one of {CONNECTION_KINDS}, got {self.kind!r}")
        for flag in ("binary", "spiking", "recurrent_binary"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise field_error(name, flag, f"must be a bool, got {getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
        if self.reset not in RESET_MODES:
            raise field_error(name, "reset", f"must be one of {RESET_MODES}, got {self.reset!r}")
        if self.shift_rounding not in SHIFT_ROUNDINGS:
            raise field_error(name, "shift_rounding", f"must be one of {SHIFT_ROUNDINGS}, got {self.shift_rounding!r}")
        object.__setattr__(self, "input_shape", int_shape(name, "input_shape", self.input_shape))
        object.__setattr__(self, "stride", int_shape(name, "stride", self.stride, 2))
        object.__setattr__(self, "padding", int_shape(name, "padding", self.padding, 2, minimum=0))
        object.__setattr__(self, "pool", int_shape(name, "pool", self.pool, 2))
        if self.kind == "dense" and (self.stride != (1, 1) or self.padding != (0, 0)):
            raise field_error(name, "stride/padding", "apply to conv layers only; leave them (1, 1) / (0, 0)")
        pooled = self._pooled_shape()
        object.__setattr__(self, "weight", self._checked_weight(spec, pooled))
        hint = "rescale in the compiler"
        if self.binary:
            mant = int_scalar(name, "weight_mant", self.weight_mant, 1, spec.weight_mant_max,
                              "choose a larger weight_exp so the magnitude fits")
        else:
            mant = int_scalar(name, "weight_mant", self.weight_mant, 1, 1,
                              "full-precision layers carry the magnitude in weight (docs/fixed-point.md §4.5)")
        object.__setattr__(self, "weight_mant", mant)
        object.__setattr__(self, "weight_exp", int_scalar(name, "weight_exp", self.weight_exp, spec.weight_exp_min,
                                                          spec.weight_exp_max, hint))
        for decay in ("du", "dv"):
            object.__setattr__(self, decay, int_scalar(name, decay, getattr(self, decay), 0, spec.decay_max,
                                                       "decays are 12-bit registers (docs/fixed-point.md §3.1)"))
        object.__setattr__(self, "bias_delay", int_scalar(
            name, "bias_delay", self.bias_delay, 0, _MAX_STEP,
            "it is the first step (0-based) at which the bias is added (docs/fixed-point.md §3.4)"))
        ranges = {"vth": (0, spec.vth_max), "bias_mant": (spec.bias_mant_min, spec.bias_mant_max),
                  "bias_exp": (spec.bias_exp_min, spec.bias_exp_max)}
        out_shape = self.output_shape
        if math.prod(out_shape) > MAX_LAYER_NEURONS:
            raise field_error(name, "output_shape", f"{out_shape} has more than {MAX_LAYER_NEURONS} neurons; check the "
                              "padding, stride and weight shape")
        for parameter, (low, high) in ranges.items():
            array = int_array(name, parameter, getattr(self, parameter), low, high,
                              "move the excess into the exponent or the weight scale")
            try:
                array = np.broadcast_to(array, out_shape).copy()
            except ValueError:
                raise field_error(name, parameter, f"has shape {array.shape}; give a scalar or the layer's output "
                                  f"shape {out_shape}") from None
            array.flags.writeable = False
            object.__setattr__(self, parameter, array)
        self._check_recurrent(spec)

    def _check_recurrent(self, spec: FixedPointSpec) -> None:
        """The recurrent synapse's fields (docs/fixed-point.md §4.9)."""
        name, binary = self.name, self.recurrent_binary
        if self.recurrent_weight is None:
            if binary or self.recurrent_weight_mant != 1 or self.recurrent_weight_exp != 0:
                raise field_error(name, "recurrent_binary/recurrent_weight_mant/recurrent_weight_exp", "need a "
                                  "recurrent_weight; leave them False / 1 / 0 for a layer without a recurrent synapse")
            return
        if self.kind != "dense":
            raise field_error(name, "recurrent_weight", f"is for dense layers only, not {self.kind!r} "
                              "(docs/fixed-point.md §4.9)")
        if not self.spiking:
            raise field_error(name, "recurrent_weight", "needs a spiking layer: a readout never fires, so its "
                              "recurrent synapse would carry nothing (§3.7, §4.9); drop it")
        if binary:
            low, high, hint = -1, 1, "binary recurrent weights are the signs -1/+1 (docs/fixed-point.md §4.6)"
        else:
            low, high = spec.weight_min, spec.weight_max
            hint = "quantize to 8-bit Lava Dense weights (docs/fixed-point.md §4.5)"
        weight = int_array(name, "recurrent_weight", self.recurrent_weight, low, high, hint)
        if binary and weight.size and not np.all(np.abs(weight) == 1):
            raise field_error(name, "recurrent_weight", f"of a recurrent_binary layer must be -1/+1 only; {hint}")
        n = self.num_neurons
        if weight.shape != (n, n):
            raise field_error(name, "recurrent_weight", f"has shape {weight.shape}; the layer's {n} neurons need "
                              f"({n}, {n}) (row: receiving neuron, column: sending neuron)")
        object.__setattr__(self, "recurrent_weight", weight)
        if binary:
            mant = int_scalar(name, "recurrent_weight_mant", self.recurrent_weight_mant, 1, spec.weight_mant_max,
                              "choose a larger recurrent_weight_exp so the magnitude fits")
        else:
            mant = int_scalar(name, "recurrent_weight_mant", self.recurrent_weight_mant, 1, 1,
                              "full-precision recurrent weights carry the magnitude (docs/fixed-point.md §4.5)")
        object.__setattr__(self, "recurrent_weight_mant", mant)
        object.__setattr__(self, "recurrent_weight_exp", int_scalar(
            name, "recurrent_weight_exp", self.recurrent_weight_exp, spec.weight_exp_min, spec.weight_exp_max,
            "rescale in the compiler"))

    @property
    def recurrent(self) -> bool:
        """Whether the layer has a recurrent synapse (§4.9)."""
        return self.recurrent_weight is not None

    def _pooled_shape(self) -> tuple[int, ...]:
        if self.pool == (1, 1):
            return self.input_shape
        if len(self.input_shape) != 3:
            raise field_error(self.name, "pool", f"needs a (C, H, W) input, got input_shape {self.input_shape}")
        channels, height, width = self.input_shape
        if height % self.pool[0] or width % self.pool[1]:
            raise field_error(self.name, "pool", f"{self.pool} does not divide the input's (H, W) = {(height, width)}")
        return channels, height // self.pool[0], width // self.pool[1]

    def _checked_weight(self, spec: FixedPointSpec, pooled: tuple[int, ...]) -> np.ndarray:
        if self.binary:
            low, high, hint = -1, 1, "binary weights are the signs -1/+1 (docs/fixed-point.md §4.6)"
        else:
            low, high = spec.weight_min, spec.weight_max
            hint = "quantize to 8-bit Lava Dense weights (docs/fixed-point.md §4.5)"
        weight = int_array(self.name, "weight", self.weight, low, high, hint)
        if self.binary and weight.size and not np.all(np.abs(weight) == 1):
            raise field_error(self.name, "weight", f"of a binary layer must be -1/+1 only; {hint}")
        if self.kind == "dense":
            expected = (None, math.prod(pooled))
            if weight.ndim != 2 or weight.shape[1] != expected[1] or weight.shape[0] < 1:
                raise field_error(self.name, "weight", f"has shape {weight.shape}; a dense layer on input {pooled} "
                                  f"needs (n_out, {expected[1]})")
            return weight
        if len(pooled) != 3 or weight.ndim != 4 or weight.shape[1] != pooled[0] or weight.shape[0] < 1:
            raise field_error(self.name, "weight", f"has shape {weight.shape}; a conv layer on input {pooled} needs "
                              f"(C_out, {pooled[0] if len(pooled) == 3 else 'C_in'}, kh, kw) and a (C, H, W) input")
        for axis in (0, 1):
            if pooled[1 + axis] + 2 * self.padding[axis] < weight.shape[2 + axis]:
                raise field_error(self.name, "weight", f"kernel {weight.shape[2:]} is larger than the padded input "
                                  f"{pooled[1:]} + 2 * {self.padding}")
        return weight

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        """Shape of the input after sum pooling (docs/fixed-point.md §4.2)."""
        return self._pooled_shape()

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of the neuron population (docs/fixed-point.md §4.4)."""
        if self.kind == "dense":
            return (int(self.weight.shape[0]),)
        _, height, width = self._pooled_shape()
        out_channels, _, kernel_h, kernel_w = self.weight.shape
        return (int(out_channels), (height + 2 * self.padding[0] - kernel_h) // self.stride[0] + 1,
                (width + 2 * self.padding[1] - kernel_w) // self.stride[1] + 1)

    @property
    def num_neurons(self) -> int:
        return math.prod(self.output_shape)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: Python scalars/lists for the scalars and shapes, int64 arrays for the arrays."""
        result: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            result[item.name] = value.copy() if isinstance(value, np.ndarray) else (
                list(value) if isinstance(value, tuple) else value)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixedPointLayer:
        known = {item.name for item in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown FixedPointLayer fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedPointLayer):
            return NotImplemented
        return all(_same(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]  # arrays inside: equal layers need not hash alike


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))
    return a == b
