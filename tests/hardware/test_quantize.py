"""hardware/quantize.py and the modules it gathers (rounding.py, input_quantization.py, float_layer.py,
layer_bounds.py): the pure functions with hand-derived expectations (docs/fixed-point.md §10)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.quantize import (
    DEFAULT_INPUT_SCALE,
    FloatLayer,
    LayerOptions,
    clipped_inputs,
    fold_layer_thresholds,
    input_max_for_scale,
    quantize_inputs,
    quantize_layer,
    readout_in_one_unit,
    round_half_away,
    rounded_weight,
)
from bso_deploy.hardware.spec import SPEC

OPTIONS = LayerOptions(input_scale=255.0, input_max=255, weight_bits=8, readout_steps=10, profile="bso", first=True,
                       first_input_step=1)


def float_layer(weight, threshold=None, bias=None, **fields) -> FloatLayer:
    weight = np.asarray(weight, np.float64)
    n_out, n_in = weight.shape
    spiking = threshold is not None
    return FloatLayer(name="s" if spiking else "r", nodes=("fc", "lif" if spiking else "out"), kind="dense",
                      input_shape=(n_in,), pool=(1, 1), weight=weight,
                      bias=np.zeros(n_out) if bias is None else np.asarray(bias, np.float64),
                      threshold=None if threshold is None else np.asarray(threshold, np.float64),
                      tau_steps=fields.pop("tau_steps", 2.0 if spiking else float("inf")),
                      tau_syn_steps=None, reset="subtract", output_shape=(n_out,), **fields)


def network(input_scale: float | None, input_max: int | None) -> FixedPointNetwork:
    layer = FixedPointLayer(name="fc", kind="dense", input_shape=(2,), weight=np.ones((1, 2), np.int64))
    return FixedPointNetwork("bso", (2,), (layer,), input_scale=input_scale, input_max=input_max)


# --- rounding and the input scale (§10.1) ---

def test_round_half_away_from_zero():
    result = round_half_away([-2.5, -1.5, -0.5, -0.49999, 0.0, 0.49999, 0.5, 1.5, 2.5, 7.2])
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, [-3, -2, -1, 0, 0, 0, 1, 2, 3, 7])


def test_input_max_for_scale():
    assert DEFAULT_INPUT_SCALE == 255.0 and input_max_for_scale(DEFAULT_INPUT_SCALE) == 255
    assert input_max_for_scale(100.0) == 100
    assert input_max_for_scale(10.0, input_range=2.5) == 25
    assert input_max_for_scale(3.0, input_range=0.5) == 2  # 1.5 rounds away from zero
    assert input_max_for_scale(0.001) == 1  # at least 1
    assert input_max_for_scale(1000.0) == 255  # at most the 8-bit input


def test_quantize_inputs_rounds_and_saturates_exactly():
    fx_net = network(input_scale=4.0, input_max=200)
    x = np.array([[0.0, 0.1, 0.125, 0.375], [0.625, 49.8, 49.875, 60.0]])  # x * 4: 0.4, 0.5, 1.5, 2.5, 199.2, 199.5
    quantized = quantize_inputs(fx_net, x)
    assert quantized.dtype == np.int64 and quantized.shape == x.shape
    np.testing.assert_array_equal(quantized, [[0, 0, 1, 2], [3, 199, 200, 200]])
    assert clipped_inputs(fx_net, x) == 1  # only 240 > 200; 199.5 rounds to 200, within the range
    assert clipped_inputs(fx_net, np.zeros((3, 2))) == 0


def test_quantize_inputs_without_an_input_scale_takes_integers_as_they_are():
    fx_net = network(input_scale=None, input_max=None)
    assert fx_net.input_max == SPEC.input_max
    np.testing.assert_array_equal(quantize_inputs(fx_net, np.array([[0.0, 255.0]])), [[0, 255]])
    with pytest.raises(ValueError, match=r"takes integer inputs in \[0, 255\] \(it has no input scale\)"):
        quantize_inputs(fx_net, np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="not all integers or too large"):
        quantize_inputs(fx_net, np.array([[256.0, 1.0]]))
    assert clipped_inputs(fx_net, np.array([[256.0, 300.0, 255.0]])) == 2


@pytest.mark.parametrize(("values", "match"), [
    (np.array([-0.1, 0.5]), r"inputs must be >= 0 \(the fixed-point input is unsigned.*minimum of -0.1"),
    (np.array([np.nan, 0.5, np.inf]), r"inputs hold 2 NaN/Inf value\(s\)"),
    (np.array(["a", "b"]), "inputs must be real numbers"),
])
def test_bad_inputs_are_refused(values, match):
    fx_net = network(input_scale=4.0, input_max=200)
    for function in (quantize_inputs, clipped_inputs):
        with pytest.raises(ValueError, match=match):
            function(fx_net, values)


# --- weights (§10.2) ---

def test_rounded_weight_is_what_the_integer_synapses_represent():
    layer = float_layer([[0.5, -1.0, 0.26]])  # c = 127: 63.5 -> 64, -127, 33.02 -> 33
    np.testing.assert_array_equal(rounded_weight(layer, 8), np.array([[64, -127, 33]]) / 127)
    np.testing.assert_array_equal(rounded_weight(layer, 2), np.array([[1, -1, 0]]) / 1)  # c = 1: 0.5 -> 1, 0.26 -> 0
    signs = np.array([[1.0, -1.0]])
    binary = float_layer(signs * 0.3, signs=signs, alpha=np.array([0.3]))
    np.testing.assert_array_equal(rounded_weight(binary, 8), signs * 0.3)


def test_readout_quantization_by_hand():
    """q = round(127 W) = (127, -64), stored 2q; the largest K = 127 * 255 * 2**e whose v over 10 steps stays
    below 2**23 - 1: e = -2 (activation ceil(127 * 255 / 4) = 8097, v <= 8097 * 64 * 10 = 5182080), since
    e = -1 doubles v past 2**23 - 1; weight_exp = e - 1 = -3."""
    fixed, report = quantize_layer(float_layer([[1.0, -0.5]]), OPTIONS)
    np.testing.assert_array_equal(fixed.weight, [[254, -128]])
    assert (fixed.weight_exp, fixed.du, fixed.dv, fixed.spiking) == (-3, SPEC.decay_max, 0, False)
    assert report["scale"] == 127 * 255 / 4 and report["binding_bound"] == "v"
    assert (report["activation_bound"], report["v_bound"], report["readout_steps"]) == (8097, 5182080, 10)
    assert report["weight_max_abs_error"] == abs(-64 / 127 + 0.5)


def test_spiking_layer_quantization_by_hand():
    """K = 127 * 255 (e = 0; e = 1 would take |a| to 64770 > 2**15 - 1): vth = round(K theta) = (32385, 64770);
    bias 64 K b = +-207264, +-414528 -> mantissas +-3238.5 (away: 3239) at exponents 6 and 7; dv = 2048 (tau
    2 steps); the bias starts at the first input step."""
    fixed, report = quantize_layer(float_layer([[1.0, -0.5], [0.25, 0.5]], threshold=[1.0, 2.0], bias=[0.1, -0.2]),
                                   OPTIONS)
    np.testing.assert_array_equal(fixed.weight, [[254, -128], [64, 128]])
    np.testing.assert_array_equal(fixed.vth, [32385, 64770])
    np.testing.assert_array_equal(fixed.bias_mant, [3239, -3239])
    np.testing.assert_array_equal(fixed.bias_exp, [6, 7])
    assert (fixed.weight_exp, fixed.dv, fixed.bias_delay, fixed.reset) == (-1, 2048, 1, "subtract")
    assert report["scale"] == 32385.0 and report["binding_bound"] == "activation"
    assert report["activation_bound"] == 32385 and report["input_scale"] == 255.0 and report["input_max"] == 255


def test_range_errors_name_the_layer_the_bound_and_the_fix():
    with pytest.raises(ValueError, match=r"^layer 's' \(NIR nodes fc, lif\): vth does not fit even at the smallest "
                                         r"scale: needs vth up to .*; the float vth is too large"):
        quantize_layer(float_layer([[1.0, -0.5]], threshold=[1e12]), OPTIONS)
    with pytest.raises(ValueError, match=r"^layer 'r' \(NIR nodes fc, out\): v does not fit even at the smallest "
                                         r"scale: worst-case \|v\| after 1000 steps .*compile for fewer time_steps"):
        quantize_layer(float_layer([[1.0, -0.5]]), dataclasses.replace(OPTIONS, readout_steps=1000))
    with pytest.raises(ValueError, match=r"^layer 's' \(NIR nodes fc, lif\): tau cannot be expressed as a 12-bit"):
        quantize_layer(float_layer([[1.0]], threshold=[1.0], tau_steps=0.5), OPTIONS)


def test_binary_readout_of_uneven_alpha_becomes_full_precision():
    signs = np.array([[1.0, -1.0], [-1.0, -1.0]])
    uneven = float_layer(signs * [[0.5], [0.25]], signs=signs, alpha=np.array([0.5, 0.25]))
    one_unit = readout_in_one_unit(uneven)
    assert one_unit.signs is None and one_unit.alpha is None and "one scale K" in one_unit.note
    even = float_layer(signs * 0.5, signs=signs, alpha=np.array([0.5, 0.5]))
    assert readout_in_one_unit(even) is even
    fixed, report = quantize_layer(uneven, OPTIONS)
    np.testing.assert_array_equal(fixed.weight, 2 * np.array([[127, -127], [-64, -64]]))  # 63.5 -> 64
    assert not fixed.binary and not report["binary"] and "rows keep 64 ... 127 of 127 levels" in report["note"]


def test_fold_layer_thresholds_scales_rows_to_one_threshold():
    layer = float_layer([[1.0, -0.5], [0.25, 0.5]], threshold=[1.0, 2.0], bias=[0.1, -0.2])
    folded, report = fold_layer_thresholds(layer)
    np.testing.assert_array_equal(folded.weight, [[2.0, -1.0], [0.25, 0.5]])
    np.testing.assert_array_equal(folded.bias, [0.2, -0.2])
    np.testing.assert_array_equal(folded.threshold, [2.0, 2.0])
    assert report == {"threshold_reference": 2.0, "row_scale_min": 1.0, "row_scale_max": 2.0,
                      "binary_to_full_precision": False}
    assert fold_layer_thresholds(folded) == (folded, None)
    with pytest.raises(ValueError, match="is 0 in rows \\[0\\]"):
        fold_layer_thresholds(float_layer([[1.0], [1.0]], threshold=[0.0, 1.0]))
