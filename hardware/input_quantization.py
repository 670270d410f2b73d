"""The caller's side of the input scale (docs/fixed-point.md §10.1): float inputs -> the network's unsigned
integer inputs (§5.3), and how many of them saturate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError, RangeError
from ..limits import check_memory
from .input_checks import as_array
from .network import FixedPointNetwork
from .rounding import round_half_away
from .spec import SPEC, FixedPointSpec

__all__ = ["DEFAULT_INPUT_SCALE", "clipped_inputs", "input_max_for_scale", "quantize_inputs"]

QUANTIZE_COPIES = 4  # arrays of the inputs' size that quantize_inputs holds at its peak (float64 / int64)
DEFAULT_INPUT_SCALE = float(SPEC.input_max)  # inputs in [0, 1] -> 0 ... 255 (docs/fixed-point.md §5.3)


def input_max_for_scale(input_scale: float, spec: FixedPointSpec = SPEC, input_range: float = 1.0) -> int:
    """Largest integer input for float inputs in [0, input_range]: round(input_scale * input_range), at least 1
    and at most 255 (docs/fixed-point.md §10.1)."""
    return int(min(spec.input_max, max(1, int(round_half_away(input_scale * input_range)))))


def _real_inputs(x_float: Any) -> np.ndarray:
    x = as_array(x_float, "inputs")
    if x.dtype.kind not in "biuf":
        raise InvalidInputError(f"inputs must be real numbers, got dtype {x.dtype}")
    # the float64 copy, the scaled and the rounded values and the int64 result are alive at once
    check_memory(QUANTIZE_COPIES * x.size * np.dtype(np.float64).itemsize, f"quantizing inputs of shape {x.shape}")
    x = x.astype(np.float64)
    if x.size and not np.all(np.isfinite(x)):
        raise InvalidInputError(f"inputs hold {int(x.size - np.isfinite(x).sum())} NaN/Inf value(s)")
    if x.size and x.min() < 0:
        raise RangeError(f"inputs must be >= 0 (the fixed-point input is unsigned, docs/fixed-point.md §5.3), "
                         f"got a minimum of {x.min()}")
    return x


def quantize_inputs(fx_net: FixedPointNetwork, x_float: Any) -> np.ndarray:
    """Float inputs (any shape) -> int64 ``clip(round(x * input_scale), 0, input_max)`` with the network's
    ``input_scale`` and ``input_max`` (docs/fixed-point.md §10.1). Larger values saturate (count them with
    :func:`clipped_inputs`); negative or non-finite values are a ValueError, since the hardware input is
    unsigned (§5.3). A network without an input scale (``input_scale`` None, e.g. imported from netx) takes
    integers in [0, input_max] as they are."""
    x = _real_inputs(x_float)
    if fx_net.input_scale is None:
        if x.size and (np.any(x != np.round(x)) or x.max() > fx_net.input_max):
            raise RangeError(f"this network takes integer inputs in [0, {fx_net.input_max}] (it has no input "
                             f"scale); got values in [{x.min()}, {x.max()}], not all integers or too large")
        return x.astype(np.int64)
    return np.clip(round_half_away(x * fx_net.input_scale), 0, fx_net.input_max)


def clipped_inputs(fx_net: FixedPointNetwork, x_float: Any) -> int:
    """How many values of ``x_float`` :func:`quantize_inputs` saturates at ``input_max`` (§10.1)."""
    x = _real_inputs(x_float)
    if fx_net.input_scale is None:
        return int(np.count_nonzero(x > fx_net.input_max))
    return int(np.count_nonzero(round_half_away(x * fx_net.input_scale) > fx_net.input_max))
