"""The shared-counter population rule (docs/onchip-learning.md §20): hand-derived accumulations, flips of the
lowest-index member, saturation of the accumulator and of the class weight, ties at the threshold, the growing
threshold, and the NumPy rule == the torch rule after every step on all state over many seeded random networks
and rules (the Lava process: test_lava_learning.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from bso_deploy.hardware.lava.learning_arithmetic import learning_update
from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.learning import LearningRule, LearningState, SimLearner, learning_step_int
from bso_deploy.hardware.learning_counter import counter_flips_int, counter_threshold_int
from bso_deploy.hardware.torch_learning import TorchLearner
from test_learning_population import readout_network


def _state(weight: np.ndarray) -> LearningState:
    n_out, n_in = weight.shape
    return LearningState(weight=np.asarray(weight, np.int8), momentum=np.zeros((n_out, n_in), np.int64),
                         trace=np.zeros(n_in, np.int64), second_moment=np.zeros(4, np.int64), counter=0,
                         bias=np.zeros(n_out, np.int64))


def test_members_flip_one_per_threshold_by_hand():
    """P = 3, one class, one input, theta 10, trace 64 every step, product shift 6, error e = -2 for each
    member (sum -6, so a gains -6 per step): a = -6, -12 -> flip (member 0, the first with W = -1), a = -2;
    -8, -14 -> member 1 flips, -4; -10 (a tie: no flip), -16 -> member 2, -6; then the class weight is
    saturated at +3: a is clipped to -10 at every step and nothing flips."""
    rule = LearningRule(population=3, population_rule="counter", counter_threshold=10, product_shift=6,
                        trace_decay=4095, trace_increment=64, trace_bits=8)
    state = _state(-np.ones((3, 1)))
    accumulators, flipped = [], []
    for _ in range(9):
        state, flips = learning_step_int(state, np.array([1]), np.zeros(3), None, np.full(3, -2), 0, rule)
        state = state._replace(trace=np.zeros(1, np.int64))  # the same trace 64 at every step
        accumulators.append(int(state.momentum[0, 0]))
        flipped.append([int(p) for p in np.nonzero(flips[:, 0])[0]])
        np.testing.assert_array_equal(state.momentum[1:], 0)  # only member 0's register holds the accumulator
    assert accumulators == [-6, -2, -8, -4, -10, -6, -10, -10, -10]
    assert flipped == [[], [0], [], [1], [], [2], [], [], []]
    np.testing.assert_array_equal(state.weight.ravel(), [1, 1, 1])


def test_flip_choice_and_saturation_by_hand():
    """counter_flips_int: down takes the first member with +1, up the first with -1; a class whose members
    cannot move keeps no more than theta; the accumulator register saturates at +-(2**(bits-1) - 1)."""
    weight = np.array([[-1, 1, 1], [1, -1, -1]])  # one class (P = 2) and three inputs
    flips, accumulator = counter_flips_int(weight, np.array([[9, 9, -9]]), 5, 2)
    np.testing.assert_array_equal(flips, [[False, True, False], [True, False, True]])
    np.testing.assert_array_equal(accumulator, [[4, 4, -4]])
    flips, accumulator = counter_flips_int(np.ones((2, 1)), np.array([[-9]]), 5, 2)  # all +1: up cannot move
    assert not flips.any() and accumulator[0, 0] == -5
    rule = LearningRule(population=1, population_rule="counter", counter_bits=6, counter_threshold=31,
                        product_shift=0, trace_increment=64)
    state, _ = learning_step_int(_state(np.ones((1, 1))), np.array([1]), np.zeros(1), None, np.array([-100]), 0, rule)
    assert state.momentum[0, 0] == -31  # -6400 saturated at -31, a tie with theta: no flip
    assert state.weight[0, 0] == 1


def test_growing_threshold_by_hand():
    """theta = min(theta0 + (theta0 counter >> g), counter_max): theta0 8, g 2: 8, 10, 12, 14, 16 for
    counter 0 ... 4; counter_max caps it; g 0 keeps it fixed."""
    rule = LearningRule(population_rule="counter", counter_threshold=8, counter_growth_shift=2, counter_bits=5)
    assert [counter_threshold_int(c, rule) for c in range(5)] == [8, 10, 12, 14, 15]
    assert counter_threshold_int(10 ** 6, replace(rule, counter_growth_shift=0)) == 8


def test_counter_rule_is_validated_and_costs_few_bits():
    with pytest.raises(ValueError, match="population_rule"):
        LearningRule(population_rule="thermometer")
    with pytest.raises(ValueError, match="counter_threshold"):
        LearningRule(population_rule="counter", counter_threshold=0)
    with pytest.raises(ValueError, match="counter_threshold"):
        LearningRule(population_rule="counter", counter_bits=8, counter_threshold=128)
    with pytest.raises(ValueError, match="readout rule"):
        LearningRule(population_rule="counter", counter_threshold=5, feedback="random")
    assert LearningRule(population=8, population_rule="counter", counter_threshold=5).bits_per_synapse == 3
    assert LearningRule(population=16, population_rule="counter", counter_threshold=5).bits_per_synapse == 2
    assert LearningRule(population=8, population_rule="counter", counter_threshold=5).bits_per_synapse < 33


def _random_case(seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    population = int(rng.integers(1, 5))
    fx_net = population_network(readout_network(rng), population)
    bits, bias_bits = int(rng.integers(8, 14)), int(rng.choice([0, 6]))
    rule = LearningRule(time_steps=int(rng.integers(2, 5)), population=population, population_rule="counter",
                        counter_bits=bits, counter_threshold=int(rng.integers(1, 1 << (bits - 1))),
                        counter_growth_shift=int(rng.choice([0, 3, 6])), product_shift=int(rng.integers(0, 8)),
                        error_shift=int(rng.integers(2, 6)), error_target=int(rng.integers(5, 60)), error_bits=8,
                        bias_bits=bias_bits, bias_shift=min(1, bias_bits), t_epoch=int(rng.choice([1, 1, 2])),
                        rounding=str(rng.choice(["nearest", "stochastic"])), seed=int(rng.integers(0, 2 ** 32)))
    samples = int(rng.integers(6, 16))
    inputs = rng.integers(0, 256, (rule.time_steps, samples, 6))
    return fx_net, rule, inputs, rng.integers(0, 3, samples)


def _ties(accumulators: np.ndarray, weights: np.ndarray, rule: LearningRule) -> int:
    """Exact ties in a record (N, S, C, n_in) of a rule deciding at every step with a fixed theta: at a learning
    step (the readout's window, steps 2 ... T + 1) |a| = theta, the class weight could move toward -sign(a) and
    did not change since the previous record; a flip would have taken |a| below theta, a blocked weight is not
    movable, so only a = +-theta exactly before the strict comparison remains."""
    theta, population = counter_threshold_int(0, rule), rule.population
    steps = accumulators.shape[1]
    window = np.zeros(steps, bool)
    window[2:2 + rule.time_steps] = True
    flat_a = accumulators.reshape(-1, *accumulators.shape[2:])
    flat_w = weights.reshape(-1, *weights.shape[2:])
    learning = np.tile(window, accumulators.shape[0])[1:]
    movable = np.where(flat_a[1:] > 0, flat_w[1:] > -population, flat_w[1:] < population)
    tie = (np.abs(flat_a[1:]) == theta) & movable & (flat_w[1:] == flat_w[:-1])
    return int(np.sum(tie[learning]))


def runs_agree(sim: SimLearner, reference: TorchLearner, inputs: np.ndarray, labels: np.ndarray, where: str):
    """Run both learners on the same chunk with records; assert every recorded state equal; the NumPy record."""
    a = sim.run(inputs, labels=labels, record=True)
    b = reference.run(inputs, labels=labels, record=True)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_array_equal(a.flip_events, b.flip_events)
    assert a.steps.keys() == b.steps.keys()
    for name in a.steps:
        np.testing.assert_array_equal(a.steps[name], b.steps[name], err_msg=f"{where}: {name}")
    return a


def test_numpy_and_torch_counter_rules_agree_on_every_step():
    """18 seeded random readouts (P = 1 ... 4) and rules: every recorded state (weights, accumulators, traces,
    errors, biases, spikes, v) equal after every step; over the cases flips, accumulator saturation, a
    saturated class weight that blocks a flip and exact ties (|a| = theta, movable, no flip) all occur."""
    seen = {"flips": 0, "saturated_accumulator": 0, "blocked": 0, "ties": 0}
    for seed in range(18):
        fx_net, rule, inputs, labels = _random_case(seed)
        sim, reference = SimLearner(fx_net, rule), TorchLearner(fx_net, rule, device="cpu")
        for chunk in np.array_split(np.arange(len(labels)), 2):  # state carried across runs
            a = runs_agree(sim, reference, inputs[:, chunk], labels[chunk], f"seed {seed}")
            accumulators = a.steps["momentum"][:, :, ::rule.population]
            n_in = fx_net.layers[-1].weight.shape[1]
            weights = a.steps["weight"].reshape(*a.steps["weight"].shape[:2], -1, rule.population, n_in).sum(axis=3)
            seen["flips"] += len(a.flip_events)
            seen["saturated_accumulator"] += int(np.sum(np.abs(accumulators) == rule.counter_max))
            if rule.t_epoch == 1 and not rule.counter_growth_shift:
                seen["ties"] += _ties(accumulators, weights, rule)
            seen["blocked"] += int(np.sum(np.abs(weights) == rule.population))
        for name in ("weight", "momentum", "trace", "bias"):
            np.testing.assert_array_equal(getattr(sim.state, name), getattr(reference.state, name))
    assert all(count > 0 for count in seen.values()), seen


def test_lava_arithmetic_counter_update_matches_numpy_step():
    """The Lava side's own counter arithmetic (learning_arithmetic.counter_update, class by class) == the NumPy
    step on 200 seeded random states, rules and errors (the Lava runtime around it: test_lava_learning.py)."""
    flips = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        population, n_in = int(rng.integers(1, 5)), int(rng.integers(1, 7))
        n_out = 3 * population
        rule = LearningRule(population=population, population_rule="counter", counter_bits=8,
                            counter_threshold=int(rng.integers(1, 127)), counter_growth_shift=int(rng.choice([0, 2])),
                            product_shift=int(rng.integers(0, 6)), t_epoch=int(rng.choice([1, 2])),
                            rounding=str(rng.choice(["nearest", "stochastic"])), seed=seed, bias_bits=5)
        momentum = np.zeros((n_out, n_in), np.int64)
        momentum[::population] = rng.integers(-rule.counter_max, rule.counter_max + 1, (3, n_in))
        state = LearningState(weight=rng.choice([-1, 1], (n_out, n_in)).astype(np.int8), momentum=momentum,
                              trace=rng.integers(0, 200, n_in), second_moment=np.zeros(4, np.int64),
                              counter=int(rng.integers(0, 50)), bias=rng.integers(-15, 16, n_out))
        pre, error = rng.integers(0, 2, n_in), np.repeat(rng.integers(-60, 60, 3), population)
        expected, expected_flips = learning_step_int(state, pre, np.zeros(n_out), None, error, 0, rule)
        actual = learning_update(signs=state.weight, momentum=state.momentum, trace=state.trace,
                                 second_moment=state.second_moment, counter=state.counter, pre=pre, v=np.zeros(n_out),
                                 vth=None, error=error, t=0, rule=rule, bias=state.bias)
        np.testing.assert_array_equal(actual.signs, expected.weight, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(actual.momentum, expected.momentum, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(actual.flips, expected_flips, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(actual.bias, expected.bias, err_msg=f"seed {seed}")
        flips += int(expected_flips.sum())
    assert flips > 0
