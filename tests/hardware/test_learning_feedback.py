"""Feedback alignment on chip (docs/onchip-learning.md §18): the matrix B and the projected error against
hand-derived values, the NumPy learner against the torch learner after every step on seeded random networks
(traces, momenta, weights, second moments, biases, projected errors, surrogates, spikes and v), with streams
that reach flips, saturation and ties, and the errors for what feedback alignment cannot do."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.learning import LearningRule, SimLearner
from bso_deploy.hardware.learning_feedback import (
    feedback_alignment_rule,
    feedback_error_int,
    feedback_matrix_int,
    feedback_shift_for,
    surrogate_shift_for,
)
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from bso_deploy.hardware.torch_learning import TorchLearner, torch_feedback_error, torch_feedback_matrix
from test_torch_learning import assert_records_equal

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
MASK = (1 << 32) - 1


def _hash(x: int) -> int:
    """§8's hash on a Python int, written from the spec for this test."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x1B873593) & MASK
    return x ^ (x >> 16)


def test_feedback_matrix_is_the_top_bit_of_the_hash_of_the_index():
    key = _hash(12345)
    expected = [[1 if _hash(key ^ (i * 4 + k)) >> 31 else -1 for k in range(4)] for i in range(9)]
    np.testing.assert_array_equal(feedback_matrix_int(9, 4, 12345), expected)
    np.testing.assert_array_equal(torch_feedback_matrix(9, 4, 12345, torch.device("cpu")).numpy(), expected)
    large = feedback_matrix_int(256, 10, 0)
    assert set(np.unique(large)) == {-1, 1} and abs(large.mean()) < 0.1  # balanced signs
    assert (feedback_matrix_int(256, 10, 1) != large).mean() > 0.3  # the seed matters


@pytest.mark.parametrize(("matrix", "error", "shift", "expected"), [
    ([[1, -1], [1, 1]], [3, -5], 0, [8, -2]),
    ([[1, -1], [1, 1]], [3, -5], 1, [4, -1]),  # -2 / 2 = -1 exactly
    ([[1, 1], [-1, 1]], [3, -6], 1, [-2, -5]),  # -3 / 2 and -9 / 2: ties, away from zero
    ([[1, 1], [1, -1]], [4, 1], 1, [3, 2]),  # 5 / 2 and 3 / 2: ties, away from zero
    ([[1, 1, 1], [-1, -1, -1]], [9, 9, 9], 0, [15, -15]),  # 27 saturates at error_max = 15 (5 bits)
    ([[1, 1, 1], [1, -1, 1]], [5, 2, 6], 2, [3, 2]),  # 13 / 4 = 3.25 -> 3, 9 / 4 = 2.25 -> 2
])
def test_feedback_error_hand_derived(matrix, error, shift, expected):
    rule = LearningRule(error_bits=5, error_target=7, feedback="random", feedback_shift=shift)
    np.testing.assert_array_equal(feedback_error_int(np.array(error), np.array(matrix), rule), expected)
    torch_error = torch_feedback_error(torch.tensor(error), torch.tensor(matrix), rule)
    np.testing.assert_array_equal(torch_error.numpy(), expected)


