"""Integer network description: what the compiler produces and every fixed-point backend runs.

A :class:`FixedPointNetwork` is a chain of :class:`FixedPointLayer`\\ s, each one synapse stage (sum pooling,
flatten, dense/conv connection, exponent shift, one-step delay) followed by one population of LIF neurons,
with every parameter an integer within the widths of ``hardware/spec.py``. The semantics of each field are
in docs/fixed-point.md (cited by section below); this module only holds and validates the numbers.

Arrays are stored as read-only int64 copies; per-neuron parameters (vth, bias_mant, bias_exp) given as
scalars are broadcast to the layer's output shape. Invalid values raise ValueError naming the layer, the
parameter and what would fix it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bso_deploy.io import atomic_write

from .spec import CONNECTION_KINDS, RESET_MODES, SHIFT_ROUNDINGS, SPEC, FixedPointSpec, Profile, get_profile

__all__ = ["FORMAT_VERSION", "FixedPointLayer", "FixedPointNetwork", "LayerSaturation", "SimulationResult",
           "append_zero_steps"]

FORMAT_VERSION = 1  # docs/fixed-point.md §9
_ARRAY_FIELDS = ("weight", "vth", "bias_mant", "bias_exp")
_NEURON_FIELDS = ("vth", "bias_mant", "bias_exp")
_MAX_STEP = np.iinfo(np.int64).max  # bias_delay is a step index, no register: any int64 >= 0


class LayerSaturation(NamedTuple):
    """Where one layer left the range its registers hold, counted per neuron over a run
    (docs/fixed-point.md §5.6); each field is int64 (batch, *shape), the number of steps at which:

    v: the clip of §3.3 changed v (v saturated); u: the wrap of §3.2 changed u (u wrapped);
    a: the synaptic input delivered left +-(2**15 - 1), the range in which Lava's model is exact (§8).
    """

    v: np.ndarray
    u: np.ndarray
    a: np.ndarray

    def totals(self) -> dict[str, int]:
        """Neuron-steps and distinct neurons (over the batch) per event: ``{"v_steps", "v_neurons", ...}``."""
        result = {}
        for name, counts in zip(self._fields, self):
            result[f"{name}_steps"] = int(counts.sum())
            result[f"{name}_neurons"] = int(np.count_nonzero(counts))
        return result


class SimulationResult(NamedTuple):
    """What a fixed-point backend returns for inputs of T steps (docs/fixed-point.md §5.4 - §5.6).

    spikes: per layer, (T, batch, *shape) int8 0/1 (all zero for a non-spiking layer).
    output: (T, batch, *output_shape) int64: the last layer's spikes, or its v if it does not spike.
    u, v:   per layer, (T, batch, *shape) int64 after reset, when recorded; empty tuples otherwise.
    saturation: per layer, a :class:`LayerSaturation` (§5.6); an empty tuple from a backend that cannot
    count (Lava's built-in processes).
    """

    spikes: tuple[np.ndarray, ...]
    output: np.ndarray
    u: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    saturation: tuple[LayerSaturation, ...] = ()


def _fail(layer: str, parameter: str, message: str) -> ValueError:
    return ValueError(f"layer {layer!r}: {parameter} {message}")


def _int_scalar(layer: str, parameter: str, value: Any, low: int, high: int, hint: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise _fail(layer, parameter, f"must be an integer, got {value!r} ({type(value).__name__}); {hint}")
    if not low <= int(value) <= high:
        raise _fail(layer, parameter, f"= {int(value)} is outside [{low}, {high}]; {hint}")
    return int(value)


def _int_array(layer: str, parameter: str, value: Any, low: int, high: int, hint: str) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise _fail(layer, parameter, f"must hold integers, got dtype {array.dtype}; {hint}")
    if array.size and (array.min() < low or array.max() > high):
        raise _fail(layer, parameter, f"has values in [{array.min()}, {array.max()}], outside [{low}, {high}]; "
                    f"{hint}")
    result = array.astype(np.int64, copy=True)
    result.flags.writeable = False
    return result


def _shape(owner: str, parameter: str, value: Any, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise _fail(owner, parameter, f"must be a tuple of integers, got {value!r}") from None
    if any(int(a) != a for a in value) or any(v < minimum for v in shape) or (length and len(shape) != length):
        size = f"{length} " if length else ""
        raise _fail(owner, parameter, f"must be a tuple of {size}integers >= {minimum}, got {value!r}")
    return shape


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
            raise _fail(name, "kind", f"must be one of {CONNECTION_KINDS}, got {self.kind!r}")
        for flag in ("binary", "spiking", "recurrent_binary"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise _fail(name, flag, f"must be a bool, got {getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
        if self.reset not in RESET_MODES:
            raise _fail(name, "reset", f"must be one of {RESET_MODES}, got {self.reset!r}")
        if self.shift_rounding not in SHIFT_ROUNDINGS:
            raise _fail(name, "shift_rounding", f"must be one of {SHIFT_ROUNDINGS}, got {self.shift_rounding!r}")
        object.__setattr__(self, "input_shape", _shape(name, "input_shape", self.input_shape))
        object.__setattr__(self, "stride", _shape(name, "stride", self.stride, 2))
        object.__setattr__(self, "padding", _shape(name, "padding", self.padding, 2, minimum=0))
        object.__setattr__(self, "pool", _shape(name, "pool", self.pool, 2))
        if self.kind == "dense" and (self.stride != (1, 1) or self.padding != (0, 0)):
            raise _fail(name, "stride/padding", "apply to conv layers only; leave them (1, 1) / (0, 0)")
        pooled = self._pooled_shape()
        object.__setattr__(self, "weight", self._checked_weight(spec, pooled))
        hint = "rescale in the compiler"
        if self.binary:
            mant = _int_scalar(name, "weight_mant", self.weight_mant, 1, spec.weight_mant_max,
                               "choose a larger weight_exp so the magnitude fits")
        else:
            mant = _int_scalar(name, "weight_mant", self.weight_mant, 1, 1,
                               "full-precision layers carry the magnitude in weight (docs/fixed-point.md §4.5)")
        object.__setattr__(self, "weight_mant", mant)
        object.__setattr__(self, "weight_exp", _int_scalar(name, "weight_exp", self.weight_exp, spec.weight_exp_min,
                                                           spec.weight_exp_max, hint))
        for decay in ("du", "dv"):
            object.__setattr__(self, decay, _int_scalar(name, decay, getattr(self, decay), 0, spec.decay_max,
                                                        "decays are 12-bit registers (docs/fixed-point.md §3.1)"))
        object.__setattr__(self, "bias_delay", _int_scalar(
            name, "bias_delay", self.bias_delay, 0, _MAX_STEP,
            "it is the first step (0-based) at which the bias is added (docs/fixed-point.md §3.4)"))
        ranges = {"vth": (0, spec.vth_max), "bias_mant": (spec.bias_mant_min, spec.bias_mant_max),
                  "bias_exp": (spec.bias_exp_min, spec.bias_exp_max)}
        out_shape = self.output_shape
        for parameter, (low, high) in ranges.items():
            array = _int_array(name, parameter, getattr(self, parameter), low, high,
                               "move the excess into the exponent or the weight scale")
            try:
                array = np.broadcast_to(array, out_shape).copy()
            except ValueError:
                raise _fail(name, parameter, f"has shape {array.shape}; give a scalar or the layer's output "
                            f"shape {out_shape}") from None
            array.flags.writeable = False
            object.__setattr__(self, parameter, array)
        self._check_recurrent(spec)

    def _check_recurrent(self, spec: FixedPointSpec) -> None:
        """The recurrent synapse's fields (docs/fixed-point.md §4.9)."""
        name, binary = self.name, self.recurrent_binary
        if self.recurrent_weight is None:
            if binary or self.recurrent_weight_mant != 1 or self.recurrent_weight_exp != 0:
                raise _fail(name, "recurrent_binary/recurrent_weight_mant/recurrent_weight_exp", "need a "
                            "recurrent_weight; leave them False / 1 / 0 for a layer without a recurrent synapse")
            return
        if self.kind != "dense":
            raise _fail(name, "recurrent_weight", f"is for dense layers only, not {self.kind!r} (docs/fixed-point.md "
                        "§4.9)")
        if not self.spiking:
            raise _fail(name, "recurrent_weight", "needs a spiking layer: a readout never fires, so its recurrent "
                        "synapse would carry nothing (§3.7, §4.9); drop it")
        if binary:
            low, high, hint = -1, 1, "binary recurrent weights are the signs -1/+1 (docs/fixed-point.md §4.6)"
        else:
            low, high = spec.weight_min, spec.weight_max
            hint = "quantize to 8-bit Lava Dense weights (docs/fixed-point.md §4.5)"
        weight = _int_array(name, "recurrent_weight", self.recurrent_weight, low, high, hint)
        if binary and weight.size and not np.all(np.abs(weight) == 1):
            raise _fail(name, "recurrent_weight", f"of a recurrent_binary layer must be -1/+1 only; {hint}")
        n = self.num_neurons
        if weight.shape != (n, n):
            raise _fail(name, "recurrent_weight", f"has shape {weight.shape}; the layer's {n} neurons need ({n}, {n}) "
                        "(row: receiving neuron, column: sending neuron)")
        object.__setattr__(self, "recurrent_weight", weight)
        if binary:
            mant = _int_scalar(name, "recurrent_weight_mant", self.recurrent_weight_mant, 1, spec.weight_mant_max,
                               "choose a larger recurrent_weight_exp so the magnitude fits")
        else:
            mant = _int_scalar(name, "recurrent_weight_mant", self.recurrent_weight_mant, 1, 1,
                               "full-precision recurrent weights carry the magnitude (docs/fixed-point.md §4.5)")
        object.__setattr__(self, "recurrent_weight_mant", mant)
        object.__setattr__(self, "recurrent_weight_exp", _int_scalar(
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
            raise _fail(self.name, "pool", f"needs a (C, H, W) input, got input_shape {self.input_shape}")
        channels, height, width = self.input_shape
        if height % self.pool[0] or width % self.pool[1]:
            raise _fail(self.name, "pool", f"{self.pool} does not divide the input's (H, W) = {(height, width)}")
        return channels, height // self.pool[0], width // self.pool[1]

    def _checked_weight(self, spec: FixedPointSpec, pooled: tuple[int, ...]) -> np.ndarray:
        if self.binary:
            low, high, hint = -1, 1, "binary weights are the signs -1/+1 (docs/fixed-point.md §4.6)"
        else:
            low, high = spec.weight_min, spec.weight_max
            hint = "quantize to 8-bit Lava Dense weights (docs/fixed-point.md §4.5)"
        weight = _int_array(self.name, "weight", self.weight, low, high, hint)
        if self.binary and weight.size and not np.all(np.abs(weight) == 1):
            raise _fail(self.name, "weight", f"of a binary layer must be -1/+1 only; {hint}")
        if self.kind == "dense":
            expected = (None, math.prod(pooled))
            if weight.ndim != 2 or weight.shape[1] != expected[1] or weight.shape[0] < 1:
                raise _fail(self.name, "weight", f"has shape {weight.shape}; a dense layer on input {pooled} "
                            f"needs (n_out, {expected[1]})")
            return weight
        if len(pooled) != 3 or weight.ndim != 4 or weight.shape[1] != pooled[0] or weight.shape[0] < 1:
            raise _fail(self.name, "weight", f"has shape {weight.shape}; a conv layer on input {pooled} needs "
                        f"(C_out, {pooled[0] if len(pooled) == 3 else 'C_in'}, kh, kw) and a (C, H, W) input")
        for axis in (0, 1):
            if pooled[1 + axis] + 2 * self.padding[axis] < weight.shape[2 + axis]:
                raise _fail(self.name, "weight", f"kernel {weight.shape[2:]} is larger than the padded input "
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


@dataclass(frozen=True, eq=False)
class FixedPointNetwork:
    """A chain of layers under one profile (docs/fixed-point.md §5, §6).

    quantization: one JSON-serialisable dict per layer (scale chosen, max abs error, ...) filled by the
    compiler, or empty.
    input_scale: float inputs x become ``clip(round(input_scale x), 0, input_max)`` (docs/fixed-point.md
    §10.1; ``quantize_inputs``); None for a network that takes integer inputs only (then input_max is the
    hardware's 255). input_max: the largest integer input, at most 255 (§5.3). Files written before these
    fields existed take them from ``quantization[0]``, where the compiler then stored them.
    """

    profile: str
    input_shape: tuple[int, ...]
    layers: tuple[FixedPointLayer, ...]
    quantization: tuple[dict[str, Any], ...] = field(default=())
    input_scale: float | None = None
    input_max: int | None = None

    def __post_init__(self) -> None:
        profile = get_profile(self.profile)
        object.__setattr__(self, "input_shape", _shape("<network>", "input_shape", self.input_shape))
        layers = tuple(self.layers)
        if not layers or not all(isinstance(layer, FixedPointLayer) for layer in layers):
            raise ValueError("a FixedPointNetwork needs a non-empty sequence of FixedPointLayer")
        object.__setattr__(self, "layers", layers)
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise ValueError(f"layer names must be unique, got {names}")
        expected = self.input_shape
        for index, layer in enumerate(layers):
            if layer.input_shape != expected:
                source = "the network input" if index == 0 else f"layer {layers[index - 1].name!r}'s output"
                raise _fail(layer.name, "input_shape", f"= {layer.input_shape} differs from {source} {expected}")
            if not layer.spiking and index != len(layers) - 1:
                raise _fail(layer.name, "spiking", "= False is allowed for the last (readout) layer only "
                            "(docs/fixed-point.md §3.7)")
            _check_profile(profile, layer)
            expected = layer.output_shape
        quantization = tuple(self.quantization)
        if quantization and len(quantization) != len(layers):
            raise ValueError(f"quantization has {len(quantization)} entries for {len(layers)} layers; "
                             "give one dict per layer or none")
        try:
            quantization = tuple(json.loads(json.dumps(dict(item), allow_nan=False)) for item in quantization)
        except (TypeError, ValueError) as error:
            raise ValueError(f"quantization entries must be JSON-serialisable dicts (convert numpy scalars "
                             f"with float()/int()): {error}") from None
        object.__setattr__(self, "quantization", quantization)
        self._check_input_range()

    def _check_input_range(self) -> None:
        scale, input_max = self.input_scale, self.input_max
        first = self.quantization[0] if self.quantization else {}
        if scale is None and "input_scale" in first:  # written before the fields existed (§9)
            scale = first["input_scale"]
            input_max = first.get("input_max", input_max)
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)) or \
                    not math.isfinite(float(scale)) or float(scale) <= 0:
                raise ValueError(f"input_scale must be a finite number > 0 or None, got {scale!r}")
            scale = float(scale)
        input_max = SPEC.input_max if input_max is None else _int_scalar(
            "<network>", "input_max", input_max, 1, SPEC.input_max, "the network input is 8-bit unsigned (§5.3)")
        object.__setattr__(self, "input_scale", scale)
        object.__setattr__(self, "input_max", input_max)

    @property
    def latency(self) -> int:
        """Steps from an input to the last layer's neurons: one per layer (docs/fixed-point.md §5.2)."""
        return len(self.layers)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].output_shape

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "profile": self.profile, "input_shape": list(self.input_shape),
                "layers": [layer.to_dict() for layer in self.layers],
                "quantization": [dict(item) for item in self.quantization],
                "input_scale": self.input_scale, "input_max": self.input_max}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FixedPointNetwork:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported FixedPointNetwork format_version {version!r}; this code reads "
                             f"version {FORMAT_VERSION} (docs/fixed-point.md §9)")
        missing = {"profile", "input_shape", "layers"} - set(data)
        if missing:
            raise ValueError(f"FixedPointNetwork data lacks {sorted(missing)}")
        return cls(profile=data["profile"], input_shape=tuple(data["input_shape"]),
                   layers=tuple(FixedPointLayer.from_dict(dict(layer)) for layer in data["layers"]),
                   quantization=tuple(data.get("quantization", ())), input_scale=data.get("input_scale"),
                   input_max=data.get("input_max"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write one .npz atomically (docs/fixed-point.md §9); returns the path."""
        data = self.to_dict()
        arrays: dict[str, np.ndarray] = {}
        for index, layer in enumerate(data["layers"]):
            for name in _ARRAY_FIELDS:
                arrays[f"layers/{index}/{name}"] = layer.pop(name)
            recurrent = layer.pop("recurrent_weight")  # an array key only where there is one (§9)
            if recurrent is not None:
                arrays[f"layers/{index}/recurrent_weight"] = recurrent
        arrays["meta"] = np.array(json.dumps(data, allow_nan=False))
        return atomic_write(path, lambda file: np.savez(file, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FixedPointNetwork:
        with np.load(path, allow_pickle=False) as archive:
            if "meta" not in archive.files:
                raise ValueError(f"{os.fspath(path)} is not a saved FixedPointNetwork (no 'meta' entry)")
            data = json.loads(str(archive["meta"]))
            for index, layer in enumerate(data.get("layers", [])):
                for name in _ARRAY_FIELDS:
                    layer[name] = archive[f"layers/{index}/{name}"]
                key = f"layers/{index}/recurrent_weight"
                layer["recurrent_weight"] = archive[key] if key in archive.files else None  # absent: None (§9)
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FixedPointNetwork):
            return NotImplemented
        return (self.profile, self.input_shape, self.layers, self.quantization, self.input_scale,
                self.input_max) == (other.profile, other.input_shape, other.layers, other.quantization,
                                    other.input_scale, other.input_max)

    __hash__ = None  # type: ignore[assignment]


def _check_profile(profile: Profile, layer: FixedPointLayer) -> None:
    """Restrictions of a profile (docs/fixed-point.md §6)."""
    other = "use profile 'bso'"
    if layer.kind not in profile.connection_kinds:
        raise _fail(layer.name, "kind", f"{layer.kind!r} is not in profile {profile.name!r} "
                    f"(allowed: {profile.connection_kinds}); {other}")
    if layer.reset not in profile.reset_modes:
        raise _fail(layer.name, "reset", f"{layer.reset!r} is not in profile {profile.name!r} "
                    f"(allowed: {profile.reset_modes}); {other}")
    if not profile.pooling and layer.pool != (1, 1):
        raise _fail(layer.name, "pool", f"{layer.pool}: profile {profile.name!r} has no pooling; {other}")
    if not profile.per_neuron_threshold and layer.vth.size and np.ptp(layer.vth) != 0:
        raise _fail(layer.name, "vth", f"must be one value per layer in profile {profile.name!r} (Lava's LIF "
                    f"shares vth), got values in [{layer.vth.min()}, {layer.vth.max()}]; {other}")
    if layer.shift_rounding not in profile.shift_roundings:
        raise _fail(layer.name, "shift_rounding", f"{layer.shift_rounding!r} is not in profile {profile.name!r} "
                    f"(allowed: {profile.shift_roundings}; Lava's Dense floors, docs/fixed-point.md §4.7); {other}")
    if not profile.delayed_bias and layer.bias_delay and layer.bias_mant.any():
        raise _fail(layer.name, "bias_delay", f"= {layer.bias_delay} with a nonzero bias is not in profile "
                    f"{profile.name!r} (Lava's LIF adds its bias from the first step, docs/fixed-point.md §3.4); "
                    f"set it to 0 or {other}")


def append_zero_steps(inputs: np.ndarray, steps: int) -> np.ndarray:
    """``inputs`` (T, batch, ...) followed by ``steps`` all-zero steps, to flush the synaptic delays
    (pass ``fx_net.latency``; docs/fixed-point.md §5.2)."""
    inputs = np.asarray(inputs)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if inputs.ndim < 2:
        raise ValueError(f"inputs must have shape (T, batch, ...), got {inputs.shape}")
    return np.concatenate([inputs, np.zeros((int(steps), *inputs.shape[1:]), dtype=inputs.dtype)])
