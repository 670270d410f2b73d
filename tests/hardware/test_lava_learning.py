"""The Lava learning process == the NumPy rule, exactly: traces, momenta, second moments, weights, errors,
surrogates, spikes and voltages after every step, flip events, predictions and the final state.

Each case builds a small random profile-``bso`` network, runs a seeded random stream through
:class:`~bso_deploy.hardware.lava.onchip.LavaLearner` (Lava's runtime, ``fixed_pt``; the learning synapse
updates its signs in Lava's learning phase) and through :class:`~bso_deploy.hardware.learning.SimLearner`, and
compares with ``assert_array_equal``. The rules are narrow on purpose (few trace and momentum bits, small
thresholds) so that the streams reach saturation and ties at the flip threshold; the tests assert that they do.
Few compiles, many steps: each learner is compiled once and runs two streams (state carried in Lava).
"""

from __future__ import annotations

import numpy as np
import pytest
from bso_deploy.hardware.learner import population_network
from bso_deploy.hardware.learners import get_learner
from bso_deploy.hardware.learning import LearningRule, SimLearner
from bso_deploy.hardware.network import FixedPointLayer, FixedPointNetwork
from conftest import require_lava
from test_learning_counter import _ties as counter_ties


def _network(rng: np.random.Generator, n_in: int, sizes: tuple[int, ...], spiking_last: bool) -> FixedPointNetwork:
    """Layer 0 full precision on graded input, then binary layers; the last is a readout unless spiking_last."""
    layers = [FixedPointLayer(name="layer0", kind="dense", input_shape=(n_in,),
                              weight=rng.integers(-40, 60, (sizes[0], n_in)) * 2, weight_exp=-2, du=4095, dv=2048,
                              vth=rng.integers(20, 80, sizes[0]), bias_mant=rng.integers(-20, 20, sizes[0]),
                              bias_delay=1, reset="subtract", shift_rounding="nearest")]  # §4.7
    for k, size in enumerate(sizes[1:], start=1):
        last = k == len(sizes) - 1
        spiking = spiking_last or not last
        layers.append(FixedPointLayer(
            name=f"layer{k}", kind="dense", input_shape=(sizes[k - 1],), binary=True,
            weight=rng.choice([-1, 1], (size, sizes[k - 1])), weight_mant=int(rng.integers(2, 20)), du=4095,
            dv=1024 if spiking else 0, vth=rng.integers(1, 30, size) if spiking else 0,
            bias_mant=rng.integers(-200, 200, size), bias_delay=k + 1, reset="zero" if k % 2 else "subtract",
            spiking=spiking))
    return FixedPointNetwork(profile="bso", input_shape=(n_in,), layers=tuple(layers))


def _assert_same(expected, actual, context: str) -> None:
    np.testing.assert_array_equal(actual.predictions, expected.predictions, err_msg=f"{context}: predictions")
    np.testing.assert_array_equal(actual.flips, expected.flips, err_msg=f"{context}: flips")
    np.testing.assert_array_equal(actual.flip_events, expected.flip_events, err_msg=f"{context}: flip events")
    assert set(actual.steps) == set(expected.steps), context
    for name, values in expected.steps.items():
        np.testing.assert_array_equal(actual.steps[name], values, err_msg=f"{context}: {name}")
    for name in expected.state._fields:
        np.testing.assert_array_equal(np.asarray(getattr(actual.state, name)),
                                      np.asarray(getattr(expected.state, name)), err_msg=f"{context}: state {name}")


def _stream(rng: np.random.Generator, rule: LearningRule, fx_net: FixedPointNetwork, samples: int) -> np.ndarray:
    return rng.integers(0, 256, (rule.time_steps, samples, *fx_net.input_shape))


READOUT_CASES = {
    "bso-nearest": dict(variant="bso", rounding="nearest", t_epoch=1, flip_threshold=5, momentum_bits=4),
    "tbso-stochastic": dict(variant="tbso", rounding="stochastic", t_epoch=2, flip_threshold=5, threshold_shift=6,
                            second_moment_shift=2, second_moment_product_shift=4, momentum_bits=5),
    # a population readout of 3 neurons per class (§14) with a narrow learned bias (§15), which saturates
    "bso-population-bias": dict(variant="bso", rounding="nearest", t_epoch=1, flip_threshold=15, momentum_bits=5,
                                product_shift=2, population=3, bias_bits=6, bias_shift=2),
}


