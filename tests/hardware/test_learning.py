"""The NumPy on-chip learning rule (hardware/learning.py, docs/onchip-learning.md): hand-derived single-synapse
traces, rounding and the random words, saturation, ties, t_epoch and the simulator learner's plumbing. The
rule's fields: test_learning_rule.py; the float mapping: test_learning_float.py; the table: test_learners.py."""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.learning import (
    LearningRule,
    LearningState,
    SimLearner,
    hash32_int,
    learning_step_int,
    learning_window,
    random_words_int,
    readout_error_int,
    round_shift_int,
    surrogate_int,
    trace_step_int,
)
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate


def one_synapse(weight: int = 1, momentum: int = 0, trace: int = 0, steps: int = 4) -> LearningState:
    return LearningState(weight=np.array([[weight]], np.int8), momentum=np.array([[momentum]], np.int64),
                         trace=np.array([trace], np.int64), second_moment=np.zeros(steps, np.int64), counter=0)


def test_single_synapse_bso_trace_by_hand():
    """pre 1,0,1,1, e = 3, readout (h = 1), trace_decay 2048 (halving), increment 64, m shift 2, product
    shift 3, nearest rounding, threshold 50, W = +1:
      x: 64, 32, 80, 104     g = 3x: 192, 96, 240, 312   R(g, 3): 24, 12, 30, 39
      m: 0 - 0 + 24 = 24;  24 - R(24, 2)=6 + 12 = 30;  30 - R(30, 2)=8 (7.5 away from 0) + 30 = 52 > 50: flip,
         BSO resets m to 0, W = -1;  0 - 0 + 39 = 39, W m = -39: no flip."""
    rule = LearningRule(variant="bso", momentum_shift=2, product_shift=3, flip_threshold=50, trace_decay=2048,
                        trace_increment=64)
    state = one_synapse()
    expected = [(64, 24, 1), (32, 30, 1), (80, 0, -1), (104, 39, -1)]
    for t, (pre, (trace, momentum, weight)) in enumerate(zip([1, 0, 1, 1], expected, strict=True)):
        state, flips = learning_step_int(state, np.array([pre]), np.array([0]), None, np.array([3]), t, rule)
        assert (state.trace[0], state.momentum[0, 0], state.weight[0, 0]) == (trace, momentum, weight)
        assert bool(flips[0, 0]) == (t == 2)
        assert state.counter == t + 1


def test_single_synapse_tbso_trace_by_hand():
    """T-BSO: same stream, no reset; s[t] shift 1, input shift 4, threshold (2 isqrt(s)) >> 1 = isqrt(s):
      t=0: q = 9 * 64^2 = 36864, R(q, 4) = 2304, s[0] = 2304, theta = 48, m = 24: no flip
      t=1: q = 9 * 32^2 = 9216 -> 576 = s[1], theta = 24, m = 30 > 24: flip (W = -1, m stays 30)
      t=2: q = 9 * 80^2 = 57600 -> 3600 = s[2], theta = 60, m = 52, W m = -52: no flip."""
    rule = LearningRule(variant="tbso", momentum_shift=2, product_shift=3, flip_threshold=2, threshold_shift=1,
                        second_moment_shift=1, second_moment_product_shift=4)
    state = one_synapse()
    state, flips = learning_step_int(state, np.array([1]), np.array([0]), None, np.array([3]), 0, rule)
    assert (state.second_moment[0], state.momentum[0, 0], bool(flips[0, 0])) == (2304, 24, False)
    state, flips = learning_step_int(state, np.array([0]), np.array([0]), None, np.array([3]), 1, rule)
    assert (state.second_moment[1], state.momentum[0, 0], bool(flips[0, 0]), state.weight[0, 0]) == (576, 30, True, -1)
    state, flips = learning_step_int(state, np.array([1]), np.array([0]), None, np.array([3]), 2, rule)
    assert (state.second_moment[2], state.momentum[0, 0], bool(flips[0, 0])) == (3600, 52, False)
    # a second visit of t = 0 decays s[0] first: 2304 - R(2304, 1) + R(9 * 104^2, 4)
    state, _ = learning_step_int(state, np.array([1]), np.array([0]), None, np.array([3]), 0, rule)
    assert state.second_moment[0] == 2304 - 1152 + round(9 * 104 ** 2 / 16)


