"""Metadata keys that bso-deploy writes into NIR graphs and reads back, and HDF5-safe value checks.

nir 1.0.8 writes metadata with h5py: numbers, bools, strings, numpy arrays and nested dicts round trip;
``None`` makes ``nir.write`` fail with a TypeError; a list of strings comes back as a numpy object array
of ``bytes``, a number as a numpy scalar and a bool as ``numpy.bool_``. The readers below undo that.
The key meanings are documented in docs/nir.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bso_deploy.errors import InvalidInputError

DEFAULT_DT = 1e-3  # seconds per time step that exported graphs record unless told otherwise


class NIRExportWarning(UserWarning):
    """The exported graph relies on metadata for behaviour that NIR itself cannot express."""


# graph and node keys
DT = "dt"  # seconds per time step the graph was exported for (graph and every neuron node)
RESET = "reset"  # "subtract" | "zero" (neuron nodes; graph: the mode shared by all, the default)
RESET_MODES = ("subtract", "zero")
# graph keys
TOOLKIT = "toolkit"
TOOLKIT_VERSION = "toolkit_version"
TRAINING_METHOD = "training_method"
READOUT = "readout"
READOUT_CURRENT = "current"  # the Output carries the classifier current per step; class = argmax of its sum
# synapse node keys
BINARY = "binary"  # bool: weight is exactly signs * alpha (per output unit)
ALPHA = "alpha"  # per output unit scale of a binary layer, > 0 unless a BatchNorm gamma was 0
SIGNS = "signs"  # int8 +-1, shape of the weight
FOLDED_BATCHNORM = "folded_batchnorm"  # bool: a BatchNorm (eval statistics) is folded into weight and bias
SOURCE_LAYER = "source_layer"  # "layers.<index>" of the PyTorch module the node came from
# neuron node keys
TAU_STEPS = "tau_steps"  # the trained time constant in time steps (lambda = 1 - 1/tau_steps)
SURROGATE = "surrogate"
SURROGATE_ALPHA = "surrogate_alpha"


def check_serialisable(metadata: Mapping[str, Any], where: str) -> None:
    """Raise ValueError naming the key when a value cannot be written by ``nir.write`` (or is NaN/Inf)."""
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"{where}: metadata keys must be non-empty strings, got {key!r}")
        if isinstance(value, Mapping):
            check_serialisable(value, f"{where}.{key}")
        elif isinstance(value, (str, bool, np.bool_)):
            continue
        elif isinstance(value, (int, float, np.integer, np.floating)):
            if not math.isfinite(float(value)):
                raise InvalidInputError(f"{where}: metadata {key!r} is {value}; only finite numbers can be stored")
        elif isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise InvalidInputError(f"{where}: metadata {key!r} holds NaN or Inf")
        elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
            continue
        else:
            raise InvalidInputError(f"{where}: metadata {key!r} has type {type(value).__name__}, which nir.write "
                                    "cannot store; use a number, bool, string, list of strings, numeric array or dict")


def metadata_text(value: Any) -> str:
    """A string stored in metadata (nir.read may return bytes or numpy strings)."""
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return metadata_text(value[()])
    return str(value)


def metadata_float(value: Any, where: str) -> float:
    """A finite real number stored in metadata (not text, not a bool, not complex)."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.size != 1:
        raise InvalidInputError(f"{where} must be a number, got {str(value)[:80]!r}")
    number = float(array.reshape(()))
    if not math.isfinite(number):
        raise InvalidInputError(f"{where} must be finite, got {number}")
    return number


def reset_mode(metadata: Mapping[str, Any], default: str | None, where: str) -> str | None:
    """The reset mode recorded in ``metadata`` (or ``default``); ValueError for an unknown mode."""
    if RESET not in metadata:
        return default
    mode = metadata_text(metadata[RESET])
    if mode not in RESET_MODES:
        raise InvalidInputError(f"{where}: metadata reset={mode!r} is not one of {RESET_MODES}")
    return mode


def _check_value(value: Any, where: str, key: str) -> None:
    """A metadata value read from a file: a real finite number (array), a bool, or text."""
    array = np.asarray(value)
    kind = array.dtype.kind
    if kind == "c":
        raise InvalidInputError(f"{where}: metadata {key!r} holds complex numbers; metadata numbers must be real")
    if kind == "f" and not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{where}: metadata {key!r} holds NaN or Inf")
    if kind not in "biufSUO" or (kind == "O" and not all(isinstance(item, (str, bytes))
                                                          for item in array.reshape(-1))):
        raise InvalidInputError(f"{where}: metadata {key!r} has dtype {array.dtype}; metadata holds numbers, "
                                "booleans and strings")


def metadata_time_step(value: Any, where: str) -> float:
    """A time step dt recorded in metadata: a finite number > 0 seconds."""
    dt = metadata_float(value, where)
    if dt <= 0:
        raise InvalidInputError(f"{where} must be > 0 seconds, got {dt}")
    return dt


def check_metadata(metadata: Any, where: str) -> None:
    """Check node or graph metadata as read: a mapping whose values are real finite numbers, booleans or text
    (nested mappings recursively); the keys bso-deploy reads (:data:`DT`, :data:`RESET`, :data:`TAU_STEPS`,
    ``time_steps``) hold what they should. InvalidInputError naming the key otherwise."""
    if metadata is None:
        return
    if not isinstance(metadata, Mapping):
        raise InvalidInputError(f"{where}: metadata must be a group of named values, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if isinstance(value, Mapping):
            check_metadata(value, f"{where}.{key}")
        else:
            _check_value(value, where, key)
    if DT in metadata:
        metadata_time_step(metadata[DT], f"{where}: metadata 'dt'")
    if TAU_STEPS in metadata and metadata_float(metadata[TAU_STEPS], f"{where}: metadata 'tau_steps'") <= 0:
        raise InvalidInputError(f"{where}: metadata 'tau_steps' must be > 0 time steps")
    if "time_steps" in metadata:
        steps = metadata_float(metadata["time_steps"], f"{where}: metadata 'time_steps'")
        if steps != int(steps) or steps < 1:
            raise InvalidInputError(f"{where}: metadata 'time_steps' must be an integer >= 1, got {steps}")
    reset_mode(metadata, None, where)

