"""Integer network description: what the compiler produces and every fixed-point backend runs.

A :class:`FixedPointNetwork` is a chain of :class:`~.layer.FixedPointLayer`\\ s under one profile, saved as
one .npz (docs/fixed-point.md §9). The semantics of each field are in docs/fixed-point.md (cited by section
below); this module only holds and validates the numbers. The layer is in ``hardware/layer.py``, what a
backend returns (:class:`SimulationResult`, :class:`LayerSaturation`) in ``hardware/simulation_result.py``;
both are importable from here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bso_deploy.errors import InvalidFileError
from bso_deploy.io import atomic_write

from .checks import field_error, int_scalar, int_shape
from .layer import FixedPointLayer
from .network_file import read_network_file
from .simulation_result import LayerSaturation, SimulationResult
from .spec import SPEC, Profile, get_profile

__all__ = ["FORMAT_VERSION", "FixedPointLayer", "FixedPointNetwork", "LayerSaturation", "SimulationResult",
           "append_zero_steps"]

FORMAT_VERSION = 1  # docs/fixed-point.md §9
_ARRAY_FIELDS = ("weight", "vth", "bias_mant", "bias_exp")


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
        object.__setattr__(self, "input_shape", int_shape("<network>", "input_shape", self.input_shape))
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
                raise field_error(layer.name, "input_shape", f"= {layer.input_shape} differs from {source} {expected}")
            if not layer.spiking and index != len(layers) - 1:
                raise field_error(layer.name, "spiking", "= False is allowed for the last (readout) layer only "
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
        input_max = SPEC.input_max if input_max is None else int_scalar(
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
        """Read a network saved by :meth:`save`. The file is untrusted: its structure, dtypes and declared sizes
        are checked before reading (:func:`.network_file.read_network_file`), its values by the constructors;
        every failure is an :class:`~bso_deploy.errors.InvalidFileError` naming the file (MissingFileError for
        a missing one)."""
        data = read_network_file(path)
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as error:
            if isinstance(error, InvalidFileError):
                raise
            raise InvalidFileError(f"{os.fspath(path)} is not a saved FixedPointNetwork: {error}") from None

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
        raise field_error(layer.name, "kind", f"{layer.kind!r} is not in profile {profile.name!r} "
                          f"(allowed: {profile.connection_kinds}); {other}")
    if layer.reset not in profile.reset_modes:
        raise field_error(layer.name, "reset", f"{layer.reset!r} is not in profile {profile.name!r} "
                          f"(allowed: {profile.reset_modes}); {other}")
    if not profile.pooling and layer.pool != (1, 1):
        raise field_error(layer.name, "pool", f"{layer.pool}: profile {profile.name!r} has no pooling; {other}")
    if not profile.per_neuron_threshold and layer.vth.size and np.ptp(layer.vth) != 0:
        raise field_error(layer.name, "vth", f"must be one value per layer in profile {profile.name!r} (Lava's LIF "
                          f"shares vth), got values in [{layer.vth.min()}, {layer.vth.max()}]; {other}")
    if layer.shift_rounding not in profile.shift_roundings:
        raise field_error(layer.name, "shift_rounding", f"{layer.shift_rounding!r} is not in profile "
                          f"{profile.name!r} (allowed: {profile.shift_roundings}; Lava's Dense floors, "
                          f"docs/fixed-point.md §4.7); {other}")
    if not profile.delayed_bias and layer.bias_delay and layer.bias_mant.any():
        raise field_error(layer.name, "bias_delay", f"= {layer.bias_delay} with a nonzero bias is not in "
                          f"profile {profile.name!r} (Lava's LIF adds its bias from the first step, "
                          f"docs/fixed-point.md §3.4); set it to 0 or {other}")


def append_zero_steps(inputs: np.ndarray, steps: int) -> np.ndarray:
    """``inputs`` (T, batch, ...) followed by ``steps`` all-zero steps, to flush the synaptic delays
    (pass ``fx_net.latency``; docs/fixed-point.md §5.2)."""
    inputs = np.asarray(inputs)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if inputs.ndim < 2:
        raise ValueError(f"inputs must have shape (T, batch, ...), got {inputs.shape}")
    return np.concatenate([inputs, np.zeros((int(steps), *inputs.shape[1:]), dtype=inputs.dtype)])
