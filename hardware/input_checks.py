"""Values that users hand to a network, checked once at the boundary: float inputs
(:func:`check_input_values`, in the network's input range, :func:`network_input_range`) and labels
(:func:`check_labels`). NumPy only, so that the fixed-point core, the hardware layer and the command line share it.

Float inputs are finite and within the network's input range [0, R] (R = 1 for images scaled to [0, 1], else
``input_max / input_scale`` of the compiled network, or ``--input-range``). The float backend takes [0, R]
exactly. The fixed-point backends saturate values above R at the largest integer input and count them (a
warning, docs/fixed-point.md §10.1), but refuse data whose largest value is over :data:`SCALE_MISMATCH_FACTOR`
times R: such data are on another scale (scikit-learn's digits are 0..16, 8-bit pixels 0..255) and would reach
the network as saturated noise. Labels are integers, one per sample, in [0, classes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InvalidInputError, RangeError
from .network import FixedPointNetwork

__all__ = ["DEFAULT_INPUT_RANGE", "REAL_KINDS", "SCALE_MISMATCH_FACTOR", "as_array", "check_input_values",
           "check_labels", "network_classes", "network_input_range"]

REAL_KINDS = "biuf"  # numpy dtype kinds of real numbers: bool, signed, unsigned, float
SCALE_MISMATCH_FACTOR = 4.0
DEFAULT_INPUT_RANGE = 1.0  # images scaled to [0, 1]


def as_array(value: Any, what: str) -> np.ndarray:
    """``numpy.asarray(value)``; a ragged or otherwise unconvertible value is an InvalidInputError naming ``what``."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nested lists, objects numpy cannot stack
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise InvalidInputError(f"{what} are not an array of numbers: {reason}") from error


def network_input_range(fx_net: FixedPointNetwork) -> float:
    """R of float inputs in [0, R]: ``input_max / input_scale`` (docs/fixed-point.md §10.1); for a network
    without an input scale (integer inputs), ``input_max``."""
    if fx_net.input_scale is None:
        return float(fx_net.input_max)
    return float(fx_net.input_max) / float(fx_net.input_scale)


def network_classes(fx_net: FixedPointNetwork) -> int:
    """Output classes: the neurons of the last layer (predictions are the argmax over them)."""
    return math.prod(fx_net.layers[-1].output_shape)


def check_input_values(x: Any, what: str, input_range: float | None, exact: bool) -> np.ndarray:
    """``x`` as a float64 array after checking that it holds finite real numbers in [0, ``input_range``]:
    exactly so with ``exact`` (the float backend), else up to :data:`SCALE_MISMATCH_FACTOR` times the range
    (above it the fixed-point input saturates and the values are counted); ``input_range`` None: >= 0 only
    (calibration data, which set the range). InvalidInputError, or RangeError naming the range."""
    x = as_array(x, what)
    valid = "[0, inf)" if input_range is None else f"[0, {input_range:g}]"
    if x.dtype.kind not in REAL_KINDS:
        raise InvalidInputError(f"{what} hold dtype {x.dtype}; give real numbers (float inputs in {valid})")
    x = x.astype(np.float64, copy=False)
    if x.size == 0:
        raise InvalidInputError(f"{what} of shape {x.shape} hold no values")
    finite = np.isfinite(x)
    if not finite.all():
        raise InvalidInputError(f"{what} hold {int(x.size - finite.sum())} NaN/Inf value(s); give finite values "
                                f"in {valid}")
    low, high = float(x.min()), float(x.max())
    limit = math.inf if input_range is None else input_range * (1.0 if exact else SCALE_MISMATCH_FACTOR)
    if low < 0 or high > limit:
        scale = " (digits-scale 0..16 or 8-bit 0..255 data: divide them by 16 or 255)" if high > limit else ""
        raise RangeError(f"{what} lie in [{low:g}, {high:g}], outside the network's input range {valid}{scale}; "
                         "rescale them, or give --input-range for data on another scale")
    return x


def check_labels(labels: Any, name: str, count: int, classes: int | None) -> np.ndarray:
    """Labels (count,) int64 in [0, classes) (any class index >= 0 when ``classes`` is None); ``name`` names
    them in errors (a file, or "given" for the API)."""
    labels = as_array(labels, f"labels {name}")
    if labels.dtype.kind not in "iu":
        raise InvalidInputError(f"labels {name} have dtype {labels.dtype}; save integer class indices "
                                f"(numpy.save(path, labels.astype(numpy.int64)))")
    if labels.shape != (count,):
        raise InvalidInputError(f"labels {name} have shape {labels.shape} for {count} input samples; give one "
                                f"integer label per sample, shape ({count},)")
    if labels.size and (labels.min() < 0 or (classes is not None and labels.max() >= classes)):
        valid = ">= 0" if classes is None else f"in [0, {classes - 1}] (the network has {classes} output classes)"
        raise RangeError(f"labels {name} lie in [{labels.min()}, {labels.max()}]; class indices must be {valid}")
    return labels.astype(np.int64)
