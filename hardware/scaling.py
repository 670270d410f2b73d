"""How the compiler chooses each layer's scale: from the worst case or from calibration data.

"worst-case" (docs/fixed-point.md §10.3) picks every scale so that no register can overflow on any input in
the input range over T steps; "calibrated" (§10.6) bounds u and v by a margin times the largest values the
float layers reach on calibration inputs (:mod:`.calibration` observes them), so precision is not spent on
states that never occur. This module turns the caller's choice and data into each layer's
:class:`~.quantize.LayerOptions`; :func:`~.quantize.quantize_layer` does the arithmetic.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from bso_deploy.options import SCALINGS  # docs/fixed-point.md §10.3 (worst-case), §10.6 (calibrated)

from .quantize import DEFAULT_INPUT_SCALE, LayerOptions
from .spec import SPEC

if TYPE_CHECKING:  # annotation only: calibration runs the float layers in torch
    from .calibration import LayerActivity

__all__ = ["DEFAULT_TIME_STEPS", "SCALINGS", "calibrated_input_scale", "calibration_samples", "layer_options",
           "resolve_scaling"]

DEFAULT_TIME_STEPS = 32  # readout saturation bound when neither the caller nor the graph says T (§10.3)


def resolve_scaling(scaling: str | None, calibration: Any) -> str:
    """``scaling``, or by default "calibrated" when calibration inputs are given, else "worst-case";
    ValueError for an unknown mode or "calibrated" without data."""
    if scaling is None:
        scaling = "worst-case" if calibration is None else "calibrated"
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    if scaling == "calibrated" and calibration is None:
        raise ValueError("scaling='calibrated' needs calibration inputs (calibration=..., on the command line "
                         "--calibrate-on digits|X.npy); or use scaling='worst-case'")
    return scaling


def calibration_samples(calibration: Any, shape: tuple[int, ...], time_steps: int | None) -> np.ndarray:
    """Calibration samples as (T, batch, *shape) float64: given so, or (batch, *shape) repeated time_steps
    (default 32) times; ValueError naming what is wrong otherwise."""
    x = np.asarray(calibration)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"calibration inputs must be real numbers, got dtype {x.dtype}")
    if x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == shape:
        x = np.broadcast_to(x, (time_steps or DEFAULT_TIME_STEPS, *x.shape))
    elif x.ndim != len(shape) + 2 or tuple(x.shape[2:]) != shape:
        raise ValueError(f"calibration inputs have shape {x.shape}; the graph's Input takes (T, batch, *{shape}) "
                         f"or (batch, *{shape})")
    return np.asarray(x, dtype=np.float64)


def calibrated_input_scale(x: np.ndarray, input_scale: float | None) -> tuple[float, float]:
    """(input_scale, input_range) from calibration inputs (§10.6): integer-valued inputs (event counts,
    grey levels) keep their integers, scale 1; others map their largest value to 255. A given
    ``input_scale`` is kept; the range is then the inputs' largest value."""
    peak = float(x.max())
    if input_scale is not None:
        return float(input_scale), peak
    if peak <= 0:
        return DEFAULT_INPUT_SCALE, 1.0
    if np.all(x == np.round(x)) and peak <= SPEC.input_max:
        return 1.0, peak
    return SPEC.input_max / peak, peak


def layer_options(base: LayerOptions, index: int, activity: LayerActivity | None, scaling: str) -> LayerOptions:
    """The options of layer ``index``: ``base`` (layer 0's), for later layers with spike inputs (input_max 1)
    that first arrive at step index + 1 (§4.8); with calibration data the neurons' drive rates (for §10.6's
    floor compensation) and, when ``scaling`` is "calibrated", the peaks of u and v that bound the scale."""
    options = base if index == 0 else replace(base, input_max=1, first=False, first_input_step=index + 1)
    if activity is None:
        return options
    options = replace(options, drive_rate=activity.drive_rate)
    if scaling == "calibrated":
        options = replace(options, current_peak=activity.current_peak, voltage_peak=activity.voltage_peak)
    return options