def test_tie_at_the_flip_threshold_does_not_flip():
    rule = LearningRule(variant="bso", momentum_shift=20, product_shift=0, flip_threshold=64, trace_increment=64)
    state, flips = learning_step_int(one_synapse(), np.array([1]), np.array([0]), None, np.array([1]), 0, rule)
    assert state.momentum[0, 0] == 64 and not flips.any()  # W m == theta: strict ">"
    state, flips = learning_step_int(one_synapse(momentum=1), np.array([1]), np.array([0]), None, np.array([1]), 0,
                                     rule)
    assert flips.all() and state.weight[0, 0] == -1 and state.momentum[0, 0] == 0  # 65 > 64: flip, BSO reset


def test_saturation_of_trace_momentum_error_and_second_moment():
    rule = LearningRule(variant="tbso", trace_bits=4, trace_increment=15, trace_decay=0, momentum_bits=6,
                        momentum_shift=0, product_shift=0, error_bits=4, error_target=0, second_moment_bits=5,
                        second_moment_shift=0, second_moment_product_shift=0, flip_threshold=1 << 20)
    state, _ = learning_step_int(one_synapse(trace=15), np.array([1]), np.array([0]), None, np.array([-100]), 0, rule)
    assert state.trace[0] == 15  # trace_max = 15: saturates, never wraps
    assert state.momentum[0, 0] == -31  # -7 * 15 = -105 saturates at -(2^5 - 1)
    assert state.second_moment[0] == 31  # 105^2 saturates at 2^5 - 1
    np.testing.assert_array_equal(trace_step_int(np.array([100, 15]), np.array([0, 1]),
                                                 LearningRule(trace_bits=8, trace_decay=2048)), [50, 71])


def test_surrogate_window_and_ties_at_the_threshold():
    rule = LearningRule(surrogate_shift=2, surrogate_table=(8, 4, 2))
    vth = np.array([10, 10, 10, 10, 10, 10])
    v = (10 << 6) + np.array([0, 3, -4, 7, 11, -12])  # buckets 0, 0, 1, 1, 2, 3 (past the table)
    np.testing.assert_array_equal(surrogate_int(v, vth, rule), [8, 8, 4, 4, 2, 0])
    np.testing.assert_array_equal(surrogate_int(v, None, rule), np.ones(6))


def test_readout_error_is_a_clipped_margin():
    rule = LearningRule(error_shift=2, error_target=5, error_bits=8)
    current = np.array([-100, -20, -4, 0, 7, 100])  # >> 2: -25, -5, -1, 0, 1, 25
    np.testing.assert_array_equal(readout_error_int(current, 4, rule), [0, 0, 4, 5, -4, 10])


def test_round_shift_nearest_and_stochastic():
    y = np.array([-13, -12, -6, -5, 0, 5, 6, 12, 13])
    np.testing.assert_array_equal(round_shift_int(y, 2, "nearest"), [-3, -3, -2, -1, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(round_shift_int(y, 0, "nearest"), y)
    words = random_words_int(7, 3, 20000, 1)
    values = round_shift_int(np.full(20000, -13), 3, "stochastic", words)
    assert set(np.unique(values)) == {-2, -1}  # floor(-13/8) = -2, fraction 3/8
    assert abs(values.mean() + 13 / 8) < 0.02  # unbiased
    np.testing.assert_array_equal(round_shift_int(np.full(5, 16), 3, "stochastic", words[:5]), np.full(5, 2))


def _reference_hash32(x: int) -> int:
    """docs/onchip-learning.md §8 in plain Python integers."""
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x1B873593) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_random_words_follow_the_spec_exactly():
    for x in (0, 1, 12345, 0xFFFFFFFF, 0x9E3779B9):
        assert int(hash32_int(np.int64(x))) == _reference_hash32(x)
    seed, counter = 123, 45
    key = _reference_hash32((seed + counter * 0x9E3779B9) & 0xFFFFFFFF)
    expected = [_reference_hash32(key ^ (4 * i + 2)) for i in range(10)]
    np.testing.assert_array_equal(random_words_int(seed, counter, 10, 2), expected)
    assert not np.array_equal(random_words_int(seed, counter + 1, 10, 2), expected)


def test_t_epoch_decides_flips_only_at_epoch_ends():
    rule = LearningRule(variant="bso", momentum_shift=0, product_shift=0, flip_threshold=0, t_epoch=3)
    state = one_synapse()  # beta = 0: m is this step's product, +x for steps 0-2, -x for steps 3-5
    flipped_at = []
    for t in range(6):
        error = np.array([1 if t < 3 else -1])
        state, flips = learning_step_int(state, np.array([1]), np.array([0]), None, error, t % 4, rule)
        if flips.any():
            flipped_at.append(t)
    assert flipped_at == [2, 5]


# --- the simulator learner ---

def small_network(seed: int = 0, hidden_spiking: bool = True) -> FixedPointNetwork:
    rng = np.random.default_rng(seed)
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(6,), weight=rng.choice([-1, 1], (8, 6)),
                             binary=True, weight_mant=2, du=4095, dv=2048, vth=rng.integers(100, 300, 8),
                             bias_mant=rng.integers(-20, 20, 8), bias_delay=1, reset="subtract",
                             spiking=hidden_spiking)
    layers = (hidden,)
    if hidden_spiking:
        layers += (FixedPointLayer(name="readout", kind="dense", input_shape=(8,), weight=rng.choice([-1, 1], (3, 8)),
                                   binary=True, weight_mant=5, du=4095, dv=0, bias_mant=rng.integers(-50, 50, 3),
                                   bias_delay=2, spiking=False),)
    return FixedPointNetwork(profile="bso", input_shape=(6,), layers=layers)