@pytest.mark.parametrize("case", sorted(READOUT_CASES))
def test_readout_learning_from_labels_matches_numpy_every_step(case: str) -> None:
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    rng = np.random.default_rng(sorted(READOUT_CASES).index(case))
    rule = LearningRule(**{**dict(time_steps=4, trace_bits=5, trace_increment=12, trace_decay=1024, momentum_shift=2,
                                  product_shift=4, error_bits=6, error_target=8, error_shift=6, seed=11),
                           **READOUT_CASES[case]})
    fx_net = population_network(_network(rng, 6, (10, 4), spiking_last=False), rule.population)
    sim = SimLearner(fx_net, rule)
    seen = {"flips": 0, "momentum saturated": 0, "trace saturated": 0, "ties": 0, "bias saturated": 0,
            "members differ": 0}
    with LavaLearner(fx_net, rule) as lava:
        for part in range(2):  # two runs: signs, momenta, second moments and the counter persist in Lava
            inputs = _stream(rng, rule, fx_net, 24)
            labels = rng.integers(0, 4, 24)
            expected = sim.run(inputs, labels=labels, record=True)
            _assert_same(expected, lava.run(inputs, labels=labels, record=True), f"{case}, run {part}")
            steps = expected.steps
            seen["flips"] += expected.flip_events.shape[0]
            seen["momentum saturated"] += int(np.sum(np.abs(steps["momentum"]) == rule.momentum_max))
            seen["trace saturated"] += int(np.sum(steps["trace"] == rule.trace_max))
            # a tie W m == theta does not flip (strict >); BSO's theta is the constant flip_threshold, staggered over
            # a population's members: theta (p + 1) // P for member p (§14)
            members = np.arange(fx_net.layers[-1].num_neurons) % rule.population + 1
            theta = (rule.flip_threshold * members // rule.population)[:, None]
            seen["ties"] += int(np.sum(steps["weight"].astype(np.int64) * steps["momentum"] == theta))
            seen["bias saturated"] += int(np.sum(np.abs(steps["bias"]) == rule.bias_max))
            n_in = fx_net.layers[-1].weight.shape[1]
            members = steps["weight"].reshape(*steps["weight"].shape[:2], -1, rule.population, n_in)
            seen["members differ"] += int(np.sum(members.min(axis=3) != members.max(axis=3)))
    # the streams reach what the comparison is about: flips, saturation and (BSO) ties at the threshold; with a
    # population, members of one class that disagree (their staggered thresholds) and a saturated bias
    optional = {"ties": rule.variant == "bso", "bias saturated": rule.learns_bias,
                "members differ": rule.population > 1}
    assert all(count > 0 for name, count in seen.items() if optional.get(name, True)), seen


def test_hidden_spiking_layer_with_host_errors_matches_numpy_every_step() -> None:
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    rng = np.random.default_rng(5)
    fx_net = _network(rng, 5, (8, 6, 3), spiking_last=False)
    rule = LearningRule(variant="bso", time_steps=3, trace_bits=4, trace_increment=9, trace_decay=512,
                        momentum_bits=6, momentum_shift=1, product_shift=2, surrogate_shift=10,
                        surrogate_table=(7, 5, 3, 1), error_bits=5, error_target=4, flip_threshold=6,
                        rounding="stochastic", seed=3, t_epoch=3)
    sim = SimLearner(fx_net, rule, layer=1)
    with LavaLearner(fx_net, rule, layer=1) as lava:
        for part in range(2):
            inputs = _stream(rng, rule, fx_net, 20)
            errors = rng.integers(-40, 40, (rule.time_steps, 20, 6))  # beyond error_max: saturated by the rule
            expected = sim.run(inputs, errors=errors, record=True)
            _assert_same(expected, lava.run(inputs, errors=errors, record=True), f"hidden layer, run {part}")
            assert expected.flip_events.shape[0] > 0
            assert expected.steps["spikes/1"].any() and expected.steps["surrogate"].any()
            assert np.abs(expected.steps["momentum"]).max() == rule.momentum_max


def test_unrecorded_stream_gives_the_same_flips_state_and_network() -> None:
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    rng = np.random.default_rng(9)
    fx_net = _network(rng, 6, (12, 5), spiking_last=False)
    rule = LearningRule(variant="tbso", time_steps=3, trace_increment=30, error_shift=6, error_target=10,
                        flip_threshold=2, second_moment_shift=1, second_moment_product_shift=2)
    sim = SimLearner(fx_net, rule)
    inputs, labels = _stream(rng, rule, fx_net, 60), rng.integers(0, 5, 60)
    expected = sim.run(inputs, labels=labels)
    lava = get_learner("lava")(fx_net, rule)
    assert isinstance(lava, LavaLearner)
    try:
        actual = lava.run(inputs, labels=labels)
        _assert_same(expected, actual, "unrecorded")
        assert actual.steps == {}
        assert expected.flip_events.shape[0] > 0
        np.testing.assert_array_equal(lava.network().layers[-1].weight, sim.network().layers[-1].weight)
    finally:
        lava.close()
    lava.close()  # idempotent; the state stays readable after Lava stopped
    np.testing.assert_array_equal(lava.state.momentum, sim.state.momentum)


def test_bad_inputs_are_refused_before_lava_starts() -> None:
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    rng = np.random.default_rng(0)
    fx_net = _network(rng, 4, (5, 3), spiking_last=False)
    rule = LearningRule(time_steps=2)
    learner = LavaLearner(fx_net, rule)
    with pytest.raises(ValueError, match="exactly one of labels"):
        learner.run(_stream(rng, rule, fx_net, 2))
    with pytest.raises(ValueError, match="time_steps"):
        learner.run(rng.integers(0, 256, (3, 2, 4)), labels=np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="binary layer"):
        LavaLearner(fx_net, rule, layer=0)
    learner.close()


COUNTER_CASES = {  # the shared-counter population rule (§20): a narrow accumulator, which saturates
    "counter-nearest": dict(population=3, counter_bits=7, counter_threshold=40, product_shift=3, t_epoch=3, bias_bits=6,
                            bias_shift=2),
    "counter-ties": dict(population=2, counter_bits=8, counter_threshold=24, product_shift=4),
    "counter-stochastic": dict(population=2, counter_bits=8, counter_threshold=30, counter_growth_shift=5,
                               product_shift=5, rounding="stochastic", t_epoch=2),
    "counter-hinge": dict(population=2, counter_bits=7, counter_threshold=20, product_shift=1, t_epoch=2,
                          error_shape="hinge", bias_bits=6, bias_shift=2),  # §21: the hinge error
}


@pytest.mark.parametrize("case", sorted(COUNTER_CASES))
def test_counter_rule_matches_numpy_every_step(case: str) -> None:
    require_lava()
    from bso_deploy.hardware.lava.onchip import LavaLearner

    rng = np.random.default_rng(20 + sorted(COUNTER_CASES).index(case))
    rule = LearningRule(**{**dict(time_steps=4, trace_bits=6, trace_increment=20, trace_decay=1024, error_bits=6,
                                  error_target=8, error_shift=6, seed=7, population_rule="counter"),
                           **COUNTER_CASES[case]})
    fx_net = population_network(_network(rng, 6, (10, 4), spiking_last=False), rule.population)
    sim = SimLearner(fx_net, rule)
    seen = {"flips": 0, "accumulator saturated": 0, "class weight saturated": 0}
    with LavaLearner(fx_net, rule) as lava:
        for part in range(2):
            inputs, labels = _stream(rng, rule, fx_net, 24), rng.integers(0, 4, 24)
            expected = sim.run(inputs, labels=labels, record=True)
            _assert_same(expected, lava.run(inputs, labels=labels, record=True), f"{case}, run {part}")
            steps = expected.steps
            seen["flips"] += expected.flip_events.shape[0]
            seen["accumulator saturated"] += int(np.sum(np.abs(steps["momentum"]) == rule.counter_max))
            weights = steps["weight"].reshape(*steps["weight"].shape[:2], -1, rule.population, 10).sum(axis=3)
            seen["class weight saturated"] += int(np.sum(np.abs(weights) == rule.population))
            if rule.error_shape == "hinge":  # both branches: the label and its rival moved, the margin met
                moving = np.count_nonzero(steps["error"][:, 2:2 + rule.time_steps, ::rule.population], axis=-1)
                seen["hinge moved"] = seen.get("hinge moved", 0) + int(np.sum(moving == 2))
                seen["hinge met"] = seen.get("hinge met", 0) + int(np.sum(moving == 0))
            if rule.t_epoch == 1 and not rule.counter_growth_shift:
                seen["ties"] = seen.get("ties", 0) + counter_ties(steps["momentum"][:, :, ::rule.population], weights,
                                                                  rule)
    # deciding at every step with a fixed theta, |a| stays within theta < counter_max: ties instead of saturation
    deciding = rule.t_epoch == 1 and not rule.counter_growth_shift
    assert all(count > 0 for name, count in seen.items() if not (deciding and name == "accumulator saturated")), seen
    assert deciding == ("ties" in seen)
