"""Feedback alignment on Lava (docs/onchip-learning.md §18) == the NumPy learner, exactly, after every step:
the hidden learning synapse's traces, momenta, signs, second moments, biases, projected errors and surrogates,
the spikes and v of the hidden and output layers, flip events, predictions and the final state. Lava is slow:
two networks, one compile each, two short streams per compile (the state carried in Lava)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from bso_deploy.hardware.learning import SimLearner
from conftest import require_lava
from test_lava_learning import _assert_same
from test_learning_feedback import assert_edges_reached, distinct_population, edge_stream, network, random_rule


def test_edge_stream_on_lava_matches_numpy_every_step() -> None:
    """The stream whose projected errors, momenta and traces saturate, with flips and ties (BSO, nearest)."""
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    fx_net, rule, inputs, labels = edge_stream()
    assert_edges_reached(SimLearner(fx_net, rule, layer=1).run(inputs, labels=labels, record=True), rule)
    sim = SimLearner(fx_net, rule, layer=1)
    with LavaLearner(fx_net, rule, layer=1) as lava:
        for part in (slice(0, 5), slice(5, None)):
            expected = sim.run(inputs[:, part], labels=labels[part], record=True)
            _assert_same(expected, lava.run(inputs[:, part], labels=labels[part], record=True), f"samples {part}")
        final = lava.state
    for name in final._fields:
        np.testing.assert_array_equal(np.asarray(getattr(final, name)), np.asarray(getattr(sim.state, name)))


def test_random_tbso_stream_with_hidden_bias_and_population_on_lava_matches_numpy() -> None:
    """A random rule (T-BSO, stochastic rounding, learned hidden bias) on layer 0, graded input, behind a
    population readout of 2 members per class with their own signs (the error pooled per class, §14)."""
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    fx_net = distinct_population(network(np.random.default_rng(2), front=False), 2, np.random.default_rng(9))
    rule = replace(random_rule(np.random.default_rng(4), 2), surrogate_shift=13)  # window as wide as the thresholds
    rng = np.random.default_rng(5)
    flips, bias_saturated = 0, False
    assert rule.variant == "tbso" and rule.rounding == "stochastic" and rule.learns_bias  # what this case is for
    sim = SimLearner(fx_net, rule, layer=0)
    with LavaLearner(fx_net, rule, layer=0) as lava:
        for samples in (3, 4):
            inputs = rng.integers(0, 256, (rule.time_steps, samples, 5))
            labels = rng.integers(0, 3, samples)
            expected = sim.run(inputs, labels=labels, record=True)
            _assert_same(expected, lava.run(inputs, labels=labels, record=True), f"{samples} samples")
            flips += int(expected.flips.sum())
            bias_saturated |= bool((np.abs(expected.steps["bias"]) == rule.bias_max).any())
    assert flips > 0 and bias_saturated
