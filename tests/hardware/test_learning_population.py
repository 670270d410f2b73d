"""The population readout and the learned bias of the NumPy rule (docs/onchip-learning.md §14, §15): hand-derived
pooled errors, staggered thresholds and bias updates, saturation, the population network's predictions and
the learned bias as the network runs it. Parity with torch and Lava: test_torch_learning.py,
test_lava_learning.py."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.learning import (
    LearningRule,
    LearningState,
    SimLearner,
    learned_bias_mant_int,
    learning_step_int,
    member_thresholds_int,
    readout_error_int,
)
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate


def readout_network(rng: np.random.Generator, classes: int = 3) -> FixedPointNetwork:
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(6,), weight=rng.choice([-1, 1], (8, 6)),
                             binary=True, weight_mant=3, du=4095, dv=1024, vth=rng.integers(5, 40, 8), bias_delay=1)
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(8,), binary=True,
                              weight=rng.choice([-1, 1], (classes, 8)), weight_mant=5, du=4095, dv=0,
                              bias_mant=rng.integers(-50, 50, classes), bias_delay=2, spiking=False)
    return FixedPointNetwork(profile="bso", input_shape=(6,), layers=(hidden, readout))


def test_pooled_error_is_the_same_for_every_member_by_hand():
    """P = 2, error_shift 1, A = 4: class currents 7 + 6 = 13 and -9 + 0 = -9; floor(13 / 4) = 3,
    floor(-9 / 4) = -3; label 0: e_0 = 3 - 4 = -1, e_1 = -3 + 4 = 1, each for both members."""
    rule = LearningRule(population=2, error_shift=1, error_target=4, error_bits=6)
    np.testing.assert_array_equal(readout_error_int(np.array([7, 6, -9, 0]), 0, rule), [-1, -1, 1, 1])
    # P = 1 is the error of §5: c >> error_shift = 3, -5, clipped to 3, -4; label 1: 3 + 4, -4 - 4
    single = replace(rule, population=1)
    np.testing.assert_array_equal(readout_error_int(np.array([7, -9]), 1, single), [7, -8])


def test_member_thresholds_are_staggered_by_hand():
    """theta = 10, P = 4: floor(10 (p + 1) / 4) = 2, 5, 7, 10 for the members of each class."""
    rule = LearningRule(population=4)
    np.testing.assert_array_equal(member_thresholds_int(10, 8, rule).ravel(), [2, 5, 7, 10, 2, 5, 7, 10])
    np.testing.assert_array_equal(member_thresholds_int(10, 3, LearningRule()).ravel(), [10, 10, 10])


def test_members_with_the_same_momentum_flip_one_after_another():
    """BSO, P = 3, flip_threshold 9 (thresholds 3, 6, 9), one input, the same error e = -1 for all members and
    trace 64 each step, product shift 6 (g = -1), no decay (momentum_shift 30): m = -1, -2, ... each W = -1
    member flips when -m passes its threshold: member 0 at m = -4, member 1 at -7, member 2 at -10."""
    rule = LearningRule(variant="bso", population=3, flip_threshold=9, momentum_shift=30, product_shift=6,
                        trace_decay=4095, trace_increment=64, trace_bits=8)
    state = LearningState(weight=-np.ones((3, 1), np.int8), momentum=np.zeros((3, 1), np.int64),
                          trace=np.zeros(1, np.int64), second_moment=np.zeros(4, np.int64), counter=0)
    flipped_at = {}
    for step in range(12):
        state, flips = learning_step_int(state, np.array([1]), np.zeros(3), None, np.full(3, -1), 0, rule)
        state = state._replace(trace=np.zeros(1, np.int64))  # the same trace 64 at every step
        for member in np.nonzero(flips[:, 0])[0]:
            flipped_at.setdefault(int(member), step + 1)
    assert flipped_at == {0: 4, 1: 7, 2: 10}
    np.testing.assert_array_equal(state.weight.ravel(), [1, 1, 1])


def test_bias_update_and_saturation_by_hand():
    """b <- clip(b - e h, +-(2**(bits-1) - 1)); bias_bits 4: +-7. From b = 5: e = -3 -> 7 (saturated, 8);
    e = 2 -> 3; the bias mantissa adds b >> bias_shift (2: 7 >> 2 = 1, -7 >> 2 = -2) and saturates at 13 bits."""
    rule = LearningRule(bias_bits=4, bias_shift=2, error_bits=8)
    state = LearningState(weight=np.ones((2, 1), np.int8), momentum=np.zeros((2, 1), np.int64),
                          trace=np.zeros(1, np.int64), second_moment=np.zeros(4, np.int64), counter=0,
                          bias=np.array([5, 5]))
    state, _ = learning_step_int(state, np.array([0]), np.zeros(2), None, np.array([-3, 2]), 0, rule)
    np.testing.assert_array_equal(state.bias, [7, 3])
    np.testing.assert_array_equal(learned_bias_mant_int(np.array([10, 4095, -4096]), np.array([7, 7, -7]), rule),
                                  [11, 4095, -4096])
    state, _ = learning_step_int(state, np.array([0]), np.zeros(2), None, np.array([20, 20]), 0, rule)
    np.testing.assert_array_equal(state.bias, [-7, -7])
    unchanged, _ = learning_step_int(state, np.array([0]), np.zeros(2), None, np.array([5, 5]), 0, LearningRule())
    np.testing.assert_array_equal(unchanged.bias, state.bias)  # bias_bits = 0: the bias does not learn


@pytest.mark.parametrize("population", [2, 5])
def test_population_network_keeps_every_prediction(population: int):
    rng = np.random.default_rng(population)
    fx_net = readout_network(rng)
    inputs = append_zero_steps(rng.integers(0, 256, (4, 20, 6)), fx_net.latency)
    pooled = population_network(fx_net, population)
    assert pooled.layers[-1].output_shape == (3 * population,)
    original = simulate(fx_net, inputs).output[-1]
    members = simulate(pooled, inputs).output[-1].reshape(20, 3, population)
    for p in range(population):
        np.testing.assert_array_equal(members[:, :, p], original)
    assert population_network(fx_net, 1) is fx_net


def test_learned_bias_is_what_the_network_runs():
    """After a stream, the learner's network() (bias_mant written in) runs, in the plain simulator, exactly the
    readout voltages that a learner of the same network sees while nothing flips and the bias is frozen."""
    rng = np.random.default_rng(3)
    fx_net = population_network(readout_network(rng), 2)
    rule = LearningRule(time_steps=4, population=2, bias_bits=10, bias_shift=1, error_target=20, error_bits=8,
                        error_shift=4, flip_threshold=10 ** 6, threshold_shift=0)
    learner = SimLearner(fx_net, rule)
    inputs, labels = rng.integers(0, 256, (4, 30, 6)), rng.integers(0, 3, 30)
    record = learner.run(inputs, labels=labels, record=True)
    assert np.any(learner.state.bias != 0) and record.flip_events.shape[0] == 0
    assert np.all(learner.state.bias[0::2] == learner.state.bias[1::2])  # the same error to both members
    frozen = SimLearner(learner.network(), replace(rule, bias_bits=0, bias_shift=0))
    again = frozen.run(inputs[:, :5], labels=labels[:5], record=True)
    expected = simulate(learner.network(), append_zero_steps(inputs[:, :5], 2))
    np.testing.assert_array_equal(again.steps["v/1"].transpose(1, 0, 2), expected.output)


def test_population_and_bias_are_validated():
    with pytest.raises(ValueError, match="population"):
        LearningRule(population=0)
    with pytest.raises(ValueError, match="bias_bits = 1"):
        LearningRule(bias_bits=1)
    with pytest.raises(ValueError, match="bias_shift"):
        LearningRule(bias_bits=4, bias_shift=4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="multiple of 2"):
        SimLearner(readout_network(rng), LearningRule(population=2))
    with pytest.raises(ValueError, match="population_network"):
        SimLearner(population_network(readout_network(rng), 2), LearningRule(population=2), layer=0)
    learner = SimLearner(population_network(readout_network(rng), 2), LearningRule(population=2, time_steps=2))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        learner.run(rng.integers(0, 256, (2, 1, 6)), labels=np.array([3]))
    assert LearningRule(bias_bits=19, bias_shift=6).bits_per_bias == 19 and LearningRule().bits_per_bias == 0