def network(rng: np.random.Generator, front: bool) -> FixedPointNetwork:
    """[full precision 6 on graded input ->] binary spiking hidden 7 (the learning layer) -> binary readout 3."""
    layers = []
    n_in = 5
    if front:
        layers.append(FixedPointLayer(name="front", kind="dense", input_shape=(5,),
                                      weight=rng.integers(-40, 60, (6, 5)) * 2, weight_exp=-2, du=4095, dv=2048,
                                      vth=rng.integers(20, 80, 6), bias_mant=rng.integers(-20, 20, 6), bias_delay=1,
                                      reset="subtract"))
        n_in = 6
    k = len(layers)
    layers.append(FixedPointLayer(name="hidden", kind="dense", input_shape=(n_in,),
                                  weight=rng.choice([-1, 1], (7, n_in)), binary=True,
                                  weight_mant=int(rng.integers(1, 4 if k == 0 else 12)),
                                  du=int(rng.choice([4095, 2047])),
                                  dv=int(rng.choice([0, 2048])), vth=rng.integers(0, 40 if k else 200, 7),
                                  bias_mant=rng.integers(-30, 30, 7), bias_delay=int(rng.integers(0, 2)),
                                  reset=str(rng.choice(["zero", "subtract"]))))
    layers.append(FixedPointLayer(name="readout", kind="dense", input_shape=(7,), weight=rng.choice([-1, 1], (3, 7)),
                                  binary=True, weight_mant=int(rng.integers(1, 9)), weight_exp=int(rng.integers(-1, 3)),
                                  du=4095, dv=0, bias_mant=rng.integers(-60, 60, 3), bias_exp=int(rng.integers(0, 2)),
                                  bias_delay=int(rng.integers(0, 4)), spiking=False,
                                  shift_rounding=str(rng.choice(["floor", "nearest"]))))
    return FixedPointNetwork(profile="bso", input_shape=(5,), layers=tuple(layers))


def distinct_population(fx_net: FixedPointNetwork, population: int, rng: np.random.Generator) -> FixedPointNetwork:
    """``fx_net`` with a readout of ``population`` neurons per class whose members have their own random signs
    and biases (unlike ``population_network``'s equal members), so that pooling matters (§14)."""
    readout = fx_net.layers[-1]
    n_out = readout.num_neurons * population
    readout = replace(readout, weight=rng.choice([-1, 1], (n_out, readout.weight.shape[1])), vth=0,
                      bias_exp=np.repeat(np.asarray(readout.bias_exp), population),
                      bias_mant=rng.integers(-60, 60, n_out))
    return replace(fx_net, layers=(*fx_net.layers[:-1], readout))


