"""The adaptation scenario's learning capacity and upper reference (bso_deploy/experiments/adaptation_reference.py,
docs/onchip-learning.md §14 - §16): the offline logistic reference, the rule's population and bias fields, the
learner's network, and a short run with a population readout and a learned bias, identical on the simulator
and the torch learner, that reports reference_accuracy and scenario."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork, append_zero_steps
from bso_deploy.hardware.simulator import simulate

from bso_deploy.experiments import adaptation
from bso_deploy.experiments.adaptation import AdaptationConfig, run_adaptation
from bso_deploy.experiments.adaptation_reference import (
    learning_fields,
    learning_network,
    logistic_reference,
    readout_counts,
)

TINY = {"hidden": (32,), "train_epochs": 1, "samples": 80, "curve_points": 2, "eval_samples": 120}


def tiny_network(rng: np.random.Generator) -> FixedPointNetwork:
    hidden = FixedPointLayer(name="hidden", kind="dense", input_shape=(6,), weight=rng.integers(-60, 60, (8, 6)),
                             du=4095, dv=1024, vth=rng.integers(5, 40, 8), bias_delay=1)
    readout = FixedPointLayer(name="readout", kind="dense", input_shape=(8,), binary=True,
                              weight=rng.choice([-1, 1], (3, 8)), weight_mant=5, du=4095, dv=0, bias_delay=2,
                              spiking=False)
    return FixedPointNetwork(profile="bso", input_shape=(6,), layers=(hidden, readout))


def test_logistic_reference_separates_separable_counts():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    counts = rng.integers(0, 2, (90, 12)).astype(float)
    counts[np.arange(90), labels] += 4  # class k lights input k
    assert logistic_reference(counts, labels, counts, labels, 3, bias=False) == 1.0
    # a class told apart by an offset only: separable with a bias, not by weights on a constant input
    constant = np.ones((90, 1))
    assert logistic_reference(constant, np.zeros(90, np.int64), constant, np.zeros(90, np.int64), 2, bias=True) == 1.0


def test_readout_counts_are_what_the_readout_integrates():
    """The readout's v at the last step is K times its signs times these counts (no bias here)."""
    rng = np.random.default_rng(1)
    fx_net = tiny_network(rng)
    inputs = rng.integers(0, 256, (4, 10, 6))
    counts = readout_counts(fx_net, inputs, 4)
    v = simulate(fx_net, append_zero_steps(inputs, 2)).output[-1]
    readout = fx_net.layers[-1]
    np.testing.assert_array_equal(v, (counts @ np.asarray(readout.weight).T * readout.weight_mant) * 64)


def test_learning_fields_and_network():
    rng = np.random.default_rng(2)
    fx_net = tiny_network(rng)
    plain = AdaptationConfig(population=3)
    assert learning_fields(plain, fx_net, error_shift=5) == {"population": 3}
    biased = AdaptationConfig(population=3, learn_bias=True, bias_shift=4)
    assert learning_fields(biased, fx_net, error_shift=5) == {"population": 3, "bias_bits": 17, "bias_shift": 4}
    assert learning_fields(biased, fx_net, error_shift=9)["bias_shift"] == 2  # bias_exp stops at 7
    # the counter rule (§20): P 8, E 9, X 64, theta 8: 36864 per flip, the largest step 8 * 2 * 18 * 255 = 73440;
    # (36864 + 73440) / 4 fits 16 bits, / 2 does not: product_shift 2, counter_threshold 36864 / 4
    counter = AdaptationConfig(population=8, population_rule="counter", counter_threshold=8.0)
    assert learning_fields(counter, fx_net, 5, error_scale=9.0, error_target=18) == {
        "population": 8, "population_rule": "counter", "counter_bits": 16, "product_shift": 2,
        "counter_threshold": 9216, "counter_growth_shift": 10}
    with pytest.raises(ValueError, match="population_rule"):
        AdaptationConfig(population_rule="thermometer")
    network = learning_network(fx_net, biased, error_shift=5)
    assert network.layers[-1].output_shape == (9,)
    np.testing.assert_array_equal(network.layers[-1].bias_exp, 5)
    with pytest.raises(ValueError, match="population"):
        AdaptationConfig(population=65)
    with pytest.raises(ValueError, match="learn_bias"):
        AdaptationConfig(learn_bias=1)


@pytest.fixture(scope="module")
def pretrained():
    return adaptation._pretrain(AdaptationConfig(**TINY), progress=False)


def test_population_and_bias_run_identically_on_sim_and_torch(pretrained, monkeypatch):
    monkeypatch.setattr(adaptation, "_pretrain", lambda config, progress: copy.deepcopy(pretrained))
    results = [run_adaptation(AdaptationConfig(**TINY, population=2, learn_bias=True, backend=backend),
                              progress=False) for backend in ("sim", "torch")]
    sim, torch_run = (result.to_dict() for result in results)
    for key in ("accuracy_before", "accuracy_after", "flips", "reference_accuracy", "curve", "bits_per_bias"):
        assert sim[key] == torch_run[key], key
    assert sim["scenario"] == "invert" and 0.0 < sim["reference_accuracy"] <= 1.0
    assert sim["bits_per_synapse"] == 17 and sim["bits_per_bias"] == sim["rule"]["bias_bits"] > 0
    assert sim["rule"]["population"] == 2 and sim["flips"] > 0
    assert 0.0 <= sim["details"]["float_rule_offline_accuracy"] <= 1.0
    assert sim["details"]["float_rule_comparable"] is False
