"""Checks of the integer fields of the network format (``hardware/layer.py``, ``hardware/network.py``): each
returns the normalised value or raises a ValueError naming the layer, the parameter and what would fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["field_error", "int_array", "int_scalar", "int_shape"]


def field_error(layer: str, parameter: str, message: str) -> ValueError:
    """``layer {layer!r}: {parameter} {message}``."""
    return ValueError(f"layer {layer!r}: {parameter} {message}")


def int_scalar(layer: str, parameter: str, value: Any, low: int, high: int, hint: str) -> int:
    """``value`` as a Python int in [low, high] (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise field_error(layer, parameter, f"must be an integer, got {value!r} ({type(value).__name__}); {hint}")
    if not low <= int(value) <= high:
        raise field_error(layer, parameter, f"= {int(value)} is outside [{low}, {high}]; {hint}")
    return int(value)


def int_array(layer: str, parameter: str, value: Any, low: int, high: int, hint: str) -> np.ndarray:
    """``value`` as a read-only int64 copy whose elements lie in [low, high]."""
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise field_error(layer, parameter, f"must hold integers, got dtype {array.dtype}; {hint}")
    if array.size and (array.min() < low or array.max() > high):
        raise field_error(layer, parameter, f"has values in [{array.min()}, {array.max()}], outside [{low}, "
                          f"{high}]; {hint}")
    result = array.astype(np.int64, copy=True)
    result.flags.writeable = False
    return result


def int_shape(owner: str, parameter: str, value: Any, length: int | None = None,
              minimum: int = 1) -> tuple[int, ...]:
    """``value`` as a tuple of ints >= ``minimum`` (of ``length`` entries when given)."""
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise field_error(owner, parameter, f"must be a tuple of integers, got {value!r}") from None
    if any(int(a) != a for a in value) or any(v < minimum for v in shape) or (length and len(shape) != length):
        size = f"{length} " if length else ""
        raise field_error(owner, parameter, f"must be a tuple of {size}integers >= {minimum}, got {value!r}")
    return shape