def random_rule(rng: np.random.Generator, population: int = 1) -> LearningRule:
    """Narrow registers and small shifts (saturation and ties), both variants and roundings, t_epoch 1 or 2,
    with or without a learned hidden bias."""
    momentum_bits, error_bits = int(rng.integers(4, 10)), int(rng.integers(4, 9))
    bias_bits = int(rng.choice([0, 4, 10]))
    return LearningRule(
        variant=str(rng.choice(["bso", "tbso"])), rounding=str(rng.choice(["nearest", "stochastic"])),
        seed=int(rng.integers(0, MASK)), time_steps=int(rng.integers(2, 5)),
        trace_decay=int(rng.choice([1024, 2048, 4095])), trace_bits=int(rng.integers(3, 8)),
        trace_increment=int(rng.integers(1, 7)), surrogate_shift=int(rng.integers(3, 9)),
        surrogate_table=(8, 4, 2, 1), error_bits=error_bits, error_shift=int(rng.integers(0, 6)),
        error_target=int(rng.integers(1, ((1 << (error_bits - 1)) - 1) // 2 + 1)), momentum_bits=momentum_bits,
        momentum_shift=int(rng.integers(0, 4)), product_shift=int(rng.integers(0, 4)),
        flip_threshold=int(rng.integers(0, (1 << (momentum_bits - 1)) - 1)), threshold_shift=int(rng.integers(0, 6)),
        second_moment_bits=int(rng.integers(8, 32)), second_moment_shift=int(rng.integers(0, 4)),
        second_moment_product_shift=int(rng.integers(0, 6)), t_epoch=int(rng.integers(1, 3)),
        bias_bits=bias_bits, bias_shift=int(rng.integers(0, max(1, bias_bits))),
        feedback="random", feedback_seed=int(rng.integers(0, MASK)), feedback_shift=int(rng.integers(0, 3)),
        population=population)


@pytest.mark.parametrize("seed", range(18))
def test_numpy_and_torch_learners_agree_after_every_step(seed: int):
    """The hidden layer (layer 0 on graded input, or layer 1 behind a frozen full-precision layer) learns from
    the frozen readout's on-chip error through B, the readout one neuron per class or a population of 2 or 3
    (§14: its error pooled per class); two runs, the state carried over."""
    rng = np.random.default_rng(seed)
    front = bool(seed % 2)
    population = 1 + seed % 3
    fx_net, rule = population_network(network(rng, front), population), random_rule(rng, population)
    layer = 1 if front else 0
    samples = 6
    inputs, labels = rng.integers(0, 256, (rule.time_steps, samples, 5)), rng.integers(0, 3, samples)
    sim, torch_learner = SimLearner(fx_net, rule, layer=layer), TorchLearner(fx_net, rule, layer=layer, device=DEVICE)
    for _ in range(2):
        assert_records_equal(sim.run(inputs, labels=labels, record=True),
                             torch_learner.run(inputs, labels=labels, record=True))


def edge_stream() -> tuple[FixedPointNetwork, LearningRule, np.ndarray, np.ndarray]:
    """A fixed stream whose projected errors, momenta and traces saturate, with flips and ties at the flip
    threshold (tests/hardware/test_lava_feedback.py runs it on Lava)."""
    rng = np.random.default_rng(3)
    fx_net = network(rng, front=True)
    rule = LearningRule(variant="bso", time_steps=4, trace_bits=5, trace_increment=12, trace_decay=1024,
                        surrogate_shift=9, momentum_bits=5, momentum_shift=2, product_shift=2, flip_threshold=12,
                        error_bits=5, error_shift=4, error_target=6, feedback="random", feedback_seed=7,
                        feedback_shift=0)
    return fx_net, rule, rng.integers(0, 256, (4, 12, 5)), rng.integers(0, 3, 12)


def assert_edges_reached(run, rule: LearningRule) -> None:
    steps = run.steps
    assert run.flips.sum() > 0
    assert (np.abs(steps["error"]) == rule.error_max).any()  # the projected error saturates
    assert (np.abs(steps["momentum"]) == rule.momentum_max).any()
    assert (steps["trace"] == rule.trace_max).any()
    assert (steps["surrogate"] > 0).any() and (steps["surrogate"] == 0).any()
    assert (steps["weight"].astype(np.int64) * steps["momentum"] == rule.flip_threshold).any()  # ties: no flip


def test_edge_stream_reaches_flips_saturation_and_ties_in_both_learners():
    fx_net, rule, inputs, labels = edge_stream()
    numpy_run = SimLearner(fx_net, rule, layer=1).run(inputs, labels=labels, record=True)
    assert_edges_reached(numpy_run, rule)
    assert_records_equal(numpy_run, TorchLearner(fx_net, rule, layer=1, device=DEVICE).run(inputs, labels=labels,
                                                                                           record=True))


@pytest.mark.parametrize("population", [1, 2])
def test_the_output_error_reaches_the_hidden_layer_through_b(population: int):
    """e_h at every learning step is B times the frozen readout's on-chip error of that step (§5, §14, §18),
    recomputed here from the readout's recorded v (a readout with dv = 0: v gains c = u + bias(t) each step);
    with P = 2 the members have their own signs and biases, so the pooled current is not P times one member's."""
    rng = np.random.default_rng(11)
    fx_net = distinct_population(network(rng, front=False), population, rng)
    rule = replace(random_rule(rng, population), variant="bso", error_shift=1, feedback_shift=1)
    inputs, labels = rng.integers(0, 256, (rule.time_steps, 5, 5)), rng.integers(0, 3, 5)
    run = SimLearner(fx_net, rule, layer=0).run(inputs, labels=labels, record=True)
    v = run.steps["v/1"]
    current = np.diff(np.concatenate([np.zeros_like(v[:, :1]), v], axis=1), axis=1)  # c[t] = v[t] - v[t-1]
    pooled = current.reshape(*current.shape[:2], 3, population).sum(axis=-1)
    matrix = feedback_matrix_int(7, 3, rule.feedback_seed)
    for n in range(5):
        for t in range(1, 1 + rule.time_steps):
            target = np.where(np.arange(3) == labels[n], rule.error_target, -rule.error_target)
            scaled = np.floor_divide(pooled[n, t], population * 2)
            class_error = np.clip(scaled, -rule.error_target, rule.error_target) - target
            np.testing.assert_array_equal(run.steps["error"][n, t], feedback_error_int(class_error, matrix, rule))
    assert np.abs(run.steps["error"]).max() > 0


def test_default_rule_is_host_feedback_and_refusals_are_clear():
    assert LearningRule().feedback == "host" and not LearningRule().feedback_alignment
    rng = np.random.default_rng(0)
    fx_net = network(rng, front=False)
    rule = LearningRule(feedback="random")
    with pytest.raises(ValueError, match="output layer"):
        SimLearner(fx_net, rule, layer=-1)
    inputs = rng.integers(0, 256, (4, 2, 5))
    with pytest.raises(ValueError, match="give labels"):
        SimLearner(fx_net, rule, layer=0).run(inputs, errors=np.zeros((4, 2, 7), np.int64))
    with pytest.raises(ValueError, match="feedback='random'"):
        SimLearner(fx_net, LearningRule(), layer=0).run(inputs, labels=np.array([0, 1]))
    with pytest.raises(ValueError, match="feedback must be one of"):
        LearningRule(feedback="backprop")
    with pytest.raises(ValueError, match="pools the output layer's error over 2 neurons per class"):
        SimLearner(fx_net, LearningRule(feedback="random", population=2), layer=0)  # 3 output neurons
    with pytest.raises(ValueError, match="feedback_shift"):
        LearningRule(feedback="random", feedback_shift=31)


@pytest.mark.parametrize("layer", [0, 1])
def test_host_feedback_ignores_the_feedback_fields(layer: int):
    """feedback="host" (the default) is the rule without §18: seed and shift change no register."""
    rng = np.random.default_rng(21)
    fx_net, rule = network(rng, front=False), replace(random_rule(rng), feedback="host")
    inputs = rng.integers(0, 256, (rule.time_steps, 4, 5))
    targets = ({"labels": rng.integers(0, 3, 4)} if layer == 1
               else {"errors": rng.integers(-40, 40, (rule.time_steps, 4, 7))})
    plain = SimLearner(fx_net, replace(rule, feedback_seed=0, feedback_shift=0), layer=layer).run(
        inputs, record=True, **targets)
    assert_records_equal(plain, SimLearner(fx_net, rule, layer=layer).run(inputs, record=True, **targets))
    assert rule.feedback_seed != 0


def test_feedback_fields_round_trip():
    rule = LearningRule(feedback="random", feedback_seed=2 ** 32 - 1, feedback_shift=30, population=4)
    assert LearningRule.from_dict(rule.to_dict()) == rule
    assert rule.member_population == 1 and LearningRule(population=4).member_population == 4


def test_feedback_alignment_rule_from_a_readout_rule():
    readout = LearningRule.from_float("tbso", momentum=0.984375, threshold=1.0, time_steps=4, error_bits=9,
                                      error_target=100, error_shift=3, precision_bits=4)
    hidden = feedback_alignment_rule(readout, 10, vth=np.array([100, 120, 140]), feedback_seed=5)
    assert hidden.feedback_alignment and hidden.feedback_seed == 5 and hidden.population == 1
    assert (hidden.error_bits, hidden.error_shift, hidden.error_target) == (9, 3, 100)
    assert hidden.momentum_shift == readout.momentum_shift and hidden.variant == "tbso"
    assert hidden.feedback_shift == feedback_shift_for(10, hidden)
    assert (10 * 2 * 100 + (1 << hidden.feedback_shift) // 2) >> hidden.feedback_shift <= hidden.error_max
    assert (10 * 2 * 100) >> (hidden.feedback_shift - 1) > hidden.error_max  # the smallest such shift
    assert hidden.surrogate_shift == surrogate_shift_for([100, 120, 140], 4) == 11  # 4 * 2**11 >= 120 * 64
    assert hidden.bits_per_synapse == readout.bits_per_synapse < 33
    with pytest.raises(ValueError, match="n_classes"):
        feedback_alignment_rule(readout, 0)
