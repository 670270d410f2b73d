"""hardware/scaling.py: the scaling mode (default and errors), calibration inputs as (T, batch, *shape), the
input scale chosen from calibration data (docs/fixed-point.md §10.6) and each layer's options (§4.8)."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.calibration import LayerActivity
from bso_deploy.hardware.quantize import LayerOptions
from bso_deploy.hardware.scaling import (
    DEFAULT_TIME_STEPS,
    calibrated_input_scale,
    calibration_samples,
    layer_options,
    resolve_scaling,
)


def test_scaling_defaults_to_calibrated_with_data_and_names_what_is_wrong() -> None:
    assert resolve_scaling(None, None) == "worst-case"
    assert resolve_scaling(None, np.zeros((2, 4))) == "calibrated"
    assert resolve_scaling("worst-case", np.zeros((2, 4))) == "worst-case"
    with pytest.raises(ValueError, match="scaling must be one of calibrated, worst-case, got 'best'"):
        resolve_scaling("best", None)
    with pytest.raises(ValueError, match=r"needs calibration inputs .*--calibrate-on"):
        resolve_scaling("calibrated", None)


def test_calibration_samples_take_both_layouts_and_reject_others() -> None:
    batch = np.arange(12, dtype=np.int64).reshape(3, 4)
    repeated = calibration_samples(batch, (4,), 5)
    assert repeated.shape == (5, 3, 4) and repeated.dtype == np.float64
    np.testing.assert_array_equal(repeated[4], batch)
    assert calibration_samples(batch, (4,), None).shape == (DEFAULT_TIME_STEPS, 3, 4)
    steps = np.ones((2, 3, 4), dtype=np.float32)
    np.testing.assert_array_equal(calibration_samples(steps, (4,), 9), steps)  # (T, batch, ...) kept as given
    with pytest.raises(ValueError, match=r"shape \(3, 5\); the graph's Input takes \(T, batch, \*\(4,\)\)"):
        calibration_samples(np.zeros((3, 5)), (4,), None)
    with pytest.raises(ValueError, match="real numbers, got dtype <U1"):
        calibration_samples(np.array([["a"] * 4]), (4,), None)


def test_input_scale_from_calibration_data() -> None:
    counts = np.array([[0.0, 3.0, 7.0]])
    assert calibrated_input_scale(counts, None) == (1.0, 7.0)  # integer data keep their integers
    assert calibrated_input_scale(np.array([[0.25, 0.5]]), None) == (255 / 0.5, 0.5)  # the peak maps to 255
    assert calibrated_input_scale(np.array([[300.0, 0.0]]), None) == (255 / 300, 300.0)  # beyond 8 bits
    assert calibrated_input_scale(np.zeros((1, 2)), None) == (255.0, 1.0)  # nothing to calibrate on
    assert calibrated_input_scale(counts, 16.0) == (16.0, 7.0)  # a given scale is kept


def test_layer_options_follow_the_layer_index_and_the_calibration() -> None:
    base = LayerOptions(input_scale=255.0, input_max=255, weight_bits=8, readout_steps=7, profile="bso",
                        first=True, first_input_step=1)
    assert layer_options(base, 0, None, "worst-case") is base
    second = layer_options(base, 2, None, "worst-case")
    assert (second.input_max, second.first, second.first_input_step) == (1, False, 3)  # spikes, from step 3
    activity = LayerActivity(current_peak=np.full(3, 2.0), voltage_peak=np.full(3, 4.0), input_peak=1.0, spikes=5,
                             drive_rate=np.full(3, 0.5))
    worst = layer_options(base, 1, activity, "worst-case")
    assert worst.drive_rate is activity.drive_rate and not worst.calibrated  # rates only, for §10.6's floor
    calibrated = layer_options(base, 1, activity, "calibrated")
    assert calibrated.calibrated and calibrated.voltage_peak is activity.voltage_peak
    assert calibrated.current_peak is activity.current_peak and calibrated.first_input_step == 2