def test_learner_without_learning_is_the_simulator():
    fx_net = small_network()
    rule = LearningRule(time_steps=3)
    rng = np.random.default_rng(1)
    inputs = rng.integers(0, 256, (3, 7, 6))
    record = SimLearner(fx_net, rule, layer=0).run(inputs, errors=np.zeros((3, 7, 8), np.int64), record=True)
    reference = simulate(fx_net, append_zero_steps(inputs, fx_net.latency), record=True)
    for k in (0, 1):
        np.testing.assert_array_equal(record.steps[f"spikes/{k}"], reference.spikes[k].swapaxes(0, 1))
        np.testing.assert_array_equal(record.steps[f"v/{k}"], reference.v[k].swapaxes(0, 1))
    np.testing.assert_array_equal(record.predictions, reference.output[-1].argmax(-1))
    assert record.flips.sum() == 0 and record.flip_events.shape == (0, 4)
    window = learning_window(0, rule)
    assert list(window) == [1, 2, 3]
    assert not record.steps["trace"][:, 0].any() and record.steps["trace"][:, 1].any()


def test_learner_state_persists_across_runs():
    fx_net = small_network(2)
    rule = LearningRule(time_steps=2, error_shift=3, error_target=40, momentum_shift=2, product_shift=2)
    rng = np.random.default_rng(3)
    inputs, labels = rng.integers(0, 256, (2, 12, 6)), rng.integers(0, 3, 12)
    whole = SimLearner(fx_net, rule).run(inputs, labels=labels)
    assert whole.flips.sum() > 0
    split = SimLearner(fx_net, rule)
    first = split.run(inputs[:, :5], labels=labels[:5])
    second = split.run(inputs[:, 5:], labels=labels[5:])
    np.testing.assert_array_equal(np.concatenate([first.predictions, second.predictions]), whole.predictions)
    for name in ("weight", "momentum", "second_moment"):
        np.testing.assert_array_equal(getattr(split.state, name), getattr(whole.state, name))
    assert split.state.counter == whole.state.counter == 12 * 2
    learned = split.network()
    np.testing.assert_array_equal(learned.layers[-1].weight, whole.state.weight)
    np.testing.assert_array_equal(learned.layers[0].weight, fx_net.layers[0].weight)


def test_learner_input_validation():
    fx_net = small_network()
    rule = LearningRule(time_steps=2)
    inputs, labels = np.zeros((2, 3, 6), np.int64), np.zeros(3, np.int64)
    learner = SimLearner(fx_net, rule)
    with pytest.raises(ValueError, match="exactly one"):
        learner.run(inputs)
    with pytest.raises(ValueError, match="exactly one"):
        learner.run(inputs, labels=labels, errors=np.zeros((2, 3, 3), np.int64))
    with pytest.raises(ValueError, match="time_steps"):
        learner.run(np.zeros((3, 3, 6), np.int64), labels=labels)
    with pytest.raises(ValueError, match="labels"):
        learner.run(inputs, labels=np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="integers"):
        learner.run(inputs.astype(float), labels=labels)
    with pytest.raises(ValueError, match="output layer"):
        SimLearner(fx_net, rule, layer=0).run(inputs, labels=labels)
    with pytest.raises(ValueError, match="errors"):
        SimLearner(fx_net, rule, layer=0).run(inputs, errors=np.zeros((2, 3, 3), np.int64))
    full_precision = FixedPointLayer(name="fp", kind="dense", input_shape=(6,), weight=np.full((2, 6), 4), dv=0,
                                     spiking=False)
    with pytest.raises(ValueError, match="1-bit"):
        SimLearner(FixedPointNetwork(profile="bso", input_shape=(6,), layers=(full_precision,)), rule)
    with pytest.raises(ValueError, match="layer must be"):
        SimLearner(fx_net, rule, layer=2)
