"""hardware/learner.py: the learning window and the checks of a learning layer and of a run's inputs
(docs/onchip-learning.md §5, §11), on the functions themselves (the learners' use of them: test_learning.py)."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.learner import check_learning_inputs, check_learning_layer, learning_window
from bso_deploy.hardware.learning_rule import LearningRule
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork


def network() -> FixedPointNetwork:
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(3,), weight=np.full((4, 3), 20), du=4095,
                             dv=2048, vth=50)
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(4,), weight=np.ones((2, 4), np.int64),
                              binary=True, weight_mant=3, du=4095, dv=0, spiking=False)
    return FixedPointNetwork("bso", (3,), (hidden, readout))


def test_learning_window_is_the_steps_the_layer_receives_the_sample():
    assert learning_window(0, LearningRule(time_steps=4)) == range(1, 5)
    assert learning_window(2, LearningRule(time_steps=3)) == range(3, 6)


def test_learning_layer_index_and_refusals():
    fx_net, rule = network(), LearningRule(time_steps=2)
    assert check_learning_layer(fx_net, -1, rule) == check_learning_layer(fx_net, 1, rule) == 1
    with pytest.raises(TypeError, match="rule must be a LearningRule, not dict"):
        check_learning_layer(fx_net, -1, {})
    with pytest.raises(ValueError, match=r"layer must be an integer in \[-2, 1\] \(the network has 2 layers\), got 2"):
        check_learning_layer(fx_net, 2, rule)
    with pytest.raises(ValueError, match=r"got True"):
        check_learning_layer(fx_net, True, rule)
    with pytest.raises(ValueError, match="layer 'hidden' has 8-bit synapses; on-chip learning flips 1-bit synapses"):
        check_learning_layer(fx_net, 0, rule)
    wide = LearningRule(time_steps=2, error_bits=16, error_target=0, trace_bits=16, trace_increment=1,
                        surrogate_table=(15,))
    big = FixedPointLayer(name="big", kind="dense", input_shape=(4,), weight=np.ones((4, 4), np.int64), binary=True,
                          spiking=False)  # (32767 * 65535)**2 * 16 > 2**63
    with pytest.raises(ValueError, match="layer 'big': the sum of squared products of 4 x 4 synapses may exceed int64"):
        check_learning_layer(FixedPointNetwork("bso", (4,), (big,)), 0, wide)
    small = FixedPointLayer(name="small", kind="dense", input_shape=(1,), weight=np.ones((1, 1), np.int64),
                            binary=True, spiking=False)  # (32767 * 65535)**2 < 2**63
    assert check_learning_layer(FixedPointNetwork("bso", (1,), (small,)), 0, wide) == 0


def test_learning_inputs_come_back_as_int64():
    fx_net, rule = network(), LearningRule(time_steps=2)
    inputs = np.full((2, 5, 3), 7, np.uint8)
    checked, labels, errors = check_learning_inputs(fx_net, rule, -1, inputs, np.array([0, 1, 1, 0, 1], np.int32), None)
    assert checked.dtype == labels.dtype == np.int64 and errors is None
    np.testing.assert_array_equal(checked, inputs)
    np.testing.assert_array_equal(labels, [0, 1, 1, 0, 1])
    checked, labels, errors = check_learning_inputs(fx_net, rule, 0, inputs, None, np.ones((2, 5, 4), np.int16))
    assert labels is None and errors.dtype == np.int64 and errors.shape == (2, 5, 4)


@pytest.mark.parametrize(("inputs", "labels", "errors", "layer", "match"), [
    (np.zeros((2, 5, 3)), [0] * 5, None, -1, r"inputs must be integers in \[0, 255\].*quantize float inputs first"),
    (np.zeros((2, 5, 4), int), [0] * 5, None, -1, r"inputs must have shape \(T, N, \*\(3,\)\), got \(2, 5, 4\)"),
    (np.zeros((3, 5, 3), int), [0] * 5, None, -1, "inputs have 3 steps but the rule's time_steps is 2"),
    (np.full((2, 5, 3), 256), [0] * 5, None, -1, r"inputs must lie in \[0, 255\], got values in \[256, 256\]"),
    (np.zeros((2, 5, 3), int), None, None, -1, "give exactly one of labels"),
    (np.zeros((2, 5, 3), int), [0] * 5, None, 0, "labels drive the on-chip error of the output layer only"),
    (np.zeros((2, 5, 3), int), [0, 1, 2, 0, 1], None, -1, r"labels must be 5 integers in \[0, 2\)"),
    (np.zeros((2, 5, 3), int), None, np.zeros((2, 5, 3), int), -1,
     r"errors must be integers of shape \(T, N, n_out\) = \(2, 5, 2\)"),
])
def test_bad_learning_inputs_are_refused(inputs, labels, errors, layer, match):
    labels = None if labels is None else np.array(labels)
    with pytest.raises(ValueError, match=match):
        check_learning_inputs(network(), LearningRule(time_steps=2), layer, inputs, labels, errors)
